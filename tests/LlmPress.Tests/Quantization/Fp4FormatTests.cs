using System.Runtime.CompilerServices;
using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization;

public class Fp4FormatTests
{
    [Fact]
    public void BlocksHaveTheGgmlStyleSizes()
    {
        Assert.Equal(17, Unsafe.SizeOf<Mxfp4Block>()); // E8M0 + 16 bytes of codes: 4.25 bits for 32 weights
        Assert.Equal(9, Unsafe.SizeOf<Nvfp4Block>());  // E4M3 + 8 bytes of codes: 4.5 bits for 16 weights
        Assert.Equal(4.25, 8.0 * Unsafe.SizeOf<Mxfp4Block>() / Mxfp4Block.Length);
        Assert.Equal(4.5, 8.0 * Unsafe.SizeOf<Nvfp4Block>() / Nvfp4Block.Length);
    }

    [Fact]
    public void MxBlockWithAmaxFiveWorkedByHand()
    {
        // amax = 5 → e = floor(log2 5) − 2 = 0 → scale 1 (E8M0 code 127); elements are rounded as E2M1 directly:
        // 5 → 4 (tie, even code 6), −5 → −4 (code 14), 0.25 → 0, 0.75 → 1 (code 2), 1.25 → 1, 2.5 → 2 (code 4),
        // 3.5 → 4 (code 6), −2.9 → −3 (code 13), 4.9 → 4, 0.1 → 0; the other 22 elements are 0.
        var x = new float[32];
        float[] head = [5f, -5f, 0.25f, 0.75f, 1.25f, 2.5f, 3.5f, -2.9f, 4.9f, 0.1f];
        head.CopyTo(x, 0);
        var block = Mxfp4Block.QuantizeReference(x);
        Assert.Equal(127, block.Scale);
        ReadOnlySpan<byte> codes = block.Codes;
        Assert.Equal(new byte[] { 0xE6, 0x20, 0x42, 0xD6, 0x06 }, codes[..5].ToArray());
        Assert.All(codes[5..].ToArray(), b => Assert.Equal(0, b));
        var d = new float[32];
        block.Dequantize(d);
        Assert.Equal(new[] { 4f, -4f, 0f, 1f, 1f, 2f, 4f, -3f, 4f, 0f }, d[..10]);

        // The same data through the matrix API: identical bytes in the two planes.
        var packed = QuantFormat.Mxfp4().QuantizeReference(x, 1, 32);
        Assert.Equal(new byte[] { 127 }, packed.GetTensor("scales").Data);
        Assert.Equal(codes.ToArray(), packed.GetTensor("qweight").Data);
    }

    [Fact]
    public void MxValuesAboveSixTimesTheScaleSaturate()
    {
        // amax = 7.5 → e = floor(log2 7.5) − 2 = 0: 7.5 and 6.5 clip to 6, 5.5 rounds to 6.
        float[] x = [7.5f, 6.5f, 5.5f, -7f];
        var block = Mxfp4Block.QuantizeReference(x);
        Assert.Equal(127, block.Scale);
        var d = new float[4];
        block.Dequantize(d);
        Assert.Equal(new[] { 6f, 6f, 6f, -6f }, d);
        // amax = 8 → e = 1: scale 2, 8 → 4·2.
        Assert.Equal(128, Mxfp4Block.QuantizeReference([8f, 1f]).Scale);
    }

    [Fact]
    public void NvBlocksWorkedByHand()
    {
        // tensor amax 12 → g = 2688/12 = 224.
        // block 0 amax 12: 12/6·224 = 448 → E4M3 0x7E, effective scale 448/224 = 2: 12/2 → 6, 3/2 → 1.5, −1/2 → −0.5 (all exact).
        // block 1 amax 3: 0.5·224 = 112 = 1.75·2^6 → 0x6E, scale 0.5: 3 → 6, 1.1 → 2.2 → 2 → 1.0.
        // block 2 all zero: E4M3(0) = 0 is replaced by 1.0 (0x38): effective 1/224, all codes 0.
        var w = new float[48];
        w[0] = 12f; w[1] = 3f; w[2] = -1f;
        w[16] = 3f; w[17] = 1.1f;
        var packed = QuantFormat.Nvfp4().QuantizeReference(w, 1, 48);
        Assert.Equal(224f, packed.GlobalScale);
        Assert.Equal(new byte[] { 0x7E, 0x6E, 0x38 }, packed.GetTensor("scales").Data);
        Assert.Equal(2f, packed.GetScale(0, 0));
        Assert.Equal(0.5f, packed.GetScale(0, 1));
        Assert.Equal(1f / 224, packed.GetScale(0, 2));
        var d = packed.Dequantize();
        Assert.Equal(new[] { 12f, 3f, -1f }, d[..3]);
        Assert.Equal(new[] { 3f, 1f }, d[16..18]);
        Assert.All(d[32..], v => Assert.Equal(0f, v));

        var block = Nvfp4Block.QuantizeReference(w.AsSpan(0, 16), 224f);
        Assert.Equal(0x7E, block.Scale);
        var bd = new float[16];
        block.Dequantize(224f, bd);
        Assert.Equal(d[..16], bd);
    }

    [Fact]
    public void ShortLastGroupIsVirtuallyZeroPadded()
    {
        // cols = 100: MXFP4 groups [0,32) [32,64) [64,96) [96,100); the packed row has 50 bytes, not 64.
        int rows = 3, cols = 100;
        var w = QuantTestData.Gaussian(rows, cols, 4);
        foreach (var format in new[] { QuantFormat.Mxfp4(), QuantFormat.Nvfp4() })
        {
            var packed = format.QuantizeReference(w, rows, cols);
            Assert.Equal([rows, 50], packed.GetTensor("qweight").Shape);
            Assert.Equal([rows, format.Kind == QuantKind.Mxfp4 ? 4 : 7], packed.GetTensor("scales").Shape);
            // The last group equals a zero-padded group quantized on its own.
            int g = format.GroupSize!.Value, last = (cols - 1) / g;
            var padded = new float[g];
            w.AsSpan(2 * cols + last * g, cols - last * g).CopyTo(padded);
            var alone = format.Kind == QuantKind.Mxfp4
                ? format.QuantizeReference(padded, 1, g)
                : Nvfp4Format.Quantize(format, padded, 1, g, packed.GlobalScale);
            Assert.Equal(alone.GetTensor("scales").Data[0], packed.GetTensor("scales").Data[2 * packed.GroupCount + last]);
            var d = packed.Dequantize();
            var da = alone.Dequantize();
            for (int c = last * g; c < cols; c++) Assert.Equal(da[c - last * g], d[2 * cols + c]);
        }
    }

    [Fact]
    public void OddColumnCountsLeaveTheLastHighNibbleZero()
    {
        var w = Enumerable.Repeat(-6f, 5).ToArray();
        var packed = QuantFormat.Mxfp4().Quantize(w, 1, 5);
        Assert.Equal(new byte[] { 0xFF, 0xFF, 0x0F }, packed.GetTensor("qweight").Data);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FastEqualsReferenceOnAwkwardShapes(bool mse)
    {
        int seed = 100;
        var search = mse ? ScaleSearch.Mse : ScaleSearch.MinMax;
        foreach (var (rows, cols) in new[] { (1, 1), (2, 15), (3, 17), (7, 100), (5, 257), (33, 64) })
            foreach (var format in new[] { QuantFormat.Mxfp4(), QuantFormat.Nvfp4(), QuantFormat.Nvfp4(rotationBlockSize: 32) })
            {
                var w = QuantTestData.Gaussian(rows, cols, seed++, sigma: 0.05f, outliers: true);
                QuantTestData.AssertIdentical(format.QuantizeReference(w, rows, cols, search), format.Quantize(w, rows, cols, search));
            }
    }

    [Fact]
    public void NvfpBeatsMxfpOnGaussianWeights()
    {
        // Finer groups and scales with 3 mantissa bits: NVFP4's relative MSE on N(0, 1) is clearly below MXFP4's.
        var w = QuantTestData.Gaussian(64, 512, 8);
        double mx = QuantTestData.RelativeError(QuantFormat.Mxfp4().Quantize(w, 64, 512).Dequantize(), w);
        double nv = QuantTestData.RelativeError(QuantFormat.Nvfp4().Quantize(w, 64, 512).Dequantize(), w);
        Assert.InRange(mx, 0.011, 0.016); // measured 0.0132
        Assert.InRange(nv, 0.007, 0.011); // measured 0.0090
        Assert.True(nv < 0.75 * mx, $"nvfp4 {nv} vs mxfp4 {mx}");
    }

    [Fact]
    public void MxfpMseSearchRaisesThePowerOfTwoScaleWhenClippingCostsMore()
    {
        // amax 7.5: the OCP rule gives X = 2^(2−2) = 1, so every 7.5 clips to 6 (error 1.5 each); 2X = 2 codes 7.5/2 =
        // 3.75 as 4 → 8 (error 0.5). No shrink factor can reach 2X; the search must try it.
        var w = Enumerable.Repeat(7.5f, 32).ToArray();
        var minMax = QuantFormat.Mxfp4().Quantize(w, 1, 32);
        var mse = QuantFormat.Mxfp4().Quantize(w, 1, 32, ScaleSearch.Mse);
        Assert.Equal(1f, minMax.GetScale(0, 0));
        Assert.Equal(2f, mse.GetScale(0, 0));
        Assert.All(mse.Dequantize(), v => Assert.Equal(8f, v));
    }

    [Fact]
    public void MseSearchIsNeverWorseThanMinMaxOnItsCriterion()
    {
        int rows = 16, cols = 128;
        var w = QuantTestData.Gaussian(rows, cols, 12, outliers: true);
        foreach (var format in new[] { QuantFormat.Mxfp4(), QuantFormat.Nvfp4() })
        {
            var a = format.Quantize(w, rows, cols).Dequantize();
            var b = format.Quantize(w, rows, cols, ScaleSearch.Mse).Dequantize();
            int g = format.GroupSize!.Value;
            double ta = 0, tb = 0;
            for (int start = 0; start < w.Length; start += g)
            {
                double ea = 0, eb = 0;
                for (int i = start; i < start + g; i++)
                {
                    ea += Math.Pow(Math.Abs(a[i] - w[i]), 2.4);
                    eb += Math.Pow(Math.Abs(b[i] - w[i]), 2.4);
                }
                Assert.True(eb <= ea * (1 + 1e-5), $"{format}: group at {start}: {eb} > {ea}");
                ta += ea;
                tb += eb;
            }
            // E8M0 shrinks are whole factors of 2 that clip the block maximum hard, so for MXFP4 min-max usually stays best.
            if (format.Kind == QuantKind.Nvfp4) Assert.True(tb < 0.99 * ta, $"{format}: {tb} vs {ta}");
        }
    }

    [Fact]
    public void GlobalScaleIsPerTensorAndCanBeShared()
    {
        var w = QuantTestData.Gaussian(4, 64, 13);
        float amax = w.Max(MathF.Abs);
        Assert.Equal(448f * 6f / amax, Nvfp4Format.ComputeGlobalScale(w));
        Assert.Equal(1f, Nvfp4Format.ComputeGlobalScale(new float[8]));
        var shared = Nvfp4Format.Quantize(QuantFormat.Nvfp4(), w, 4, 64, globalScale: 100f);
        Assert.Equal(100f, shared.GlobalScale);
        Assert.True(QuantTestData.RelativeError(shared.Dequantize(), w) < 0.02);
        Assert.Throws<ArgumentException>(() => Nvfp4Format.Quantize(QuantFormat.Nvfp4(), w, 4, 64, globalScale: 0f));
        Assert.Throws<ArgumentException>(() => Nvfp4Format.Quantize(QuantFormat.Mxfp4(), w, 4, 64, globalScale: 1f));
    }

    [Fact]
    public void BitsPerWeight()
    {
        Assert.Equal(4.25, QuantFormat.Mxfp4().BitsPerWeight(4096));
        Assert.Equal(4.5, QuantFormat.Nvfp4().BitsPerWeight(4096));
        Assert.Equal(Mxfp4Format.BitsPerWeight, QuantFormat.Mxfp4().BitsPerWeight(64));
        Assert.Equal(Nvfp4Format.BitsPerWeight, QuantFormat.Nvfp4().BitsPerWeight(64));
        var packed = QuantFormat.Nvfp4().Quantize(new float[8 * 256], 8, 256);
        Assert.Equal(4.5 + 32.0 / (8 * 256), packed.BitsPerWeight);
        Assert.Equal(8 * 128 + 8 * 16 + 4, packed.StorageBytes);
    }
}
