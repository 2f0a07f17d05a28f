using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization;

public class QuantFormatTests
{
    [Theory]
    [InlineData("int4-asym-g128")] [InlineData("int3-sym-perchannel")] [InlineData("int2-asym-g1")] [InlineData("int8-sym-g64-rot128")]
    [InlineData("mxfp4")] [InlineData("mxfp4-rot32")] [InlineData("nvfp4")] [InlineData("nvfp4-rot16")]
    [InlineData("higgs-p2-n256")] [InlineData("higgs-p1-n4")] [InlineData("higgs-p2-n16-rot256")]
    public void NamesRoundTrip(string name)
    {
        var format = QuantFormat.Parse(name);
        Assert.Equal(name, format.Name);
        Assert.Equal(name, format.ToString());
        Assert.Equal(format, QuantFormat.Parse(format.Name));
    }

    [Fact]
    public void PresetsAndAliases()
    {
        Assert.Equal(QuantFormat.Higgs(2, 256), QuantFormat.Parse("higgs4"));
        Assert.Equal(QuantFormat.Higgs3, QuantFormat.Parse("higgs3"));
        Assert.Equal("higgs-p2-n16", QuantFormat.Higgs2.Name);
        Assert.Equal(1024, QuantFormat.Higgs4.RotationBlockSize);
        Assert.Equal(4, QuantFormat.Higgs4.Bits);
        Assert.Equal(8, QuantFormat.Higgs4.CodeBits);
        Assert.Equal(2, QuantFormat.Higgs4.ColumnsPerStep);
        Assert.Equal(32, QuantFormat.Mxfp4().GroupSize);
        Assert.Equal(16, QuantFormat.Nvfp4().GroupSize);
        Assert.Null(QuantFormat.Int(4).GroupSize);
        Assert.NotEqual(QuantFormat.Int(4, 128), QuantFormat.Int(4, 128, symmetric: true));
    }

    [Theory]
    [InlineData("")] [InlineData("int9-sym-g128")] [InlineData("int1-sym-g128")] [InlineData("int4-sym-g0")] [InlineData("int4-sym-g-1")] [InlineData("int4-foo-g128")]
    [InlineData("int4-sym")] [InlineData("mxfp4-g64")] [InlineData("nvfp4-rot12")] [InlineData("higgs-p2-n32")] [InlineData("higgs-p3-n8")]
    [InlineData("higgs-p2-n256-rot32")] [InlineData("fp8")] [InlineData("int4-sym-g128-rot")]
    public void RejectsBadNames(string name)
    {
        Assert.False(QuantFormat.TryParse(name, out _));
        var e = Assert.Throws<ArgumentException>(() => QuantFormat.Parse(name));
        Assert.Contains($"'{name}'", e.Message);
    }

    [Fact]
    public void FactoriesRejectNonsense()
    {
        Assert.Contains("2 to 8 bits, not 9", Assert.Throws<ArgumentException>(() => QuantFormat.Int(9)).Message);
        Assert.Contains("2 to 8 bits, not 1", Assert.Throws<ArgumentException>(() => QuantFormat.Int(1)).Message);
        Assert.Contains("at least 1, not 0", Assert.Throws<ArgumentException>(() => QuantFormat.Int(4, 0)).Message);
        Assert.Throws<ArgumentException>(() => QuantFormat.Int(4, -128));
        Assert.Throws<ArgumentException>(() => QuantFormat.Mxfp4(rotationBlockSize: 48));
        Assert.Throws<ArgumentException>(() => QuantFormat.Nvfp4(rotationBlockSize: 1));
        Assert.Throws<ArgumentException>(() => QuantFormat.Higgs(2, 32));
        Assert.Throws<ArgumentException>(() => QuantFormat.Higgs(2, 256, 32)); // below the 64-column minimum
    }

    [Theory]
    [InlineData("higgs-p2-n256", 4096, "higgs-p2-n256")]        // 1024 divides: kept
    [InlineData("higgs-p2-n256", 576, "higgs-p2-n256-rot128")]  // 1024/512 pad to 1024 (+78%), 256 to 768 (+33%), 128 to 640 (+11%)
    [InlineData("higgs-p2-n256", 1536, "higgs-p2-n256-rot512")] // 1536 = 3 · 512
    [InlineData("higgs-p2-n256", 172, "higgs-p2-n256-rot64")]   // 192 = +11.6%
    [InlineData("higgs-p2-n256", 40, "higgs-p2-n256-rot64")]    // the minimum, whatever the padding
    [InlineData("nvfp4-rot16", 172, "nvfp4-rot16")]              // 176 = +2.3%
    [InlineData("mxfp4-rot128", 172, "mxfp4-rot64")]
    [InlineData("mxfp4", 172, "mxfp4")]                          // no rotation: unchanged
    public void FitRotationTo_TakesTheLargestBlockThatPadsAtMostAnEighth(string name, int cols, string expected)
    {
        var fitted = QuantFormat.Parse(name).FitRotationTo(cols);
        Assert.Equal(expected, fitted.Name);
        Assert.True(fitted.StoredColumns(cols) * 8L <= cols * 9L || fitted.RotationBlockSize is 64 or 16, $"{fitted.Name} pads {cols} to {fitted.StoredColumns(cols)}");
    }

    [Fact]
    public void SmallHiggsBlocksStoreOneScalePerBlock()
    {
        var format = QuantFormat.Higgs(2, 256, 64);
        Assert.Equal(64, format.HiggsScaleColumns);
        Assert.Equal(256, QuantFormat.Higgs4.HiggsScaleColumns);
        Assert.Equal(4 + 16.0 / 64, format.BitsPerWeight(128), 12);
        var w = QuantTestData.Gaussian(3, 128, 5);
        var packed = format.Quantize(w, 3, 128);
        Assert.Equal(new long[] { 3, 2 }, packed.GetTensor("scales").Shape);
        Assert.Equal(packed.StorageBytes * 8.0 / (3 * 128), packed.BitsPerWeight, 12);
        Assert.InRange(QuantTestData.RelativeError(packed.Dequantize(), w), 0.005, 0.02); // p=2 n=256 grid MSE ≈ 0.0094 on N(0,1)
    }

    [Fact]
    public void GroupSizesLargerThanTheRowMeanPerChannel()
    {
        var a = QuantFormat.Int(4, 1000).Quantize(QuantTestData.Gaussian(2, 100, 1), 2, 100);
        var b = QuantFormat.Int(4).Quantize(QuantTestData.Gaussian(2, 100, 1), 2, 100);
        Assert.Equal(1, a.GroupCount);
        Assert.Equal(b.GetTensor("qweight").Data, a.GetTensor("qweight").Data);
        Assert.Equal(b.GetTensor("scales").Data, a.GetTensor("scales").Data);
    }

    [Theory]
    [MemberData(nameof(QuantTestData.AllFormatNames), MemberType = typeof(QuantTestData))]
    public void NonFiniteWeightsAreRejectedWithTheirPosition(string name)
    {
        var format = QuantFormat.Parse(name);
        var w = new float[3 * 40];
        w[2 * 40 + 17] = float.NaN;
        var e = Assert.Throws<ArgumentException>(() => format.Quantize(w, 3, 40));
        Assert.Contains($"{name}: weight at row 2, column 17 is NaN", e.Message);
        w[2 * 40 + 17] = float.NegativeInfinity;
        Assert.Contains("row 2, column 17", Assert.Throws<ArgumentException>(() => format.QuantizeReference(w, 3, 40)).Message);
        Assert.Contains("row 2, column 17", Assert.Throws<ArgumentException>(() => format.ToStoredBasis(w, 3, 40)).Message);
        Assert.Throws<ArgumentException>(() => format.Quantize(new float[10], 3, 4));
    }

    [Fact]
    public void RotationIsUndoneByDequantize()
    {
        // With a rotation, the stored basis is W·H/√b; Dequantize maps back, so the error is comparable with W directly.
        int rows = 8, cols = 96;
        var w = QuantTestData.Gaussian(rows, cols, 6);
        var format = QuantFormat.Nvfp4(rotationBlockSize: 64);
        var packed = format.Quantize(w, rows, cols);
        Assert.Equal(128, packed.StoredColumns);
        var stored = format.ToStoredBasis(w, rows, cols);
        Assert.InRange(QuantTestData.RelativeError(packed.DequantizeStored(), stored), 0.005, 0.02);
        Assert.InRange(QuantTestData.RelativeError(packed.Dequantize(), w), 0.005, 0.02);
    }
}
