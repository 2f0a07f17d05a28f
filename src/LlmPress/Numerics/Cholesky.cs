using System.Buffers;
using System.Runtime.Intrinsics;
using LlmPress.Numerics.Kernels;

namespace LlmPress.Numerics;

/// <summary>
/// Cholesky factorisation of symmetric positive-definite matrices (row-major [n, n], FP32 storage), the SPD inverse
/// from the factor, and the upper factor of the inverse that GPTQ uses.
/// Blocked right-looking algorithm: each <see cref="BlockSize"/>-wide diagonal block is factored in double; the
/// panel below it is multiplied by the block's inverse transpose (a GEMM, instead of a slow triangular solve);
/// the trailing matrix gets a lower-triangle-only GEMM update (SYRK). So ~all n³/3 flops run in the GEMM kernels,
/// deterministic for any thread count.
/// </summary>
public static unsafe class Cholesky
{
    /// <summary>
    /// Diagonal block width; 0 picks by size. Measured single-threaded on the 2-core Zen 4 (noisy, ±5): n = 1536:
    /// nb 64 → 74, 128 → 65–69, 256 → 52 GFLOP/s; n = 3072: 64 → 64–72, 128 → 72–75. Wider blocks make the
    /// trailing GEMM more efficient but the double-precision diagonal work (O(n·nb²), not GEMM) costs more.
    /// </summary>
    internal static int BlockSize;

    private static int BlockFor(int n) => BlockSize > 0 ? BlockSize : n <= 2048 ? 64 : 128;

    /// <summary>
    /// In place: a = L·Lᵀ with L lower triangular and a positive diagonal. Reads only the lower triangle of
    /// a [n, n]; on success the lower triangle holds L and the upper triangle is zero. Fails at the first pivot
    /// (diagonal value before its square root) that is not positive, or is NaN; a is then partly overwritten.
    /// </summary>
    /// <param name="failedColumn">The failing column on failure, −1 on success.</param>
    /// <exception cref="ArgumentException">a is shorter than n·n.</exception>
    public static bool TryFactor(Span<float> a, int n, out int failedColumn, bool parallel = true)
    {
        CheckSquare(a.Length, n, nameof(a));
        fixed (float* pa = a) return TryFactorCore(pa, n, parallel, out failedColumn);
    }

    /// <summary>
    /// Double-precision variant for small or ill-conditioned matrices: the same contract as the FP32 overload, computed
    /// column by column with vectorised row dot products (O(n³/3), not GEMM-class).
    /// </summary>
    public static bool TryFactor(Span<double> a, int n, out int failedColumn)
    {
        CheckSquare(a.Length, n, nameof(a));
        bool ok = FactorDouble(a, n, n, out failedColumn);
        if (ok)
            for (int i = 0; i < n; i++) a.Slice(i * n + i + 1, n - i - 1).Clear();
        return ok;
    }

    /// <summary>
    /// inverse = (L·Lᵀ)⁻¹ = L⁻ᵀ·L⁻¹ from a factor made by <see cref="TryFactor(Span{float}, int, out int, bool)"/>
    /// (only its lower triangle is read). Triangular inverse, then a SYRK; inverse comes out exactly symmetric.
    /// </summary>
    /// <exception cref="ArgumentException">A span is shorter than n·n, or they overlap.</exception>
    public static void Invert(ReadOnlySpan<float> factor, int n, Span<float> inverse, bool parallel = true)
    {
        CheckSquare(factor.Length, n, nameof(factor));
        CheckSquare(inverse.Length, n, nameof(inverse));
        if (n == 0) return;
        if (inverse[..(n * n)].Overlaps(factor[..(n * n)])) ThrowHelper.ThrowArgument("inverse must not overlap factor.", nameof(inverse));
        float[] rented = ArrayPool<float>.Shared.Rent(n * n);
        try
        {
            var x = rented.AsSpan(0, n * n);
            factor[..(n * n)].CopyTo(x);
            fixed (float* px = x)
            {
                ZeroUpper(px, n, n);
                InvertLowerCore(px, n, n, parallel);
            }
            inverse[..(n * n)].Clear();
            SymmetricRankUpdate.Accumulate(x, n, n, 1f, inverse, parallel);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// In place: l (lower triangular [n, n], only the lower triangle read) becomes L⁻¹, lower triangular with a zero
    /// upper triangle. Blocked backwards: X₂₁ = −X₂₂·L₂₁·X₁₁, both products GEMMs.
    /// </summary>
    public static void InvertLower(Span<float> l, int n, bool parallel = true)
    {
        CheckSquare(l.Length, n, nameof(l));
        fixed (float* pl = l)
        {
            ZeroUpper(pl, n, n);
            InvertLowerCore(pl, n, n, parallel);
        }
    }

    /// <summary>
    /// In place: h [n, n] (SPD, only the lower triangle read) becomes U, the upper Cholesky factor of h⁻¹ (h⁻¹ = Uᵀ·U,
    /// U upper triangular with a positive diagonal, zeros below) — what GPTQ computes as
    /// cholesky(cholesky_inverse(cholesky(H)), upper=True). Computed in two steps instead of three: with J the
    /// order-reversing permutation, J·h·J = L̃·L̃ᵀ gives h = V·Vᵀ with V = J·L̃·J upper, so U = V⁻¹ = J·L̃⁻¹·J.
    /// On failure h's contents are unspecified and <paramref name="failedColumn"/> is the column of h whose pivot
    /// failed in that reversed-order factorisation.
    /// </summary>
    public static bool UpperFactorOfInverse(Span<float> h, int n, out int failedColumn, bool parallel = true)
    {
        CheckSquare(h.Length, n, nameof(h));
        var square = h[..(n * n)];
        // Row-major, reversing the flat array is J·h·J; it also moves h's lower triangle into the upper.
        MirrorUpperFromLower(square, n);
        square.Reverse();
        fixed (float* ph = square)
        {
            if (!TryFactorCore(ph, n, parallel, out int bad))
            {
                failedColumn = n - 1 - bad;
                return false;
            }
            InvertLowerCore(ph, n, n, parallel);
        }
        square.Reverse();
        failedColumn = -1;
        return true;
    }

    private static bool TryFactorCore(float* a, int n, bool parallel, out int failedColumn)
    {
        nint lda = n;
        int nb = BlockFor(n);
        double[] work = ArrayPool<double>.Shared.Rent(nb * nb);
        try
        {
            for (int j = 0; j < n; j += nb)
            {
                int jb = Math.Min(nb, n - j);
                float* diag = a + j * lda + j;
                // 1. L₁₁ = chol(A₁₁), in double.
                var w = work.AsSpan(0, jb * jb);
                for (int i = 0; i < jb; i++)
                    for (int q = 0; q <= i; q++) w[i * jb + q] = diag[i * lda + q];
                if (!FactorDouble(w, jb, jb, out int bad))
                {
                    failedColumn = j + bad;
                    return false;
                }
                for (int i = 0; i < jb; i++)
                    for (int q = 0; q <= i; q++) diag[i * lda + q] = (float)w[i * jb + q];

                int t = n - j - jb;
                if (t == 0) break;
                // 2. X₁₁ = L₁₁⁻¹ (double, then FP32 with a zero upper triangle).
                float* x11 = ScratchBuffer.Get(ScratchBuffer.Work2, (long)jb * jb);
                InvertLowerDouble(w, jb);
                for (int i = 0; i < jb; i++)
                    for (int q = 0; q < jb; q++) x11[i * jb + q] = q <= i ? (float)w[i * jb + q] : 0f;

                // 3. L₂₁ = A₂₁ · L₁₁⁻ᵀ: copy the panel out, then one GEMM back into place.
                float* panel = a + (j + jb) * lda + j;
                float* copy = ScratchBuffer.Get(ScratchBuffer.Work, (long)t * jb);
                for (int i = 0; i < t; i++)
                    new ReadOnlySpan<float>(panel + i * lda, jb).CopyTo(new Span<float>(copy + (nint)i * jb, jb));
                GemmDriver.Run(t, jb, jb, 1f, new MatrixSource(copy, jb, outerContiguous: false),
                    new MatrixSource(x11, jb, outerContiguous: false), 0f, panel, lda, parallel);

                // 4. A₂₂ −= L₂₁·L₂₁ᵀ, lower triangle only.
                var l21 = new MatrixSource(panel, lda, outerContiguous: false);
                GemmDriver.Run(t, t, jb, -1f, l21, l21, 1f, a + (j + jb) * lda + (j + jb), lda, parallel, lowerOnly: true);
            }
        }
        finally
        {
            ArrayPool<double>.Shared.Return(work);
        }
        ZeroUpper(a, n, lda);
        failedColumn = -1;
        return true;
    }

    private static void InvertLowerCore(float* a, int n, nint lda, bool parallel)
    {
        int nb = BlockFor(n);
        double[] work = ArrayPool<double>.Shared.Rent(nb * nb);
        try
        {
            int last = (n - 1) / nb * nb;
            for (int j = last; j >= 0; j -= nb)
            {
                int jb = Math.Min(nb, n - j);
                int t = n - j - jb;
                float* diag = a + j * lda + j;
                float* l21 = a + (j + jb) * lda + j;
                float* tmp = null;
                if (t > 0)
                {
                    // T = X₂₂ · L₂₁ (X₂₂ already inverted in place; its upper triangle is zero).
                    tmp = ScratchBuffer.Get(ScratchBuffer.Work, (long)t * jb);
                    GemmDriver.Run(t, jb, t, 1f, new MatrixSource(a + (j + jb) * lda + (j + jb), lda, outerContiguous: false),
                        new MatrixSource(l21, lda, outerContiguous: true), 0f, tmp, jb, parallel);
                }
                // X₁₁ = L₁₁⁻¹ in double.
                var w = work.AsSpan(0, jb * jb);
                for (int i = 0; i < jb; i++)
                    for (int q = 0; q < jb; q++) w[i * jb + q] = q <= i ? diag[i * lda + q] : 0;
                InvertLowerDouble(w, jb);
                for (int i = 0; i < jb; i++)
                    for (int q = 0; q < jb; q++) diag[i * lda + q] = q <= i ? (float)w[i * jb + q] : 0f;
                if (t > 0)
                {
                    // X₂₁ = −T · X₁₁.
                    GemmDriver.Run(t, jb, jb, -1f, new MatrixSource(tmp, jb, outerContiguous: false),
                        new MatrixSource(diag, lda, outerContiguous: true), 0f, l21, lda, parallel);
                }
            }
        }
        finally
        {
            ArrayPool<double>.Shared.Return(work);
        }
    }

    /// <summary>Unblocked dot-product (Cholesky–Crout) factorisation of the lower triangle of w [n, ld].</summary>
    private static bool FactorDouble(Span<double> w, int n, int ld, out int failedColumn)
    {
        fixed (double* pw = w)
        {
            for (int j = 0; j < n; j++)
            {
                double* rowJ = pw + (nint)j * ld;
                double pivot = rowJ[j] - Dot(rowJ, rowJ, j);
                if (!(pivot > 0))
                {
                    failedColumn = j;
                    return false;
                }
                double d = Math.Sqrt(pivot);
                rowJ[j] = d;
                double inv = 1 / d;
                for (int i = j + 1; i < n; i++)
                {
                    double* rowI = pw + (nint)i * ld;
                    rowI[j] = (rowI[j] - Dot(rowI, rowJ, j)) * inv;
                }
            }
        }
        failedColumn = -1;
        return true;
    }

    /// <summary>
    /// w [n, n] lower triangular (upper ignored) → its inverse in the lower triangle, by rows: row i of X = L⁻¹ is
    /// −(Σ_{p &lt; i} l[i, p]·X[p, ·]) / l[i, i] with X[i, i] = 1/l[i, i], so each step is a contiguous axpy over an
    /// already-inverted row (the earlier column-by-column form was strided and dominated the factorisation time).
    /// </summary>
    private static void InvertLowerDouble(Span<double> w, int n)
    {
        Span<double> acc = n <= 512 ? stackalloc double[n] : new double[n];
        fixed (double* pw = w, pacc = acc)
        {
            for (int i = 0; i < n; i++)
            {
                double* rowI = pw + (nint)i * n;
                new Span<double>(pacc, i).Clear();
                for (int p = 0; p < i; p++) Axpy(rowI[p], pw + (nint)p * n, pacc, p + 1);
                double inv = 1 / rowI[i];
                for (int c = 0; c < i; c++) rowI[c] = -pacc[c] * inv;
                rowI[i] = inv;
            }
        }
    }

    private static double Dot(double* x, double* y, int n)
    {
        int i = 0;
        var s0 = Vector256<double>.Zero;
        var s1 = Vector256<double>.Zero;
        for (; i + 8 <= n; i += 8)
        {
            s0 += Vector256.Load(x + i) * Vector256.Load(y + i);
            s1 += Vector256.Load(x + i + 4) * Vector256.Load(y + i + 4);
        }
        double sum = Vector256.Sum(s0 + s1);
        for (; i < n; i++) sum += x[i] * y[i];
        return sum;
    }

    private static void Axpy(double alpha, double* x, double* y, int n)
    {
        int i = 0;
        var a = Vector256.Create(alpha);
        for (; i + 4 <= n; i += 4) (Vector256.Load(y + i) + a * Vector256.Load(x + i)).Store(y + i);
        for (; i < n; i++) y[i] += alpha * x[i];
    }

    private static void ZeroUpper(float* a, int n, nint lda)
    {
        for (int i = 0; i < n - 1; i++) new Span<float>(a + i * lda + i + 1, n - i - 1).Clear();
    }

    private static void MirrorUpperFromLower(Span<float> a, int n)
    {
        fixed (float* p = a) SymmetricRankUpdate.MirrorLowerToUpper(p, n, n);
    }

    private static void CheckSquare(int length, int n, string name)
    {
        if (n < 0) ThrowHelper.ThrowArgumentOutOfRange(nameof(n), n, "n must be non-negative.");
        if (length < (long)n * n) ThrowHelper.ThrowArgument($"{name} has {length} elements but [{n}, {n}] needs {(long)n * n}.", name);
    }
}
