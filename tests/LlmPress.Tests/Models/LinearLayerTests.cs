using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Tests.Models;

public class LinearLayerTests
{
    // Reference rotation in double: pad each row to a multiple of b and multiply every block by H_b/√b
    // (Sylvester Hadamard, H[i, j] = (−1)^popcount(i & j)).
    private static double[] RotateRows(float[] m, int rows, int cols, int b)
    {
        int padded = (cols + b - 1) / b * b;
        var result = new double[rows * padded];
        for (int r = 0; r < rows; r++)
            for (int block = 0; block < padded; block += b)
                for (int i = 0; i < b; i++)
                {
                    double sum = 0;
                    for (int j = 0; j < b; j++)
                    {
                        int c = block + j;
                        if (c < cols) sum += (System.Numerics.BitOperations.PopCount((uint)(i & j)) % 2 == 0 ? 1 : -1) * (double)m[r * cols + c];
                    }
                    result[r * padded + block + i] = sum / Math.Sqrt(b);
                }
        return result;
    }

    [Theory]
    [InlineData(5, 64, 24, 16)]   // block divides the width
    [InlineData(3, 172, 40, 32)]  // padded: 172 → 192
    [InlineData(1, 100, 7, 128)]  // decode-sized input, one padded block
    [InlineData(33, 48, 16, 2)]
    public void RotatedWeightWithOnlineRotation_ComputesTheOriginalProduct(int tokens, int inFeatures, int outFeatures, int block)
    {
        var random = new Random(inFeatures * 31 + block);
        var w = new float[outFeatures * inFeatures];
        var x = new float[tokens * inFeatures];
        var bias = new float[outFeatures];
        foreach (var a in new[] { w, x, bias })
            for (int i = 0; i < a.Length; i++) a[i] = (float)(random.NextDouble() * 2 - 1);

        var rotated = RotateRows(w, outFeatures, inFeatures, block);
        int padded = rotated.Length / outFeatures;
        var layer = LinearLayer.Rotated("test", inFeatures, WeightView.FromFloats(Array.ConvertAll(rotated, v => (float)v), outFeatures, padded), block, bias);
        Assert.Equal(inFeatures, layer.InFeatures);
        Assert.Equal(padded, layer.WeightColumns);
        Assert.Equal(block, layer.InputRotationBlockSize);

        var y = new float[tokens * outFeatures];
        layer.Forward(x, tokens, y);
        for (int t = 0; t < tokens; t++)
            for (int o = 0; o < outFeatures; o++)
            {
                double expected = bias[o];
                for (int i = 0; i < inFeatures; i++) expected += (double)x[t * inFeatures + i] * w[o * inFeatures + i];
                // FP32 rotation of x (log2 b butterfly levels), FP32 weights rounded once, FP32 GEMM over ≤ 192 terms
                // of magnitude ≤ 1: a few ulps of the sum of |terms| (≤ 192), far below 1e-4.
                Assert.True(Math.Abs(y[t * outFeatures + o] - expected) < 1e-4, $"t {t}, o {o}: {y[t * outFeatures + o]} vs {expected}");
            }
    }

    [Fact]
    public void SettingAnOriginalBasisWeight_RemovesTheRotation()
    {
        var w = WeightView.FromFloats(new float[4 * 8], 4, 8);
        var layer = new LinearLayer("l", w);
        layer.SetRotatedWeight(WeightView.FromFloats(new float[4 * 16], 4, 16), 16);
        Assert.Equal(16, layer.InputRotationBlockSize);
        layer.Weight = w;
        Assert.Null(layer.InputRotationBlockSize);
        Assert.Equal(8, layer.WeightColumns);
    }

    [Fact]
    public void RotatedWeightOfTheWrongShapeOrBlock_IsRefused()
    {
        var layer = new LinearLayer("m.q_proj", WeightView.FromFloats(new float[4 * 8], 4, 8));
        var e = Assert.Throws<ArgumentException>(() => layer.SetRotatedWeight(WeightView.FromFloats(new float[4 * 8], 4, 8), 16));
        Assert.Contains("m.q_proj", e.Message);
        Assert.Throws<ArgumentException>(() => layer.SetRotatedWeight(WeightView.FromFloats(new float[4 * 12], 4, 12), 12));
        Assert.Throws<ArgumentException>(() => layer.Weight = WeightView.FromFloats(new float[4 * 16], 4, 16));
    }
}
