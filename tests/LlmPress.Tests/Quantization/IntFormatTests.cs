using System.Runtime.InteropServices;
using LlmPress.Numerics;
using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization;

public class IntFormatTests
{
    [Fact]
    public void Int4AsymmetricRowWorkedByHand()
    {
        // xmin = −1, xmax = 2: s = fp16(3/15) = 0.199951171875, z = round(1/s) = round(5.0012) = 5;
        // codes: round(−5.0012) + 5 = 0, round(2.5006) + 5 = 8, round(10.0024) + 5 = 15, round(1.2503) + 5 = 6.
        float[] w = [-1f, 0.5f, 2f, 0.25f];
        var packed = QuantFormat.Int(4).QuantizeReference(w, 1, 4);
        Assert.Equal(0.199951171875f, packed.GetScale(0, 0));
        Assert.Equal(5, packed.GetZero(0, 0));
        Assert.Equal(new byte[] { 0, 8, 15, 6 }, packed.UnpackCodes());
        Assert.Equal(new byte[] { 0x80, 0x6F }, packed.GetTensor("qweight").Data);
        Assert.Equal(new byte[] { 0x05 }, packed.GetTensor("qzeros").Data);
        Assert.Equal(new[] { -5 * 0.199951171875f, 3 * 0.199951171875f, 10 * 0.199951171875f, 0.199951171875f }, packed.Dequantize());
    }

    [Fact]
    public void Int4SymmetricRowWorkedByHand()
    {
        // max|x| = 2: s = fp16(4/15) = 0.2666015625, z = 8; 2/s = 7.5018 → 8 + 8 = 16 clamps to 15 (the grid ends at +7s).
        float[] w = [-1f, 0.5f, 2f, 0.25f];
        var packed = QuantFormat.Int(4, symmetric: true).QuantizeReference(w, 1, 4);
        Assert.Equal(0.2666015625f, packed.GetScale(0, 0));
        Assert.Equal(8, packed.GetZero(0, 0));
        Assert.Equal(new byte[] { 4, 10, 15, 9 }, packed.UnpackCodes());
        Assert.Equal(["qweight", "scales"], packed.Tensors.Select(t => t.Suffix));
        Assert.Equal(new[] { -4 * 0.2666015625f, 2 * 0.2666015625f, 7 * 0.2666015625f, 0.2666015625f }, packed.Dequantize());
    }

    [Fact]
    public void AllZeroGroupsUseTheUnitRange()
    {
        // gptq.py: xmin = xmax = 0 → [−1, 1]; asymmetric z = round(1/fp16(2/3)) = round(1.5) = 2 (to even), all codes = z.
        var packed = QuantFormat.Int(2, 4).QuantizeReference(new float[8], 1, 8);
        Assert.Equal((float)(Half)(2f / 3), packed.GetScale(0, 1));
        Assert.Equal(2, packed.GetZero(0, 1));
        Assert.All(packed.Dequantize(), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void ShortLastGroupIsItsOwnGroup()
    {
        // cols = 10, g = 4: groups [0,4), [4,8), [8,10); the last group's range comes from its two columns only.
        float[] w = [1, 2, 3, 4, -8, 8, 0, 0, 0.5f, -0.25f];
        var packed = QuantFormat.Int(8, 4, symmetric: true).QuantizeReference(w, 1, 10);
        Assert.Equal(3, packed.GroupCount);
        Assert.Equal([1, 3], packed.GetTensor("scales").Shape);
        Assert.Equal((float)(Half)(2 * 0.5f / 255), packed.GetScale(0, 2));
        Assert.Equal(10, packed.UnpackCodes().Length);
        var d = packed.Dequantize();
        for (int i = 0; i < 10; i++) Assert.Equal(w[i], d[i], 0.02f * Math.Abs(w[i]) + 1e-3f);
    }

    [Theory]
    [InlineData(2)] [InlineData(3)] [InlineData(4)] [InlineData(8)]
    public void FastEqualsReferenceOnAwkwardShapes(int bits)
    {
        int seed = bits;
        foreach (var (rows, cols) in new[] { (1, 1), (3, 7), (5, 33), (17, 100), (9, 257) })
            foreach (int? group in new int?[] { null, 1, 8, 32, 128, 1000 })
                foreach (bool symmetric in new[] { false, true })
                {
                    var w = QuantTestData.Gaussian(rows, cols, seed++, outliers: true);
                    var format = QuantFormat.Int(bits, group, symmetric);
                    foreach (var search in new[] { ScaleSearch.MinMax, ScaleSearch.Mse })
                    {
                        if (search == ScaleSearch.Mse && rows * cols > 2000) continue; // the scalar MSE reference is slow in Debug
                        var reference = format.QuantizeReference(w, rows, cols, search);
                        QuantTestData.AssertIdentical(reference, format.Quantize(w, rows, cols, search));
                    }
                }
    }

    [Fact]
    public void RelativeErrorOnGaussianWeightsIsAsExpected()
    {
        // Uniform rounding of N(0, 1): relative MSE ≈ s²/12 with s = 2·max|x|/15 over groups of 128 (max|x| ≈ 2.6) →
        // about 0.010 to 0.011 (plus the clipped top level); per channel over 1024 columns max|x| ≈ 3.2 → about 0.016.
        var w = QuantTestData.Gaussian(64, 1024, 1);
        double g128 = QuantTestData.RelativeError(QuantFormat.Int(4, 128, symmetric: true).Quantize(w, 64, 1024).Dequantize(), w);
        double perChannel = QuantTestData.RelativeError(QuantFormat.Int(4, null, symmetric: true).Quantize(w, 64, 1024).Dequantize(), w);
        double asym = QuantTestData.RelativeError(QuantFormat.Int(4, 128).Quantize(w, 64, 1024).Dequantize(), w);
        double int3 = QuantTestData.RelativeError(QuantFormat.Int(3, 128, symmetric: true).Quantize(w, 64, 1024).Dequantize(), w);
        double int8 = QuantTestData.RelativeError(QuantFormat.Int(8, 128, symmetric: true).Quantize(w, 64, 1024).Dequantize(), w);
        Assert.InRange(g128, 0.009, 0.013);
        Assert.InRange(perChannel, 0.013, 0.020);
        Assert.InRange(asym, 0.008, g128);           // the asymmetric grid fits the range more tightly
        Assert.InRange(int3, 3.5 * g128, 5 * g128);  // one bit less: ≈ 4× the error
        Assert.InRange(int8, 0, g128 / 200);          // four bits more: ≈ 1/256
    }

    [Fact]
    public void MseSearchIsNeverWorseThanMinMaxOnItsCriterion()
    {
        foreach (var (bits, symmetric) in new[] { (2, false), (3, true), (4, false), (4, true) })
        {
            int rows = 24, cols = 96;
            var w = QuantTestData.Gaussian(rows, cols, bits, outliers: true);
            var format = QuantFormat.Int(bits, 32, symmetric);
            var minmax = format.Quantize(w, rows, cols).Dequantize();
            var mse = format.Quantize(w, rows, cols, ScaleSearch.Mse).Dequantize();
            double totalMinMax = 0, totalMse = 0;
            for (int r = 0; r < rows; r++)
                for (int g = 0; g < cols / 32; g++)
                {
                    double a = 0, b = 0;
                    for (int c = g * 32; c < g * 32 + 32; c++)
                    {
                        a += Math.Pow(Math.Abs(minmax[r * cols + c] - w[r * cols + c]), 2.4);
                        b += Math.Pow(Math.Abs(mse[r * cols + c] - w[r * cols + c]), 2.4);
                    }
                    Assert.True(b <= a * (1 + 1e-5), $"int{bits}: row {r} group {g}: {b} > {a}");
                    totalMinMax += a;
                    totalMse += b;
                }
            Assert.True(totalMse < 0.98 * totalMinMax, $"int{bits}: the search should help on data with outliers ({totalMse} vs {totalMinMax})");
        }
    }

    [Fact]
    public void ScalesAreFp16AndDequantizationUsesThemExactly()
    {
        int rows = 8, cols = 64;
        var w = QuantTestData.Gaussian(rows, cols, 3, sigma: 0.02f);
        var packed = QuantFormat.Int(4, 16).Quantize(w, rows, cols);
        var tensor = packed.GetTensor("scales");
        Assert.Equal(DType.F16, tensor.DType);
        var halves = MemoryMarshal.Cast<byte, Half>(tensor.Data);
        var codes = packed.UnpackCodes();
        var d = packed.Dequantize();
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                float s = (float)halves[r * 4 + c / 16];
                Assert.Equal(s * (codes[r * cols + c] - (float)packed.GetZero(r, c / 16)), d[r * cols + c]);
            }
    }

    [Fact]
    public void BitsPerWeightFollowsTheFormula()
    {
        Assert.Equal(4 + 20.0 / 128, QuantFormat.Int(4, 128).BitsPerWeight(4096));
        Assert.Equal(4 + 16.0 / 128, QuantFormat.Int(4, 128, symmetric: true).BitsPerWeight(4096));
        Assert.Equal(3 + 19.0 / 4096, QuantFormat.Int(3).BitsPerWeight(4096));
        Assert.Equal(IntFormat.BitsPerWeight(2, 64, false), QuantFormat.Int(2, 64).BitsPerWeight(1024));
        var packed = QuantFormat.Int(3, 128).Quantize(new float[16 * 1024], 16, 1024);
        Assert.Equal(16 * (1024 * 3 / 8 + 8 * 2 + 3), packed.StorageBytes); // codes + FP16 scales + 3-bit zeros (8 groups → 3 bytes)
    }

    [Fact]
    public void ScaleOverflowNamesRowAndGroup()
    {
        var w = new float[2 * 8];
        w[8 + 5] = 1e7f;
        var e = Assert.Throws<ArgumentException>(() => QuantFormat.Int(4, 4).Quantize(w, 2, 8));
        Assert.Contains("row 1, group 1", e.Message);
        Assert.Contains("int4-asym-g4", e.Message);
    }
}
