using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// GEMM register-tile kernels: c[MR, NR] = alpha · (a-sliver · b-sliver) + beta · c, where the packed a-sliver is
/// [kc, MR] (MR values of one k step together) and the packed b-sliver is [kc, NR]. Broadcast A, vector B.
/// beta = 0 never reads c (NaN-safe). The store is fma(acc, alpha, beta · c) in every tier and for edge tiles
/// (which run through a full-size temporary), so a given element's arithmetic never depends on where its tile lies.
/// </summary>
internal static unsafe class MicroKernels
{
    /// <summary>AVX-512 tile: 6 rows × 64 columns = 24 zmm accumulators + 4 B vectors + 1 broadcast (29 of 32 registers).
    /// Measured ~108 GFLOP/s from L1 on the 2-core Zen 4 box (its FMA peak is 110–115: 2 × 256-bit pipes).</summary>
    public const int Mr512 = 6, Nr512 = 64;

    /// <summary>AVX2 tile: 6 × 16 = 12 ymm accumulators + 2 B + 1 broadcast (15 of 16 registers).</summary>
    public const int Mr256 = 6, Nr256 = 16;

    /// <summary>Scalar tile, same packing as AVX2.</summary>
    public const int MrScalar = 6, NrScalar = 16;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Avx512Kernel6x64(nint kc, float* a, float* b, float* c, nint ldc, float alpha, float beta)
    {
        // a: [kc, 6], b: [kc, 64], c: [6, ldc]
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default, c20 = default, c21 = default, c22 = default, c23 = default, c30 = default, c31 = default, c32 = default, c33 = default, c40 = default, c41 = default, c42 = default, c43 = default, c50 = default, c51 = default, c52 = default, c53 = default;
        Vector512<float> av;
        for (nint p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var b2 = Vector512.Load(b + 32);
            var b3 = Vector512.Load(b + 48);
            av = Vector512.Create(a[0]);
            c00 = Avx512F.FusedMultiplyAdd(av, b0, c00); c01 = Avx512F.FusedMultiplyAdd(av, b1, c01); c02 = Avx512F.FusedMultiplyAdd(av, b2, c02); c03 = Avx512F.FusedMultiplyAdd(av, b3, c03);
            av = Vector512.Create(a[1]);
            c10 = Avx512F.FusedMultiplyAdd(av, b0, c10); c11 = Avx512F.FusedMultiplyAdd(av, b1, c11); c12 = Avx512F.FusedMultiplyAdd(av, b2, c12); c13 = Avx512F.FusedMultiplyAdd(av, b3, c13);
            av = Vector512.Create(a[2]);
            c20 = Avx512F.FusedMultiplyAdd(av, b0, c20); c21 = Avx512F.FusedMultiplyAdd(av, b1, c21); c22 = Avx512F.FusedMultiplyAdd(av, b2, c22); c23 = Avx512F.FusedMultiplyAdd(av, b3, c23);
            av = Vector512.Create(a[3]);
            c30 = Avx512F.FusedMultiplyAdd(av, b0, c30); c31 = Avx512F.FusedMultiplyAdd(av, b1, c31); c32 = Avx512F.FusedMultiplyAdd(av, b2, c32); c33 = Avx512F.FusedMultiplyAdd(av, b3, c33);
            av = Vector512.Create(a[4]);
            c40 = Avx512F.FusedMultiplyAdd(av, b0, c40); c41 = Avx512F.FusedMultiplyAdd(av, b1, c41); c42 = Avx512F.FusedMultiplyAdd(av, b2, c42); c43 = Avx512F.FusedMultiplyAdd(av, b3, c43);
            av = Vector512.Create(a[5]);
            c50 = Avx512F.FusedMultiplyAdd(av, b0, c50); c51 = Avx512F.FusedMultiplyAdd(av, b1, c51); c52 = Avx512F.FusedMultiplyAdd(av, b2, c52); c53 = Avx512F.FusedMultiplyAdd(av, b3, c53);
            a += 6;
            b += 64;
        }
        var alphaV = Vector512.Create(alpha);
        var betaV = Vector512.Create(beta);
        Store512(c + 0 * ldc, c00, c01, c02, c03, alphaV, betaV, beta);
        Store512(c + 1 * ldc, c10, c11, c12, c13, alphaV, betaV, beta);
        Store512(c + 2 * ldc, c20, c21, c22, c23, alphaV, betaV, beta);
        Store512(c + 3 * ldc, c30, c31, c32, c33, alphaV, betaV, beta);
        Store512(c + 4 * ldc, c40, c41, c42, c43, alphaV, betaV, beta);
        Store512(c + 5 * ldc, c50, c51, c52, c53, alphaV, betaV, beta);
    }

    /// <summary>
    /// The AVX-512 6×64 tile on operands read in place, without packing: A(i, p) = a[i·ai + p·ap] (row-major A has
    /// ai = lda, ap = 1; a transposed one ai = 1, ap = lda) and B(p, j) = b[p·ldb + j]. For small products whose
    /// operands already sit in L1/L2 (attention tiles), where packing would cost as much as the FMAs: the six A values
    /// are broadcast straight from memory. Same store rule as <see cref="Avx512Kernel6x64"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Avx512Kernel6x64Strided(nint kc, float* a, nint ai, nint ap, float* b, nint ldb, float* c, nint ldc, float alpha, float beta)
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default, c20 = default, c21 = default, c22 = default, c23 = default, c30 = default, c31 = default, c32 = default, c33 = default, c40 = default, c41 = default, c42 = default, c43 = default, c50 = default, c51 = default, c52 = default, c53 = default;
        Vector512<float> av;
        float* a0 = a, a1 = a + ai, a2 = a + 2 * ai, a3 = a + 3 * ai, a4 = a + 4 * ai, a5 = a + 5 * ai;
        for (nint p = 0, o = 0; p < kc; p++, o += ap)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var b2 = Vector512.Load(b + 32);
            var b3 = Vector512.Load(b + 48);
            av = Vector512.Create(a0[o]);
            c00 = Avx512F.FusedMultiplyAdd(av, b0, c00); c01 = Avx512F.FusedMultiplyAdd(av, b1, c01); c02 = Avx512F.FusedMultiplyAdd(av, b2, c02); c03 = Avx512F.FusedMultiplyAdd(av, b3, c03);
            av = Vector512.Create(a1[o]);
            c10 = Avx512F.FusedMultiplyAdd(av, b0, c10); c11 = Avx512F.FusedMultiplyAdd(av, b1, c11); c12 = Avx512F.FusedMultiplyAdd(av, b2, c12); c13 = Avx512F.FusedMultiplyAdd(av, b3, c13);
            av = Vector512.Create(a2[o]);
            c20 = Avx512F.FusedMultiplyAdd(av, b0, c20); c21 = Avx512F.FusedMultiplyAdd(av, b1, c21); c22 = Avx512F.FusedMultiplyAdd(av, b2, c22); c23 = Avx512F.FusedMultiplyAdd(av, b3, c23);
            av = Vector512.Create(a3[o]);
            c30 = Avx512F.FusedMultiplyAdd(av, b0, c30); c31 = Avx512F.FusedMultiplyAdd(av, b1, c31); c32 = Avx512F.FusedMultiplyAdd(av, b2, c32); c33 = Avx512F.FusedMultiplyAdd(av, b3, c33);
            av = Vector512.Create(a4[o]);
            c40 = Avx512F.FusedMultiplyAdd(av, b0, c40); c41 = Avx512F.FusedMultiplyAdd(av, b1, c41); c42 = Avx512F.FusedMultiplyAdd(av, b2, c42); c43 = Avx512F.FusedMultiplyAdd(av, b3, c43);
            av = Vector512.Create(a5[o]);
            c50 = Avx512F.FusedMultiplyAdd(av, b0, c50); c51 = Avx512F.FusedMultiplyAdd(av, b1, c51); c52 = Avx512F.FusedMultiplyAdd(av, b2, c52); c53 = Avx512F.FusedMultiplyAdd(av, b3, c53);
            b += ldb;
        }
        var alphaV = Vector512.Create(alpha);
        var betaV = Vector512.Create(beta);
        Store512(c + 0 * ldc, c00, c01, c02, c03, alphaV, betaV, beta);
        Store512(c + 1 * ldc, c10, c11, c12, c13, alphaV, betaV, beta);
        Store512(c + 2 * ldc, c20, c21, c22, c23, alphaV, betaV, beta);
        Store512(c + 3 * ldc, c30, c31, c32, c33, alphaV, betaV, beta);
        Store512(c + 4 * ldc, c40, c41, c42, c43, alphaV, betaV, beta);
        Store512(c + 5 * ldc, c50, c51, c52, c53, alphaV, betaV, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store512(float* r, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3,
        Vector512<float> alphaV, Vector512<float> betaV, float beta)
    {
        if (beta == 0)
        {
            (v0 * alphaV).Store(r);
            (v1 * alphaV).Store(r + 16);
            (v2 * alphaV).Store(r + 32);
            (v3 * alphaV).Store(r + 48);
        }
        else
        {
            Avx512F.FusedMultiplyAdd(v0, alphaV, Vector512.Load(r) * betaV).Store(r);
            Avx512F.FusedMultiplyAdd(v1, alphaV, Vector512.Load(r + 16) * betaV).Store(r + 16);
            Avx512F.FusedMultiplyAdd(v2, alphaV, Vector512.Load(r + 32) * betaV).Store(r + 32);
            Avx512F.FusedMultiplyAdd(v3, alphaV, Vector512.Load(r + 48) * betaV).Store(r + 48);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Avx2Kernel6x16(nint kc, float* a, float* b, float* c, nint ldc, float alpha, float beta)
    {
        // a: [kc, 6], b: [kc, 16], c: [6, ldc]
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        Vector256<float> av;
        for (nint p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            av = Vector256.Create(a[0]);
            c00 = Fma.MultiplyAdd(av, b0, c00); c01 = Fma.MultiplyAdd(av, b1, c01);
            av = Vector256.Create(a[1]);
            c10 = Fma.MultiplyAdd(av, b0, c10); c11 = Fma.MultiplyAdd(av, b1, c11);
            av = Vector256.Create(a[2]);
            c20 = Fma.MultiplyAdd(av, b0, c20); c21 = Fma.MultiplyAdd(av, b1, c21);
            av = Vector256.Create(a[3]);
            c30 = Fma.MultiplyAdd(av, b0, c30); c31 = Fma.MultiplyAdd(av, b1, c31);
            av = Vector256.Create(a[4]);
            c40 = Fma.MultiplyAdd(av, b0, c40); c41 = Fma.MultiplyAdd(av, b1, c41);
            av = Vector256.Create(a[5]);
            c50 = Fma.MultiplyAdd(av, b0, c50); c51 = Fma.MultiplyAdd(av, b1, c51);
            a += 6;
            b += 16;
        }
        var alphaV = Vector256.Create(alpha);
        var betaV = Vector256.Create(beta);
        Store256(c + 0 * ldc, c00, c01, alphaV, betaV, beta);
        Store256(c + 1 * ldc, c10, c11, alphaV, betaV, beta);
        Store256(c + 2 * ldc, c20, c21, alphaV, betaV, beta);
        Store256(c + 3 * ldc, c30, c31, alphaV, betaV, beta);
        Store256(c + 4 * ldc, c40, c41, alphaV, betaV, beta);
        Store256(c + 5 * ldc, c50, c51, alphaV, betaV, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store256(float* r, Vector256<float> v0, Vector256<float> v1, Vector256<float> alphaV, Vector256<float> betaV, float beta)
    {
        if (beta == 0)
        {
            (v0 * alphaV).Store(r);
            (v1 * alphaV).Store(r + 8);
        }
        else
        {
            Fma.MultiplyAdd(v0, alphaV, Vector256.Load(r) * betaV).Store(r);
            Fma.MultiplyAdd(v1, alphaV, Vector256.Load(r + 8) * betaV).Store(r + 8);
        }
    }

    /// <summary>Portable tile for CPUs without AVX2/FMA: plain loops over a [6, 16] accumulator on the stack.</summary>
    [SkipLocalsInit]
    public static void ScalarKernel6x16(nint kc, float* a, float* b, float* c, nint ldc, float alpha, float beta)
    {
        // a: [kc, 6], b: [kc, 16], c: [6, ldc]
        float* acc = stackalloc float[MrScalar * NrScalar];
        for (int i = 0; i < MrScalar * NrScalar; i++) acc[i] = 0;
        for (nint p = 0; p < kc; p++)
        {
            for (int i = 0; i < MrScalar; i++)
            {
                float av = a[i];
                float* row = acc + i * NrScalar;
                for (int j = 0; j < NrScalar; j++) row[j] = MathF.FusedMultiplyAdd(av, b[j], row[j]);
            }
            a += MrScalar;
            b += NrScalar;
        }
        for (int i = 0; i < MrScalar; i++)
        {
            float* r = c + i * ldc;
            float* row = acc + i * NrScalar;
            if (beta == 0)
                for (int j = 0; j < NrScalar; j++) r[j] = row[j] * alpha;
            else
                for (int j = 0; j < NrScalar; j++) r[j] = MathF.FusedMultiplyAdd(row[j], alpha, r[j] * beta);
        }
    }
}
