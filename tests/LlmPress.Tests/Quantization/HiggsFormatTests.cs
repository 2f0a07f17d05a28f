using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization;

public class HiggsFormatTests
{
    [Fact]
    public void QuantizesTheRotatedBlockToTheNearestGridPoints()
    {
        // By hand on one 256-column row: rotate (H/16), take the block RMS as the scale, round each pair to the nearest
        // grid point in units of the scale.
        var format = QuantFormat.Higgs(2, 64, 256);
        var w = QuantTestData.Gaussian(1, 256, 21);
        var packed = format.QuantizeReference(w, 1, 256);
        var v = (float[])w.Clone();
        ReferenceHadamard.TransformNormalized(v);
        float scale = (float)(Half)(float)Math.Sqrt(v.Sum(x => (double)x * x) / 256);
        Assert.Equal(scale, packed.GetScale(0, 0));
        var grid = HiggsGrid.Get(2, 64);
        var codes = packed.UnpackCodes();
        Assert.Equal(128, codes.Length);
        for (int k = 0; k < 128; k++) Assert.Equal(grid.FindNearest([v[2 * k] / scale, v[2 * k + 1] / scale]), codes[k]);
        var stored = packed.DequantizeStored();
        for (int i = 0; i < 256; i++) Assert.Equal(grid.Points[codes[i / 2] * 2 + i % 2] * scale, stored[i]);
        // Dequantize rotates back to the original basis.
        ReferenceHadamard.TransformNormalized(stored);
        Assert.Equal(stored, packed.Dequantize());
    }

    [Theory]
    [InlineData(2, 256)] [InlineData(2, 64)] [InlineData(2, 16)] [InlineData(1, 16)] [InlineData(1, 8)] [InlineData(1, 4)]
    public void RelativeErrorOnGaussianWeightsIsTheGridsMse(int p, int n)
    {
        // A rotated Gaussian row is Gaussian, so the relative MSE is the grid's MSE on N(0, I) (± sampling noise and the
        // FP16 scale). This is HIGGS' point: the error is known without data.
        var format = QuantFormat.Higgs(p, n, 1024);
        var w = QuantTestData.Gaussian(16, 1024, n + p);
        double error = QuantTestData.RelativeError(format.Quantize(w, 16, 1024).Dequantize(), w);
        double mse = HiggsGrid.Get(p, n).Mse;
        Assert.InRange(error, 0.93 * mse, 1.07 * mse);
    }

    [Fact]
    public void FastEqualsReferenceOnAwkwardShapes()
    {
        int seed = 300;
        foreach (var (rows, cols) in new[] { (1, 1), (3, 255), (9, 300), (2, 600) })
            foreach (var format in new[] { QuantFormat.Higgs(2, 256, 256), QuantFormat.Higgs(2, 16, 512), QuantFormat.Higgs(1, 8, 256), QuantFormat.Higgs(2, 64, 256) })
            {
                var w = QuantTestData.Gaussian(rows, cols, seed++, sigma: 0.03f, outliers: true);
                QuantTestData.AssertIdentical(format.QuantizeReference(w, rows, cols), format.Quantize(w, rows, cols));
            }
    }

    [Fact]
    public void PadsColumnsToTheRotationBlock()
    {
        // cols = 1000 → 1024 stored columns: 512 pair codes (one byte each) and 4 scales per row, all four equal.
        var w = QuantTestData.Gaussian(3, 1000, 5);
        var packed = QuantFormat.Higgs4.Quantize(w, 3, 1000);
        Assert.Equal(1024, packed.StoredColumns);
        Assert.Equal([3, 512], packed.GetTensor("qweight").Shape);
        Assert.Equal([3, 4], packed.GetTensor("scales").Shape);
        Assert.Equal([256, 2], packed.GetTensor("grid").Shape);
        var scales = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(packed.GetTensor("scales").Data).ToArray();
        for (int r = 0; r < 3; r++) Assert.All(scales.AsSpan(r * 4, 4).ToArray(), s => Assert.Equal(scales[r * 4], s));
        var d = packed.Dequantize();
        Assert.Equal(3000, d.Length);
        Assert.InRange(QuantTestData.RelativeError(d, w), 0.005, 0.011);
    }

    [Fact]
    public void AllZeroBlocksDecodeToZero()
    {
        var w = new float[2 * 512];
        w[600] = 1f; // row 1, block 0 nonzero; row 0 all zero; row 1 block 1 zero
        var packed = QuantFormat.Higgs(2, 16, 256).Quantize(w, 2, 512);
        Assert.Equal(0f, packed.GetScale(0, 0));
        Assert.Equal(0f, packed.GetScale(1, 1));
        var stored = packed.DequantizeStored();
        Assert.All(stored[..512], v => Assert.Equal(0f, v));
        Assert.All(stored[(512 + 256)..], v => Assert.Equal(0f, v));
    }

    [Fact]
    public void BitsPerWeight()
    {
        Assert.Equal(4.0625, QuantFormat.Higgs4.BitsPerWeight(4096));
        Assert.Equal(3.0625, QuantFormat.Higgs3.BitsPerWeight(4096));
        Assert.Equal(2.0625, QuantFormat.Higgs2.BitsPerWeight(4096));
        Assert.Equal(4.0625, QuantFormat.Higgs(1, 16).BitsPerWeight(4096));
        Assert.Equal(3.0625, QuantFormat.Higgs(1, 8).BitsPerWeight(2048));
        Assert.Equal(2.0625, QuantFormat.Higgs(1, 4).BitsPerWeight(1024));
        Assert.Equal(HiggsFormat.BitsPerWeight(2, 64), QuantFormat.Higgs3.BitsPerWeight(1024));
        Assert.Equal(3.0625 * 1024 / 1000, QuantFormat.Higgs3.BitsPerWeight(1000)); // padding counts
        var packed = QuantFormat.Higgs3.Quantize(new float[4 * 1024], 4, 1024);
        Assert.Equal(4 * (384 + 8) + 64 * 2 * 4, packed.StorageBytes); // 6-bit pair codes, 4 FP16 scales per row, the grid
    }

    [Fact]
    public void MseSearchIsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => QuantFormat.Higgs4.Quantize(new float[1024], 1, 1024, ScaleSearch.Mse));
        Assert.Contains("higgs-p2-n256", e.Message);
    }
}
