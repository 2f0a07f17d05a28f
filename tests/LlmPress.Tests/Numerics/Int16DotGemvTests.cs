using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;

namespace LlmPress.Tests.Numerics;

/// <summary>The 8-bit integer-dot decode GEMV (int16 activations) against its scalar reference and against the FP32 product.</summary>
public class Int16DotGemvTests
{
    public static TheoryData<int, int, int, bool> Shapes => new()
    {
        // rows, cols, group, zeros
        { 13, 576, 128, true },   // SmolLM2's hidden size (the INT8 LM head's shape): 4 blocks and an odd last unit
        { 9, 256, 128, false },   // symmetric INT8 (zero-free), two whole blocks
        { 7, 172, 172, true },    // per channel: two units and a 44-column FP32 tail
        { 6, 320, 64, false },    // groups of 64: a scale per unit, an odd last unit
        { 10, 200, 64, true },    // groups of 64, three units and an 8-column tail in a fourth group
        { 11, 384, 256, true },   // groups of two blocks
        { 3, 1536, 128, true },   // down_proj's width, fewer rows than a 4-row block
        { 5, 100, 100, true },    // one unit and a 36-column tail, per channel
        { 4, 64, 64, false },     // a single unit
    };

    private static float[] RandomActivation(int cols, int seed) => Int8DotGemvTests.RandomActivation(cols, seed);

    private static float[] Run(QuantizedMatrix w, float[] x, bool quantized, bool parallel = true) => Int8DotGemvTests.Run(w, x, quantized, parallel);

    [Fact]
    public void ActivationQuantizationMatchesTheScalarDefinition()
    {
        if (!Int16DotGemv.IsSupported) Assert.Skip("needs AVX-512 BW");
        foreach (int k in new[] { 64, 100, 128, 192, 576, 1000 })
        {
            var x = RandomActivation(k, k);
            if (k >= 576)
            {
                x[140] = float.NaN;                                        // block 1: NaN
                for (int c = 256; c < 384; c++) x[c] = 1e-32f * (c - 300); // block 2: below the tiny-block threshold
                x[500] = float.NegativeInfinity;                           // block 3: ∞
            }
            var (_, codes, scales) = Int16DotGemvReference.QuantizeActivation(x);
            unsafe
            {
                fixed (float* px = x)
                {
                    var a = Int16Activation.Quantize(px, k);
                    Assert.Equal(k / 64, a.Units);
                    for (int b = 0; b < scales.Length; b++)
                        Assert.True(scales[b].Equals(a.BlockScales[b]), $"k {k}, block {b}: {a.BlockScales[b]} vs {scales[b]}");
                    for (int i = 0; i < a.Units * 64; i++)
                    {
                        // Unit layout: 32 even columns, then 32 odd columns.
                        int unit = i / 64, j = i % 64, col = unit * 64 + (j < 32 ? 2 * j : 2 * (j - 32) + 1);
                        Assert.True(codes[col] == a.Codes[i], $"k {k}, column {col}: {a.Codes[i]} vs {codes[col]}");
                    }
                    for (int half = 0; half < 2 * a.Units; half++)
                    {
                        // Half unit h: columns 32h .. 32h + 31, times its block's scale (NaN for a non-finite block).
                        int sum = 0;
                        for (int col = 32 * half; col < 32 * half + 32; col++) sum += codes[col];
                        float expected = scales[half / 4] * sum;
                        if (float.IsNaN(scales[half / 4])) Assert.True(float.IsNaN(a.HalfUnitSums[half]), $"k {k}, half unit {half}");
                        else Assert.True(expected.Equals(a.HalfUnitSums[half]), $"k {k}, half unit {half}: {a.HalfUnitSums[half]} vs {expected}");
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void KernelMatchesTheScalarReference(int rows, int cols, int group, bool zeros)
    {
        if (!Int16DotGemv.IsSupported) Assert.Skip("needs AVX-512 BW");
        var w = QuantizedMatrixTests.Random(rows, cols, 8, group, zeros, fp4: false, seed: rows * 31 + cols);
        Assert.True(Int16DotGemv.Applies(w));
        var x = RandomActivation(cols, seed: cols);
        var expected = Int16DotGemvReference.Multiply(w, x);
        foreach (bool parallel in new[] { false, true })
        {
            var y = Run(w, x, quantized: true, parallel);
            for (int r = 0; r < rows; r++)
            {
                // Integer sums are exact; the FP32 steps are one convert (a lane sums up to 8 products of 255 · 32767,
                // past 2²⁴, so it rounds too), a multiply by sx and an FMA by sw per lane and block, a 16-lane sum, the zero-point correction over the groups and the FP32 tail. Each rounds by
                // ≤ 2⁻²⁴ relative, accumulated over at most (blocks + groups + tail + 8) steps of partial sums bounded
                // by the reference's Σ|terms| (Magnitude): a bound of (blocks + groups + tail + 8)·2⁻²³·Magnitude.
                double magnitude = Int16DotGemvReference.Magnitude(w, x, r);
                double bound = (cols / 128 + w.Groups + cols % 64 + 9) * Math.Pow(2, -23) * magnitude + 1e-30;
                Assert.True(Math.Abs(y[r] - expected[r]) <= bound, $"row {r}, parallel {parallel}: {y[r]} vs {expected[r]} (bound {bound:E2})");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void KernelStaysWithinTheActivationRoundingOfTheFp32Product(int rows, int cols, int group, bool zeros)
    {
        if (!Int16DotGemv.IsSupported) Assert.Skip("needs AVX-512 BW");
        var w = QuantizedMatrixTests.Random(rows, cols, 8, group, zeros, fp4: false, seed: rows * 17 + cols);
        var x = RandomActivation(cols, seed: cols + 1);
        var (_, _, scales) = Int16DotGemvReference.QuantizeActivation(x);
        var y = Run(w, x, quantized: true);
        var exact = Run(w, x, quantized: false);
        Assert.False(y.AsSpan().SequenceEqual(exact), "the int16 path did not run"); // activation rounding shows somewhere
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            // |x_c − sx_b·x16_c| ≤ sx_b/2 on the quantized columns (the tail is exact), so |Σ W·x − Σ W·x̂| ≤
            // Σ_c |W_c|·sx_b/2; plus the FP32 rounding of both kernels (≤ 1e-5 of Σ|W·x|, generous for ≤ 1536 terms).
            w.DequantizeRow(r, row);
            double bound = 0, magnitude = 0;
            for (int c = 0; c < cols; c++)
            {
                if (c < cols / 64 * 64) bound += Math.Abs(row[c]) * scales[c / 128] / 2;
                magnitude += Math.Abs(row[c] * x[c]);
            }
            bound = bound * (1 + 1e-6) + 1e-5 * magnitude + 1e-30;
            Assert.True(Math.Abs(y[r] - exact[r]) <= bound, $"row {r}: {y[r]} vs FP32 {exact[r]} (bound {bound:E2})");
        }
    }

    [Fact]
    public void ANonFiniteActivationGivesNaNAsInFp32()
    {
        if (!Int16DotGemv.IsSupported) Assert.Skip("needs AVX-512 BW");
        var w = QuantizedMatrixTests.Random(8, 256, 8, 128, true, false, seed: 5);
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity })
        {
            var x = RandomActivation(256, 5);
            x[200] = bad;
            foreach (float v in Run(w, x, quantized: true)) Assert.True(float.IsNaN(v) || float.IsInfinity(v), $"{v} is finite");
        }
    }

    [Fact]
    public void GroupingsTheKernelDoesNotTakeKeepTheExactProduct()
    {
        // INT8 with groups of 32 or 96 (a 64-column unit straddles groups): quantized activations change nothing.
        foreach (int group in new[] { 32, 96 })
        {
            var w = QuantizedMatrixTests.Random(9, 192, 8, group, true, false, seed: group);
            Assert.False(Int16DotGemv.Applies(w));
            var x = RandomActivation(192, 3);
            Assert.Equal(Run(w, x, quantized: false), Run(w, x, quantized: true));
        }
    }
}
