using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;

namespace LlmPress.Tests.Numerics;

/// <summary>The integer-dot decode GEMV (int8 activations) against its scalar reference and against the FP32 product.</summary>
public class Int8DotGemvTests
{
    public static TheoryData<int, int, int, bool, bool> Shapes => new()
    {
        // rows, cols, group, zeros, fp4
        { 13, 576, 128, true, false },  // SmolLM2's hidden size: 4 chunks and a 64-column tail, asymmetric INT4 g128
        { 9, 256, 128, false, false },  // symmetric INT4 (zero-free), two full chunks
        { 7, 172, 172, true, false },   // per channel: one chunk and a 44-column tail (a partial 32-column block)
        { 10, 200, 32, true, false },   // groups of 32, four lanes each, a tail with two of its groups missing
        { 6, 320, 64, false, false },   // groups of 64, half a chunk each, a tail with one group
        { 5, 45, 64, true, false },     // narrower than a chunk (one group of 45): the tail only, odd width
        { 11, 384, 256, true, false },  // groups of two chunks
        { 3, 1536, 128, true, false },  // down_proj's width, no tail; fewer rows than a 4-row block
        { 9, 96, 16, false, true },     // NVFP4-like: E2M1 levels, groups of 16, the tail only
        { 17, 544, 32, false, true },   // MXFP4-like: E2M1 levels, groups of 32, a 32-column tail
        { 4, 10, 16, false, true },     // narrower than a block
        { 6, 255, 255, true, false },   // per channel, odd width: a 127-column tail whose 64th byte holds column 254
    };

    internal static float[] RandomActivation(int cols, int seed)
    {
        var random = new Random(seed);
        var x = new float[cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 2 - 1) * (i % 7 == 0 ? 8f : 1f); // some larger entries
        return x;
    }

    /// <summary>y = W·x at decode (m = 1); <paramref name="int8"/>: quantized activations (int8 for 4-bit, int16 for 8-bit weights).</summary>
    internal static float[] Run(QuantizedMatrix w, float[] x, bool int8, bool parallel = true)
    {
        var y = new float[w.Rows];
        Gemm.MultiplyByQuantized(x, 1, w, y, parallel, int8Activations: int8);
        return y;
    }

    [Fact]
    public void ActivationQuantizationMatchesTheScalarDefinition()
    {
        if (!Int8DotGemv.IsSupported) Assert.Skip("needs AVX-512 BW");
        foreach (int k in new[] { 5, 32, 45, 128, 200, 512, 576, 1536 })
        {
            var x = RandomActivation(k, k);
            if (k >= 128)
            {
                x[40] = float.NaN;                                            // block 1: NaN
                for (int c = 64; c < 96; c++) x[c] = 1e-32f * (c - 80);       // block 2: below the tiny-block threshold
                for (int c = 96; c < 128; c++) x[c] = 0f;                     // block 3: all zero
            }
            if (k >= 512)
            {
                // The same cases in chunks quantized whole, four blocks side by side: ∞ in chunk 2, a tiny block in chunk 3.
                x[300] = float.PositiveInfinity;
                for (int c = 416; c < 448; c++) x[c] = 1e-33f * (c - 430);
            }
            var (values, scales) = Int8DotGemvReference.QuantizeActivation(x);
            unsafe
            {
                fixed (float* px = x)
                {
                    var a = Int8Activation.Quantize(px, k);
                    for (int b = 0; b < scales.Length; b++)
                        Assert.True(scales[b].Equals(a.BlockScales[b]), $"k {k}, block {b}: {a.BlockScales[b]} vs {scales[b]}");
                    for (int c = 0; c < a.Chunks * 128; c++)
                    {
                        // Chunk layout: 64 even columns, then 64 odd columns; zero past k.
                        int chunk = c / 128, j = c % 128, col = chunk * 128 + (j < 64 ? 2 * j : 2 * (j - 64) + 1);
                        Assert.Equal(col < k ? values[col] : 0, a.Codes[c]);
                    }
                    for (int lane = 0; lane < 16 * a.Chunks; lane++)
                    {
                        // Lane L of chunk c carries the scale of block 4c + L/4 (zero past the last block).
                        int block = 4 * (lane / 16) + lane % 16 / 4;
                        float expected = block < scales.Length ? scales[block] : 0f;
                        Assert.True(expected.Equals(a.LaneScales[lane]), $"k {k}, lane {lane}: {a.LaneScales[lane]} vs {expected}");
                    }
                    for (int half = 0; half < 8 * a.Chunks; half++)
                    {
                        // Half block h: columns 16h .. 16h + 15, times its block's scale (zero past k).
                        int sum = 0;
                        for (int col = 16 * half; col < Math.Min(k, 16 * half + 16); col++) sum += values[col];
                        float expected = half / 2 < scales.Length ? scales[half / 2] * sum : 0f;
                        Assert.True(expected.Equals(a.HalfBlockSums[half]), $"k {k}, half block {half}: {a.HalfBlockSums[half]} vs {expected}");
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void KernelMatchesTheScalarReference(int rows, int cols, int group, bool zeros, bool fp4)
    {
        if (!Int8DotGemv.IsSupported) Assert.Skip("needs AVX-512 BW");
        var w = QuantizedMatrixTests.Random(rows, cols, 4, group, zeros, fp4, seed: rows * 31 + cols);
        Assert.True(Int8DotGemv.Applies(w));
        var x = RandomActivation(cols, seed: cols);
        var expected = Int8DotGemvReference.Multiply(w, x);
        foreach (bool parallel in new[] { false, true })
        {
            var y = Run(w, x, int8: true, parallel);
            for (int r = 0; r < rows; r++)
            {
                // Integer sums are exact; the FP32 steps are one convert (exact), a multiply by sx and an FMA by sw per
                // lane and chunk, a 16-lane sum, and the zero-point/offset correction over the groups. Each rounds by
                // ≤ 2⁻²⁴ relative, accumulated over at most (chunks + groups + 8) steps of partial sums bounded by the
                // reference's Σ|terms| (Magnitude): a rigorous-style bound of (chunks + groups + 8)·2⁻²³·Magnitude.
                double magnitude = Int8DotGemvReference.Magnitude(w, x, r);
                double bound = (cols / 128 + w.Groups + 8) * Math.Pow(2, -23) * magnitude + 1e-30;
                Assert.True(Math.Abs(y[r] - expected[r]) <= bound, $"row {r}, parallel {parallel}: {y[r]} vs {expected[r]} (bound {bound:E2})");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void KernelStaysWithinTheActivationRoundingOfTheFp32Product(int rows, int cols, int group, bool zeros, bool fp4)
    {
        if (!Int8DotGemv.IsSupported) Assert.Skip("needs AVX-512 BW");
        var w = QuantizedMatrixTests.Random(rows, cols, 4, group, zeros, fp4, seed: rows * 17 + cols);
        var x = RandomActivation(cols, seed: cols + 1);
        var (_, scales) = Int8DotGemvReference.QuantizeActivation(x);
        var y = Run(w, x, int8: true);
        var exact = Run(w, x, int8: false);
        Assert.False(y.AsSpan().SequenceEqual(exact), "the int8 path did not run"); // activation rounding shows somewhere
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            // |x_c − sx_b·x8_c| ≤ sx_b/2, so |Σ W·x − Σ W·sx·x8| ≤ Σ_c |W_c|·sx_b/2; plus the FP32 rounding of both
            // kernels (≤ 1e-5 of Σ|W·x|, generous for ≤ 1536 terms).
            w.DequantizeRow(r, row);
            double bound = 0, magnitude = 0;
            for (int c = 0; c < cols; c++)
            {
                bound += Math.Abs(row[c]) * scales[c / 32] / 2;
                magnitude += Math.Abs(row[c] * x[c]);
            }
            bound = bound * (1 + 1e-6) + 1e-5 * magnitude + 1e-30;
            Assert.True(Math.Abs(y[r] - exact[r]) <= bound, $"row {r}: {y[r]} vs FP32 {exact[r]} (bound {bound:E2})");
        }
    }

    [Fact]
    public void ANonFiniteActivationGivesNaNAsInFp32()
    {
        if (!Int8DotGemv.IsSupported) Assert.Skip("needs AVX-512 BW");
        var w = QuantizedMatrixTests.Random(8, 256, 4, 128, true, false, seed: 5);
        var x = RandomActivation(256, 5);
        x[200] = float.PositiveInfinity;
        foreach (float v in Run(w, x, int8: true)) Assert.True(float.IsNaN(v) || float.IsInfinity(v), $"{v} is finite");
    }

    [Fact]
    public void FormatsTheKernelDoesNotTakeKeepTheExactProduct()
    {
        // INT8 codes, and INT4 with groups of 96 (a chunk straddles groups unevenly): int8Activations changes nothing.
        foreach (var w in new[] { QuantizedMatrixTests.Random(9, 192, 8, 32, true, false, seed: 1), QuantizedMatrixTests.Random(9, 192, 4, 96, true, false, seed: 2) })
        {
            Assert.False(Int8DotGemv.Applies(w));
            var x = RandomActivation(192, 3);
            Assert.Equal(Run(w, x, int8: false), Run(w, x, int8: true));
        }
    }

    [Fact]
    public void ByteLevelsReproduceTheLevels()
    {
        float[] e2m1 = [0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f];
        var map = ByteLevels.From(e2m1)!;
        Assert.Equal((2, 12), (map.Factor, map.Offset));
        for (int i = 0; i < 16; i++) Assert.Equal(e2m1[i], (map.Bytes[i] - map.Offset) / (float)map.Factor);
        Assert.True(ByteLevels.From([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15])!.IsIdentity);
        Assert.Null(ByteLevels.From([0, 0.1f, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15])); // not integers at any factor ≤ 8
        Assert.Null(ByteLevels.From([0, 100, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15])); // past MaxByte
    }
}

/// <summary>Thread-count determinism of the int8 (4-bit) and int16 (8-bit) decode paths (changes Parallelism.MaxThreads).</summary>
[Collection(GlobalSettingsCollection.Name)]
public class Int8DotGemvThreadTests
{
    [Fact]
    public void ResultsAreBitIdenticalAtOneTwoAndThreeThreads()
    {
        if (!Int8DotGemv.IsSupported || !Int16DotGemv.IsSupported) Assert.Skip("needs AVX-512 BW");
        var cases = new[] { (4, 128, true, false), (4, 32, false, true), (4, 16, false, true), (8, 128, true, false), (8, 64, false, false), (8, 576, true, false) };
        foreach (var (bits, group, zeros, fp4) in cases)
        {
            var w = QuantizedMatrixTests.Random(301, 576, bits, group, zeros, fp4, seed: group); // 301: a one-row tail after 4-row blocks
            var x = new float[576];
            for (int i = 0; i < x.Length; i++) x[i] = MathF.Sin(i);
            float[]? first = null;
            foreach (int threads in new[] { 1, 2, 3 })
                using (NumericsTestUtil.Threads(threads))
                {
                    var y = new float[301];
                    Gemm.MultiplyByQuantized(x, 1, w, y, parallel: true, int8Activations: true);
                    if (first is null) first = y;
                    else Assert.Equal(first, y);
                }
        }
    }
}
