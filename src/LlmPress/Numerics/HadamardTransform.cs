using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using LlmPress.Numerics.Kernels;

namespace LlmPress.Numerics;

/// <summary>
/// In-place fast Walsh–Hadamard transform (Sylvester order) of each row of a batch: x ← H·x with H = H₂⊗…⊗H₂,
/// unnormalised (H·H = n·I) or normalised by 1/√n (orthonormal). Butterfly stages run with stride 1, 2, 4, … as in
/// <see cref="HadamardTransformReference"/>; each butterfly is one add and one subtract (the in-vector stages compute
/// them as fma(x, ±1, partner), which rounds identically), so the result is bit-identical to the reference.
/// Strides below the vector width use lane permutes; larger strides are plain vector adds/subtracts, two stages
/// fused per pass over the row (radix 4). Rows are split across threads when the batch is large.
/// </summary>
public static unsafe class HadamardTransform
{
    /// <summary>Largest supported row length, 2¹⁶.</summary>
    public const int MaxLength = 1 << 16;

    /// <summary>Transforms each row of data ([rows, rowLength], rowLength a power of two ≤ 2¹⁶) in place.</summary>
    /// <exception cref="ArgumentException">rowLength is not a power of two in range, or does not divide data.Length.</exception>
    public static void Transform(Span<float> data, int rowLength, bool normalize)
    {
        if (rowLength <= 0 || rowLength > MaxLength || !BitOperations.IsPow2(rowLength))
            ThrowHelper.ThrowArgumentOutOfRange(nameof(rowLength), rowLength, "Row length must be a power of two from 1 to 65536.");
        if (data.Length % rowLength != 0)
            ThrowHelper.ThrowArgument($"data has {data.Length} elements, not a whole number of rows of {rowLength}.", nameof(data));
        int rows = data.Length / rowLength;
        if (rows == 0) return;
        var level = KernelDispatch.Level;
        float scale = normalize ? ScaleFor(rowLength) : 1f;
        fixed (float* p = data)
        {
            int threads = (long)data.Length >= 1 << 18 ? Math.Min(Parallelism.MaxThreads, rows) : 1;
            if (threads <= 1)
            {
                TransformRows(p, rowLength, 0, rows, level, normalize, scale);
                return;
            }
            var job = new Job { Data = (nint)p, RowLength = rowLength, Rows = rows, Chunks = Math.Min(rows, 4 * threads), Level = level, Normalize = normalize, Scale = scale };
            Parallel.For(0, job.Chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, job.Run);
        }
    }

    /// <summary>
    /// Block-diagonal transform: each row ([rows, rowLength]) is cut into blocks of blockSize (a power of two that
    /// divides rowLength) and each block is transformed on its own, i.e. x ← (I ⊗ H_b)·x; normalised by 1/√blockSize.
    /// </summary>
    public static void TransformBlockDiagonal(Span<float> data, int rowLength, int blockSize, bool normalize)
    {
        if (rowLength <= 0) ThrowHelper.ThrowArgumentOutOfRange(nameof(rowLength), rowLength, "Row length must be positive.");
        if (blockSize <= 0 || rowLength % blockSize != 0)
            ThrowHelper.ThrowArgument($"Block size {blockSize} does not divide the row length {rowLength}.", nameof(blockSize));
        if (data.Length % rowLength != 0)
            ThrowHelper.ThrowArgument($"data has {data.Length} elements, not a whole number of rows of {rowLength}.", nameof(data));
        // Rows are contiguous, so the blocks of all rows are just consecutive rows of length blockSize.
        Transform(data, blockSize, normalize);
    }

    /// <summary>The normalisation factor 1/√n as applied (FP32), shared with the reference.</summary>
    public static float ScaleFor(int n) => (float)(1.0 / Math.Sqrt(n));

    private sealed class Job
    {
        public nint Data;
        public int RowLength, Rows, Chunks;
        public KernelLevel Level;
        public bool Normalize;
        public float Scale;

        public void Run(int chunk)
        {
            int r0 = (int)((long)Rows * chunk / Chunks), r1 = (int)((long)Rows * (chunk + 1) / Chunks);
            TransformRows((float*)Data, RowLength, r0, r1, Level, Normalize, Scale);
        }
    }

    private static void TransformRows(float* data, int n, int r0, int r1, KernelLevel level, bool normalize, float scale)
    {
        for (int r = r0; r < r1; r++)
        {
            float* x = data + (nint)r * n;
            if (level == KernelLevel.Avx512 && n >= 16) Row512(x, n);
            else if (level >= KernelLevel.Avx2 && n >= 8) Row256(x, n);
            else HadamardTransformReference.Butterflies(new Span<float>(x, n));
            if (normalize)
            {
                var row = new Span<float>(x, n);
                System.Numerics.Tensors.TensorPrimitives.Multiply(row, scale, row);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Row512(float* x, int n)
    {
        // Strides 1, 2, 4, 8 inside each 16-lane vector: partner lane i ^ h, sign −1 on lanes with bit h set.
        var p1 = Vector512.Create(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
        var p2 = Vector512.Create(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
        var p4 = Vector512.Create(4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
        var p8 = Vector512.Create(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
        var s1 = Vector512.Create(1f, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1);
        var s2 = Vector512.Create(1f, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1);
        var s4 = Vector512.Create(1f, 1, 1, 1, -1, -1, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1);
        var s8 = Vector512.Create(1f, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1);
        for (int i = 0; i < n; i += 16)
        {
            var v = Vector512.Load(x + i);
            v = Avx512F.FusedMultiplyAdd(v, s1, Avx512F.PermuteVar16x32(v, p1));
            v = Avx512F.FusedMultiplyAdd(v, s2, Avx512F.PermuteVar16x32(v, p2));
            v = Avx512F.FusedMultiplyAdd(v, s4, Avx512F.PermuteVar16x32(v, p4));
            v = Avx512F.FusedMultiplyAdd(v, s8, Avx512F.PermuteVar16x32(v, p8));
            v.Store(x + i);
        }
        int h = 16;
        for (; 4 * h <= n; h *= 4) Radix4Stage512(x, n, h);
        if (h < n) Radix2Stage512(x, n, h);
    }

    /// <summary>Stages h and 2h fused: the same butterflies, in the same order per element, one pass over memory.</summary>
    private static void Radix4Stage512(float* x, int n, int h)
    {
        for (int start = 0; start < n; start += 4 * h)
        {
            float* q = x + start;
            for (int j = 0; j < h; j += 16)
            {
                var a0 = Vector512.Load(q + j);
                var a1 = Vector512.Load(q + j + h);
                var a2 = Vector512.Load(q + j + 2 * h);
                var a3 = Vector512.Load(q + j + 3 * h);
                var b0 = a0 + a1;
                var b1 = a0 - a1;
                var b2 = a2 + a3;
                var b3 = a2 - a3;
                (b0 + b2).Store(q + j);
                (b1 + b3).Store(q + j + h);
                (b0 - b2).Store(q + j + 2 * h);
                (b1 - b3).Store(q + j + 3 * h);
            }
        }
    }

    private static void Radix2Stage512(float* x, int n, int h)
    {
        for (int start = 0; start < n; start += 2 * h)
        {
            float* q = x + start;
            for (int j = 0; j < h; j += 16)
            {
                var a = Vector512.Load(q + j);
                var b = Vector512.Load(q + j + h);
                (a + b).Store(q + j);
                (a - b).Store(q + j + h);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Row256(float* x, int n)
    {
        var p1 = Vector256.Create(1, 0, 3, 2, 5, 4, 7, 6);
        var p2 = Vector256.Create(2, 3, 0, 1, 6, 7, 4, 5);
        var p4 = Vector256.Create(4, 5, 6, 7, 0, 1, 2, 3);
        var s1 = Vector256.Create(1f, -1, 1, -1, 1, -1, 1, -1);
        var s2 = Vector256.Create(1f, 1, -1, -1, 1, 1, -1, -1);
        var s4 = Vector256.Create(1f, 1, 1, 1, -1, -1, -1, -1);
        for (int i = 0; i < n; i += 8)
        {
            var v = Vector256.Load(x + i);
            v = Fma.MultiplyAdd(v, s1, Avx2.PermuteVar8x32(v, p1));
            v = Fma.MultiplyAdd(v, s2, Avx2.PermuteVar8x32(v, p2));
            v = Fma.MultiplyAdd(v, s4, Avx2.PermuteVar8x32(v, p4));
            v.Store(x + i);
        }
        for (int h = 8; h < n; h *= 2)
        {
            for (int start = 0; start < n; start += 2 * h)
            {
                float* q = x + start;
                for (int j = 0; j < h; j += 8)
                {
                    var a = Vector256.Load(q + j);
                    var b = Vector256.Load(q + j + h);
                    (a + b).Store(q + j);
                    (a - b).Store(q + j + h);
                }
            }
        }
    }
}
