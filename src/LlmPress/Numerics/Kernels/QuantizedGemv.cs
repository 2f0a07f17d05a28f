using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// y[i, r] = Σ_c x[i, c] · W[r, c] for a <see cref="QuantizedMatrix"/> W and a few activation rows (decode, short
/// prompts), straight from the codes: the matrix is read once per call whatever the number of rows, so the call is
/// bound by memory bandwidth at m = 1 and by decoding above.
/// </summary>
/// <remarks>
/// AVX-512, 4-bit: 16 bytes of codes hold 32 columns; zero-extended to 16 int lanes, the low nibbles are the even
/// columns and the high nibbles the odd ones, each mapped to its level with one in-register permute (vpermps over the
/// 16 levels), then w = (level − zero)·scale. The activations are reordered once per call to match ([16 even, 16 odd]
/// per chunk), so no shuffle is needed in the loop. 8-bit: 16 codes → 16 floats (one activation row:
/// <see cref="Int8WeightGemv"/>, four rows at a time with scale and zero point once per group). Columns past the last full chunk go
/// through the scalar decoder. The portable path decodes each row to FP32 and takes dot products.
/// Rows are independent, so results do not depend on the thread count.
/// </remarks>
internal static unsafe class QuantizedGemv
{
    private sealed class Job
    {
        public QuantizedMatrix W = null!;
        public nint X, Xp, Y;
        public int M, Chunks;
        public bool Avx512;
        public Int8Activation? Int8;   // set: the integer-dot decode kernel (4-bit)
        public Int16Activation? Int16; // set: the integer-dot decode kernel (8-bit)
        public readonly ParallelOptions Options = new();
        public readonly Action<int> Body;

        public Job() => Body = RunChunk;

        private void RunChunk(int chunk)
        {
            // Boundaries at multiples of 4 rows, so a row is always decoded by the same path (the 4-row one or the
            // single-row tail) whatever the thread count: the results stay bit-identical.
            int blocks = (W.Rows + 3) / 4;
            int r0 = Math.Min(W.Rows, (int)((long)blocks * chunk / Chunks) * 4), r1 = Math.Min(W.Rows, (int)((long)blocks * (chunk + 1) / Chunks) * 4);
            if (Int8 is { } a) Int8DotGemv.Rows(W, a, (float*)Y, r0, r1);
            else if (Int16 is { } b) Int16DotGemv.Rows(W, b, (float*)X, (float*)Y, r0, r1);
            else Rows(W, (float*)X, (float*)Xp, M, (float*)Y, r0, r1, Avx512);
        }
    }

    private static Job? s_spare;

    /// <summary>
    /// x: [m, W.Cols]; y: [m, W.Rows] (overwritten). <paramref name="int8Activations"/>: at m = 1, when
    /// <see cref="UsesIntegerActivations"/>, x is quantized (4-bit weights: to int8 per 32 columns,
    /// <see cref="Int8DotGemv"/>; 8-bit: to int16 per 128, <see cref="Int16DotGemv"/>) and the products taken in integers.
    /// </summary>
    public static void Run(QuantizedMatrix w, float* x, int m, float* y, bool parallel, bool int8Activations = false)
    {
        bool avx512 = KernelDispatch.Level == KernelLevel.Avx512;
        if (int8Activations && m == 1 && UsesIntegerActivations(w))
        {
            Int8Activation? a = w.Bits == 4 ? Int8Activation.Quantize(x, w.Cols) : null;
            Int16Activation? a16 = a is null ? Int16Activation.Quantize(x, w.Cols) : null;
            int workers = parallel && w.Codes.LongLength >= 1 << 16 ? Parallelism.MaxThreads : 1;
            if (workers <= 1 || w.Rows < 8)
            {
                if (a is not null) Int8DotGemv.Rows(w, a, y, 0, w.Rows);
                else Int16DotGemv.Rows(w, a16!, x, y, 0, w.Rows);
                return;
            }
            // One job object reused across calls (taken and put back atomically, so concurrent callers each get their own).
            var int8Job = Interlocked.Exchange(ref s_spare, null) ?? new Job();
            int8Job.W = w;
            int8Job.Y = (nint)y;
            int8Job.M = 1;
            int8Job.Avx512 = avx512;
            int8Job.Int8 = a;
            int8Job.Int16 = a16;
            int8Job.X = (nint)x;
            int8Job.Chunks = Math.Min(w.Rows / 4, 4 * workers);
            int8Job.Options.MaxDegreeOfParallelism = workers;
            try
            {
                Parallel.For(0, int8Job.Chunks, int8Job.Options, int8Job.Body);
            }
            finally
            {
                int8Job.W = null!;
                int8Job.Int8 = null;
                int8Job.Int16 = null;
                s_spare = int8Job;
            }
            return;
        }
        int k = w.Cols;
        // 4-bit: the activations reordered per 32-column chunk as [16 even columns, 16 odd columns], [m, chunks·32].
        int permutedLength = PermutedLength(w.Bits, m, k, avx512);
        float[]? permuted = permutedLength > 0 ? ArrayPool<float>.Shared.Rent(permutedLength) : null;
        try
        {
            fixed (float* xp = permuted)
            {
                if (permuted is not null) PermuteActivations(x, m, k, xp);
                long bytes = w.Codes.LongLength;
                int threads = parallel && bytes >= 1 << 16 ? Parallelism.MaxThreads : 1;
                if (threads <= 1 || w.Rows < 8)
                {
                    Rows(w, x, xp, m, y, 0, w.Rows, avx512);
                    return;
                }
                var job = new Job { W = w, X = (nint)x, Xp = (nint)xp, Y = (nint)y, M = m, Avx512 = avx512, Chunks = Math.Min(w.Rows / 4, 4 * threads) };
                Parallel.For(0, job.Chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, job.Body);
            }
        }
        finally
        {
            if (permuted is not null) ArrayPool<float>.Shared.Return(permuted);
        }
    }

    /// <summary>True when a decode (m = 1) product with <paramref name="w"/> can take int8 activations on this CPU and tier.</summary>
    internal static bool UsesInt8Activations(QuantizedMatrix w) =>
        KernelDispatch.Level == KernelLevel.Avx512 && Int8DotGemv.IsSupported && Int8DotGemv.Applies(w);

    /// <summary>True when a decode (m = 1) product with <paramref name="w"/> can take int16 activations on this CPU and tier.</summary>
    internal static bool UsesInt16Activations(QuantizedMatrix w) =>
        KernelDispatch.Level == KernelLevel.Avx512 && Int16DotGemv.IsSupported && Int16DotGemv.Applies(w);

    /// <summary>True when a decode product with <paramref name="w"/> takes quantized activations (int8 or int16) when asked to.</summary>
    internal static bool UsesIntegerActivations(QuantizedMatrix w) => UsesInt8Activations(w) || UsesInt16Activations(w);

    /// <summary>Size of the reordered activations the AVX-512 4-bit kernels read ([m, k/32·32]), or 0 when none are needed.</summary>
    internal static int PermutedLength(int bits, int m, int k, bool avx512) => avx512 && bits == 4 && k >= 32 ? m * (k / 32) * 32 : 0;

    /// <summary>x: [m, k] → xp: [m, k/32·32], each 32-column chunk reordered as [16 even columns, 16 odd columns].</summary>
    internal static void PermuteActivations(float* x, int m, int k, float* xp)
    {
        int chunks = k / 32;
        for (int i = 0; i < m; i++)
            for (int c = 0; c < chunks; c++)
            {
                float* src = x + (nint)i * k + c * 32;
                float* dst = xp + ((nint)i * chunks + c) * 32;
                for (int j = 0; j < 16; j++)
                {
                    dst[j] = src[2 * j];
                    dst[16 + j] = src[2 * j + 1];
                }
            }
    }

    /// <summary>y[i, r] for rows [r0, r1) (y: [m, W.Rows]); r0 a multiple of 4 so each row takes the same path on any split.</summary>
    internal static void Rows(QuantizedMatrix w, float* x, float* xp, int m, float* y, int r0, int r1, bool avx512)
    {
        if (!avx512)
        {
            PortableRows(w, x, m, y, r0, r1);
            return;
        }
        using var rowScales = w.GetRowScales(r0, r1);
        fixed (float* scaleValues = rowScales.Values)
        {
            float* scales = scaleValues - rowScales.FirstIndex; // row r's at scales + r·groups
            if (w.Bits == 4) Avx512Rows4(w, scales, x, xp, m, y, r0, r1);
            else if (m == 1) Int8WeightGemv.Rows(w, scales, x, y, r0, r1);
            else Avx512Rows8(w, scales, x, m, y, r0, r1);
        }
    }

    private static void PortableRows(QuantizedMatrix w, float* x, int m, float* y, int r0, int r1)
    {
        int k = w.Cols, n = w.Rows;
        float[] row = ArrayPool<float>.Shared.Rent(k);
        try
        {
            for (int r = r0; r < r1; r++)
            {
                w.DequantizeRow(r, row);
                for (int i = 0; i < m; i++)
                    y[(nint)i * n + r] = TensorPrimitives.Dot(row.AsSpan(0, k), new ReadOnlySpan<float>(x + (nint)i * k, k));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(row);
        }
    }

    // Scale and zero vectors of 32-column chunk c: one group, or (groups of 16) lanes 0–7 from group 2c, 8–15 from 2c + 1.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ChunkVector(float* perGroup, int chunk, int groupSize, bool halves)
    {
        if (halves) return Vector512.Create(Vector256.Create(perGroup[2 * chunk]), Vector256.Create(perGroup[2 * chunk + 1]));
        return Vector512.Create(perGroup[chunk * 32 / groupSize]);
    }

    // The 32 weights of 4-bit chunk c of a row as (even columns, odd columns): (level − zero)·scale, one rounding each.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float> Even, Vector512<float> Odd) DecodeChunk4(byte* rowCodes, int chunk, Vector512<float> levels,
        float* rowScales, float* rowZeros, int groupSize, bool halves)
    {
        var q = Avx512F.ConvertToVector512Int32(Vector128.Load(rowCodes + chunk * 16));
        var lo = Avx512F.PermuteVar16x32(levels, q & Vector512.Create(15));
        var hi = Avx512F.PermuteVar16x32(levels, Avx512F.ShiftRightLogical(q, 4));
        var s = ChunkVector(rowScales, chunk, groupSize, halves);
        if (rowZeros != null)
        {
            var z = ChunkVector(rowZeros, chunk, groupSize, halves);
            lo -= z;
            hi -= z;
        }
        return (lo * s, hi * s);
    }

    private static void Avx512Rows4(QuantizedMatrix w, float* scales, float* x, float* xp, int m, float* y, int r0, int r1)
    {
        int k = w.Cols, n = w.Rows, chunks = k / 32, groups = w.Groups, groupSize = w.GroupSize;
        bool halves = groupSize == 16 && groups > 1;
        bool integerLevels = w.LevelsAreCodes;
        var mask = Vector512.Create(15);
        Vector512<float>* acc = stackalloc Vector512<float>[Math.Max(m, 4)];
        fixed (byte* codes = w.Codes)
        fixed (float* levelsPtr = w.Levels, zerosPtr = w.Zeros)
        {
            var levels = Vector512.Load(levelsPtr);
            int rStart = r0;
            if (m == 1 && !halves && integerLevels && groups <= 4096)
                rStart = Int4DecodeFourRows(w, codes, scales, zerosPtr, x, xp, y, r0, r1);
            else if (m == 1 && !integerLevels && zerosPtr == null && !halves)
                rStart = LevelDecodeFourRows(w, codes, scales, levels, x, xp, y, r0, r1);
            for (int r = rStart; r < r1; r++)
            {
                byte* rowCodes = codes + (nint)r * w.RowBytes;
                float* rowScales = scales + (nint)r * groups;
                float* rowZeros = zerosPtr == null ? null : zerosPtr + (nint)r * groups;
                for (int i = 0; i < Math.Max(m, 4); i++) acc[i] = Vector512<float>.Zero;
                if (m == 1 && !halves)
                {
                    // Decode (m = 1) with whole groups per chunk: Σ s·(level − z)·x = s · Σ (level − z)·x, so the scale is
                    // applied once per group and the zero point folded into the 16 levels once per group.
                    var total = Vector512<float>.Zero;
                    int chunksPerGroup = Math.Max(1, groupSize / 32);
                    for (int c0 = 0, g = 0; c0 < chunks; c0 += chunksPerGroup, g++)
                    {
                        var groupLevels = rowZeros == null ? levels : levels - Vector512.Create(rowZeros[g]);
                        Vector512<float> a0 = Vector512<float>.Zero, a1 = Vector512<float>.Zero;
                        int c1 = Math.Min(chunks, c0 + chunksPerGroup);
                        if (integerLevels)
                        {
                            // INT4: level = code, so convert instead of permuting (vpermps runs on one shuffle pipe and
                            // was the bottleneck); the zero point comes off after the conversion.
                            var zero = Vector512.Create(rowZeros == null ? 0f : rowZeros[g]);
                            for (int c = c0; c < c1; c++)
                            {
                                var q = Avx512F.ConvertToVector512Int32(Vector128.Load(rowCodes + c * 16));
                                float* xc = xp + c * 32;
                                a0 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(q & mask) - zero, Vector512.Load(xc), a0);
                                a1 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512F.ShiftRightLogical(q, 4)) - zero, Vector512.Load(xc + 16), a1);
                            }
                        }
                        else
                            for (int c = c0; c < c1; c++)
                            {
                                var q = Avx512F.ConvertToVector512Int32(Vector128.Load(rowCodes + c * 16));
                                float* xc = xp + c * 32;
                                a0 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(groupLevels, q & mask), Vector512.Load(xc), a0);
                                a1 = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(groupLevels, Avx512F.ShiftRightLogical(q, 4)), Vector512.Load(xc + 16), a1);
                            }
                        total = Avx512F.FusedMultiplyAdd(a0 + a1, Vector512.Create(rowScales[g]), total);
                    }
                    float dot = Vector512.Sum(total);
                    dot = Tail(w, x, r, chunks * 32, dot);
                    y[r] = dot;
                    continue;
                }
                if (m == 1 && halves && rowZeros == null)
                {
                    // Decode with groups of 16 (NVFP4): lanes 0–7 of a chunk belong to group 2c, lanes 8–15 to 2c + 1;
                    // the two scales are loaded together and spread over their lanes with one permute.
                    var spread = Vector512.Create(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
                    Vector512<float> a0 = Vector512<float>.Zero, a1 = Vector512<float>.Zero;
                    for (int c = 0; c < chunks; c++)
                    {
                        var q = Avx512F.ConvertToVector512Int32(Vector128.Load(rowCodes + c * 16));
                        float* xc = xp + c * 32;
                        var t = Avx512F.PermuteVar16x32(levels, q & mask) * Vector512.Load(xc);
                        t = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(levels, Avx512F.ShiftRightLogical(q, 4)), Vector512.Load(xc + 16), t);
                        var s2 = Avx512F.PermuteVar16x32(Vector128.CreateScalar(*(double*)(rowScales + 2 * c)).AsSingle().ToVector256Unsafe().ToVector512Unsafe(), spread);
                        if ((c & 1) == 0) a0 = Avx512F.FusedMultiplyAdd(t, s2, a0);
                        else a1 = Avx512F.FusedMultiplyAdd(t, s2, a1);
                    }
                    float dot = Vector512.Sum(a0 + a1);
                    dot = Tail(w, x, r, chunks * 32, dot);
                    y[r] = dot;
                    continue;
                }
                for (int c = 0; c < chunks; c++)
                {
                    var (lo, hi) = DecodeChunk4(rowCodes, c, levels, rowScales, rowZeros, groupSize, halves);
                    if (m == 1)
                    {
                        // Two accumulators per parity alternate by chunk so consecutive FMAs do not wait on each other.
                        float* xc = xp + c * 32;
                        int a = (c & 1) * 2;
                        acc[a] = Avx512F.FusedMultiplyAdd(lo, Vector512.Load(xc), acc[a]);
                        acc[a + 1] = Avx512F.FusedMultiplyAdd(hi, Vector512.Load(xc + 16), acc[a + 1]);
                    }
                    else
                    {
                        for (int i = 0; i < m; i++)
                        {
                            float* xc = xp + ((nint)i * chunks + c) * 32;
                            acc[i] = Avx512F.FusedMultiplyAdd(hi, Vector512.Load(xc + 16), Avx512F.FusedMultiplyAdd(lo, Vector512.Load(xc), acc[i]));
                        }
                    }
                }
                if (m == 1) acc[0] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
                for (int i = 0; i < m; i++)
                {
                    float sum = Vector512.Sum(acc[i]);
                    float* xi = x + (nint)i * k;
                    sum = Tail(w, xi, r, chunks * 32, sum);
                    y[(nint)i * n + r] = sum;
                }
            }
        }
    }

    /// <summary>
    /// Decode (m = 1) of INT4 rows four at a time: each 32-column chunk of x is loaded once for four rows, whose eight
    /// accumulators are independent. Σ s·(q − z)·x = s·(Σ q·x − z·Σx): codes are converted, not looked up, and the zero
    /// point comes off per group through the group's Σx. Returns the first row it did not do (the last r1 − r0 mod 4).
    /// </summary>
    private static int Int4DecodeFourRows(QuantizedMatrix w, byte* codes, float* scales, float* zeros, float* x, float* xp, float* y, int r0, int r1)
    {
        int k = w.Cols, chunks = k / 32, groups = w.Groups;
        int chunksPerGroup = Math.Max(1, w.GroupSize / 32);
        nint rowBytes = w.RowBytes;
        var mask = Vector512.Create(15);
        // Σx over each group's full chunks, in the kernel's own column order.
        float* groupSums = stackalloc float[groups];
        for (int g = 0, cs = 0; cs < chunks; cs += chunksPerGroup, g++)
        {
            var sum = Vector512<float>.Zero;
            for (int c = cs; c < Math.Min(chunks, cs + chunksPerGroup); c++) sum += Vector512.Load(xp + c * 32) + Vector512.Load(xp + c * 32 + 16);
            groupSums[g] = Vector512.Sum(sum);
        }
        int r = r0;
        for (; r + 4 <= r1; r += 4)
        {
            byte* p0 = codes + r * rowBytes, p1 = p0 + rowBytes, p2 = p1 + rowBytes, p3 = p2 + rowBytes;
            Vector512<float> t0 = default, t1 = default, t2 = default, t3 = default;
            float c0 = 0, c1 = 0, c2 = 0, c3 = 0; // Σ_g s·z·Σx_g per row
            for (int g = 0, cs = 0; cs < chunks; cs += chunksPerGroup, g++)
            {
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                int ce = Math.Min(chunks, cs + chunksPerGroup);
                for (int c = cs; c < ce; c++)
                {
                    var xe = Vector512.Load(xp + c * 32);
                    var xo = Vector512.Load(xp + c * 32 + 16);
                    var q0 = Avx512F.ConvertToVector512Int32(Vector128.Load(p0 + c * 16));
                    var q1 = Avx512F.ConvertToVector512Int32(Vector128.Load(p1 + c * 16));
                    var q2 = Avx512F.ConvertToVector512Int32(Vector128.Load(p2 + c * 16));
                    var q3 = Avx512F.ConvertToVector512Int32(Vector128.Load(p3 + c * 16));
                    a0 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512F.ShiftRightLogical(q0, 4)), xo,
                        Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(q0 & mask), xe, a0));
                    a1 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512F.ShiftRightLogical(q1, 4)), xo,
                        Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(q1 & mask), xe, a1));
                    a2 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512F.ShiftRightLogical(q2, 4)), xo,
                        Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(q2 & mask), xe, a2));
                    a3 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512F.ShiftRightLogical(q3, 4)), xo,
                        Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(q3 & mask), xe, a3));
                }
                float* s = scales + (nint)r * groups + g;
                t0 = Avx512F.FusedMultiplyAdd(a0, Vector512.Create(s[0]), t0);
                t1 = Avx512F.FusedMultiplyAdd(a1, Vector512.Create(s[groups]), t1);
                t2 = Avx512F.FusedMultiplyAdd(a2, Vector512.Create(s[2 * groups]), t2);
                t3 = Avx512F.FusedMultiplyAdd(a3, Vector512.Create(s[3 * groups]), t3);
                if (zeros != null)
                {
                    float* z = zeros + (nint)r * groups + g;
                    float gs = groupSums[g];
                    c0 += s[0] * z[0] * gs;
                    c1 += s[groups] * z[groups] * gs;
                    c2 += s[2 * groups] * z[2 * groups] * gs;
                    c3 += s[3 * groups] * z[3 * groups] * gs;
                }
            }
            y[r] = Vector512.Sum(t0) - c0 + Tail(w, x, r, chunks * 32, 0f);
            y[r + 1] = Vector512.Sum(t1) - c1 + Tail(w, x, r + 1, chunks * 32, 0f);
            y[r + 2] = Vector512.Sum(t2) - c2 + Tail(w, x, r + 2, chunks * 32, 0f);
            y[r + 3] = Vector512.Sum(t3) - c3 + Tail(w, x, r + 3, chunks * 32, 0f);
        }
        return r;
    }

    /// <summary>
    /// Decode (m = 1) of 4-bit rows with a level table, no zero points and whole groups of a multiple of 32 columns
    /// (MXFP4) four rows at a time: each 32-column chunk of x is loaded once for four rows, whose accumulators are
    /// independent (a single row's per-group scale FMA, every chunk at groups of 32, is a dependency chain that left
    /// the core waiting: 69 → 16 µs for a [576×576] MXFP4 GEMV on one Zen 4 core). Levels are looked up with one
    /// in-register permute per 16 codes; Σ s_g·Σ level·x, the scale applied once per group. Groups of 16 (NVFP4) stay
    /// on the single-row path: four rows at a time was faster from cache but slower end to end, where each row brings
    /// a second stream (its scales, half the size of its codes). Returns the first row it did not do (the last
    /// r1 − r0 mod 4).
    /// </summary>
    private static int LevelDecodeFourRows(QuantizedMatrix w, byte* codes, float* scales, Vector512<float> levels, float* x, float* xp,
        float* y, int r0, int r1)
    {
        int k = w.Cols, chunks = k / 32, groups = w.Groups;
        int chunksPerGroup = Math.Max(1, w.GroupSize / 32);
        nint rowBytes = w.RowBytes;
        var mask = Vector512.Create(15);
        int r = r0;
        for (; r + 4 <= r1; r += 4)
        {
            byte* p0 = codes + r * rowBytes, p1 = p0 + rowBytes, p2 = p1 + rowBytes, p3 = p2 + rowBytes;
            float* s0 = scales + (nint)r * groups, s1 = s0 + groups, s2 = s1 + groups, s3 = s2 + groups;
            Vector512<float> t0 = default, t1 = default, t2 = default, t3 = default;
            for (int g = 0, cs = 0; cs < chunks; cs += chunksPerGroup, g++)
            {
                int ce = Math.Min(chunks, cs + chunksPerGroup);
                var xe = Vector512.Load(xp + cs * 32);
                var xo = Vector512.Load(xp + cs * 32 + 16);
                Vector512<float> a0 = ChunkSum(p0, cs, levels, mask, xe, xo), a1 = ChunkSum(p1, cs, levels, mask, xe, xo);
                Vector512<float> a2 = ChunkSum(p2, cs, levels, mask, xe, xo), a3 = ChunkSum(p3, cs, levels, mask, xe, xo);
                for (int c = cs + 1; c < ce; c++)
                {
                    xe = Vector512.Load(xp + c * 32);
                    xo = Vector512.Load(xp + c * 32 + 16);
                    a0 += ChunkSum(p0, c, levels, mask, xe, xo);
                    a1 += ChunkSum(p1, c, levels, mask, xe, xo);
                    a2 += ChunkSum(p2, c, levels, mask, xe, xo);
                    a3 += ChunkSum(p3, c, levels, mask, xe, xo);
                }
                t0 = Avx512F.FusedMultiplyAdd(a0, Vector512.Create(s0[g]), t0);
                t1 = Avx512F.FusedMultiplyAdd(a1, Vector512.Create(s1[g]), t1);
                t2 = Avx512F.FusedMultiplyAdd(a2, Vector512.Create(s2[g]), t2);
                t3 = Avx512F.FusedMultiplyAdd(a3, Vector512.Create(s3[g]), t3);
            }
            y[r] = Tail(w, x, r, chunks * 32, Vector512.Sum(t0));
            y[r + 1] = Tail(w, x, r + 1, chunks * 32, Vector512.Sum(t1));
            y[r + 2] = Tail(w, x, r + 2, chunks * 32, Vector512.Sum(t2));
            y[r + 3] = Tail(w, x, r + 3, chunks * 32, Vector512.Sum(t3));
        }
        return r;
    }

    // level(code)·x over 4-bit chunk c of a row, as 16 lanes: even columns · xe + odd columns · xo (the x of the chunk
    // reordered as [16 even, 16 odd]).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ChunkSum(byte* rowCodes, int chunk, Vector512<float> levels, Vector512<int> mask,
        Vector512<float> xe, Vector512<float> xo)
    {
        var q = Avx512F.ConvertToVector512Int32(Vector128.Load(rowCodes + chunk * 16));
        var sum = Avx512F.PermuteVar16x32(levels, q & mask) * xe;
        return Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(levels, Avx512F.ShiftRightLogical(q, 4)), xo, sum);
    }

    // sum + Σ x[col]·W[r, col] over the columns past the last full chunk (scalar decoder), added in column order.
    internal static float Tail(QuantizedMatrix w, float* x, int r, int from, float sum)
    {
        for (int col = from; col < w.Cols; col++) sum += x[col] * w[r, col];
        return sum;
    }

    private static void Avx512Rows8(QuantizedMatrix w, float* scales, float* x, int m, float* y, int r0, int r1)
    {
        int k = w.Cols, n = w.Rows, chunks = k / 16, groups = w.Groups;
        int chunksPerGroup = groups == 1 ? int.MaxValue : w.GroupSize / 16; // no division per chunk
        Vector512<float>* acc = stackalloc Vector512<float>[Math.Max(m, 2)];
        fixed (byte* codes = w.Codes)
        fixed (float* zerosPtr = w.Zeros)
        {
            for (int r = r0; r < r1; r++)
            {
                byte* rowCodes = codes + (nint)r * w.RowBytes;
                float* rowScales = scales + (nint)r * groups;
                float* rowZeros = zerosPtr == null ? null : zerosPtr + (nint)r * groups;
                for (int i = 0; i < Math.Max(m, 2); i++) acc[i] = Vector512<float>.Zero;
                for (int c = 0, g = 0, inGroup = 0; c < chunks; c++)
                {
                    if (inGroup++ == chunksPerGroup)
                    {
                        inGroup = 1;
                        g++;
                    }
                    var v = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(rowCodes + c * 16)));
                    if (rowZeros != null) v -= Vector512.Create(rowZeros[g]);
                    v *= Vector512.Create(rowScales[g]);
                    if (m == 1)
                    {
                        int a = c & 1;
                        acc[a] = Avx512F.FusedMultiplyAdd(v, Vector512.Load(x + c * 16), acc[a]);
                    }
                    else
                    {
                        for (int i = 0; i < m; i++)
                            acc[i] = Avx512F.FusedMultiplyAdd(v, Vector512.Load(x + (nint)i * k + c * 16), acc[i]);
                    }
                }
                if (m == 1) acc[0] += acc[1];
                for (int i = 0; i < m; i++)
                {
                    float sum = Vector512.Sum(acc[i]);
                    float* xi = x + (nint)i * k;
                    sum = Tail(w, xi, r, chunks * 16, sum);
                    y[(nint)i * n + r] = sum;
                }
            }
        }
    }
    private static readonly Vector512<int> s_interleaveLow = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    private static readonly Vector512<int> s_interleaveHigh = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);

    /// <summary>
    /// Rows [r0, r1) of W as FP32 into dst ([r1 − r0, Cols]), for the GEMM path: the same values as
    /// <see cref="QuantizedMatrix.DequantizeRow"/> ((level − zero)·scale in FP32, one rounding each).
    /// </summary>
    public static void DecodeRows(QuantizedMatrix w, int r0, int r1, float* dst)
    {
        int k = w.Cols;
        if (KernelDispatch.Level != KernelLevel.Avx512)
        {
            for (int r = r0; r < r1; r++) w.DequantizeRow(r, new Span<float>(dst + (nint)(r - r0) * k, k));
            return;
        }
        int groups = w.Groups, groupSize = w.GroupSize;
        using var rangeScales = w.GetRowScales(r0, r1);
        fixed (byte* codes = w.Codes)
        fixed (float* levelsPtr = w.Levels, scaleValues = rangeScales.Values, zerosPtr = w.Zeros)
        {
            float* scales = scaleValues - rangeScales.FirstIndex; // row r's at scales + r·groups
            for (int r = r0; r < r1; r++)
            {
                byte* rowCodes = codes + (nint)r * w.RowBytes;
                float* rowScales = scales + (nint)r * groups;
                float* rowZeros = zerosPtr == null ? null : zerosPtr + (nint)r * groups;
                float* d = dst + (nint)(r - r0) * k;
                int done;
                if (w.Bits == 4)
                {
                    var levels = Vector512.Load(levelsPtr);
                    bool halves = groupSize == 16 && groups > 1;
                    int chunks = k / 32;
                    for (int c = 0; c < chunks; c++)
                    {
                        var (lo, hi) = DecodeChunk4(rowCodes, c, levels, rowScales, rowZeros, groupSize, halves);
                        Avx512F.PermuteVar16x32x2(lo, s_interleaveLow, hi).Store(d + c * 32);
                        Avx512F.PermuteVar16x32x2(lo, s_interleaveHigh, hi).Store(d + c * 32 + 16);
                    }
                    done = chunks * 32;
                }
                else
                {
                    int chunks = k / 16, chunksPerGroup = groups == 1 ? int.MaxValue : groupSize / 16;
                    for (int c = 0, g = 0, inGroup = 0; c < chunks; c++)
                    {
                        if (inGroup++ == chunksPerGroup)
                        {
                            inGroup = 1;
                            g++;
                        }
                        var v = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(rowCodes + c * 16)));
                        if (rowZeros != null) v -= Vector512.Create(rowZeros[g]);
                        (v * Vector512.Create(rowScales[g])).Store(d + c * 16);
                    }
                    done = chunks * 16;
                }
                for (int col = done; col < k; col++) d[col] = w[r, col];
            }
        }
    }
}
