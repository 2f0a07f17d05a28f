using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;

namespace LlmPress.Tests.Numerics;

public class QuantizedMatrixTests
{
    private static readonly float[] E2M1 = [0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f];
    private static readonly float[] Int4Levels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    /// <summary>Random codes, positive scales and (when asked) integer zero points.</summary>
    internal static QuantizedMatrix Random(int rows, int cols, int bits, int groupSize, bool zeros, bool fp4, int seed)
    {
        var random = new Random(seed);
        int rowBytes = bits == 4 ? (cols + 1) / 2 : cols;
        int groups = (cols + Math.Min(groupSize, cols) - 1) / Math.Min(groupSize, cols);
        var codes = new byte[rows * rowBytes];
        random.NextBytes(codes);
        if (bits == 4 && cols % 2 == 1)
            for (int r = 0; r < rows; r++) codes[r * rowBytes + rowBytes - 1] &= 0x0F; // the unused high nibble is zero
        var scales = new float[rows * groups];
        for (int i = 0; i < scales.Length; i++) scales[i] = (float)(0.001 + 0.05 * random.NextDouble());
        float[]? z = null;
        if (zeros)
        {
            z = new float[scales.Length];
            for (int i = 0; i < z.Length; i++) z[i] = random.Next(bits == 4 ? 16 : 256);
        }
        return new QuantizedMatrix(rows, cols, bits, groupSize, codes, bits == 4 ? (fp4 ? E2M1 : Int4Levels) : null, scales, z);
    }

    // Reference: decode with the scalar decoder, multiply in double.
    private static double[] Reference(QuantizedMatrix w, float[] x, int m)
    {
        var y = new double[m * w.Rows];
        var row = new float[w.Cols];
        for (int r = 0; r < w.Rows; r++)
        {
            w.DequantizeRow(r, row);
            for (int i = 0; i < m; i++)
            {
                double sum = 0;
                for (int c = 0; c < w.Cols; c++) sum += (double)x[i * w.Cols + c] * row[c];
                y[i * w.Rows + r] = sum;
            }
        }
        return y;
    }

    public static TheoryData<int, int, int, int, bool, bool> Shapes => new()
    {
        // rows, cols, bits, group, zeros, fp4
        { 9, 64, 4, 16, false, true },    // NVFP4-like: two groups per 32-column chunk
        { 17, 96, 4, 32, false, true },   // MXFP4-like
        { 10, 200, 4, 64, false, true },  // FP4 levels, two chunks per group, 8-column tail, 4-row blocks and a 2-row tail
        { 5, 176, 4, 16, false, true },   // a 16-column tail after five chunks
        { 12, 256, 4, 128, true, false }, // INT4 asymmetric g128
        { 7, 172, 4, 172, true, false },  // per channel, 12-column tail
        { 3, 45, 4, 64, true, false },    // odd width: one chunk and a 13-column tail
        { 6, 80, 8, 16, true, false },    // INT8 g16
        { 11, 150, 8, 32, true, false },  // INT8 with a 6-column tail
        { 13, 384, 8, 128, true, false }, // INT8 g128: three 4-row blocks and a single row, groups of eight chunks
        { 9, 200, 8, 200, true, false },  // INT8 per channel, 8-column tail
        { 6, 96, 8, 32, false, false },   // INT8 without zero points
        { 4, 10, 4, 16, false, true },    // narrower than a chunk
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MultiplyMatchesTheDecodedProductOnEveryTierAndRowCount(int rows, int cols, int bits, int group, bool zeros, bool fp4)
    {
        var w = Random(rows, cols, bits, group, zeros, fp4, seed: rows * 1000 + cols);
        foreach (var level in NumericsTestUtil.Levels())
            using (NumericsTestUtil.Force(level))
                foreach (int m in new[] { 1, 2, 3, 7, 32, 33, 70 })
                {
                    var random = new Random(m);
                    var x = new float[m * cols];
                    for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 2 - 1);
                    var y = new float[m * rows];
                    Gemm.MultiplyByQuantized(x, m, w, y);
                    var expected = Reference(w, x, m);
                    // FP32 products and sums over ≤ 256 terms of magnitude ≤ |x|·|w| ≤ 1 · 0.05·15 (INT with zero ≤ 255
                    // for INT8: ≤ 0.05·255 ≈ 13): relative to Σ|terms| the FP32 error is ≤ ~k·2⁻²⁴; 1e-4 of the
                    // absolute-sum bound leaves a wide margin.
                    for (int i = 0; i < y.Length; i++)
                    {
                        double bound = 1e-4 * (1 + cols * (bits == 8 ? 13.0 : 0.8));
                        Assert.True(Math.Abs(y[i] - expected[i]) <= bound, $"{level}, m {m}, index {i}: {y[i]} vs {expected[i]}");
                    }
                }
    }

    [Fact]
    public void ManyRowProductsGiveTheSameBitsWhateverTheTiling()
    {
        // 37 rows: tiles of 16 rows (16 + 16 + 5) and of 32 (32 + 5) against one tile; each output's sum over k is the same.
        var w = Random(37, 200, 4, 32, zeros: true, fp4: false, seed: 37);
        int m = 40;
        var random = new Random(3);
        var x = new float[m * w.Cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 2 - 1);
        var whole = new float[m * w.Rows];
        Gemm.MultiplyByDecodedTiles(x, m, w, whole, parallel: true, maxTileElements: long.MaxValue);
        foreach (long tileElements in new long[] { 16 * 200, 32 * 200, 20 * 200 })
        {
            var tiled = new float[m * w.Rows];
            Gemm.MultiplyByDecodedTiles(x, m, w, tiled, parallel: true, maxTileElements: tileElements);
            Assert.Equal(whole, tiled);
        }
        Assert.Equal(Reference(w, x, m).Select(v => (float)v).ToArray(), whole, (a, b) => Math.Abs(a - b) <= 1e-3);
    }

    [Fact]
    public void DecodedTilesEqualTheScalarDecoderBitForBit()
    {
        foreach (var (bits, group, zeros, fp4) in new[] { (4, 16, false, true), (4, 32, true, false), (8, 16, true, false) })
        {
            var w = Random(5, 100, bits, group, zeros, fp4, seed: bits + group);
            var expected = w.Dequantize();
            var tile = new float[5 * 100];
            unsafe
            {
                fixed (float* p = tile) QuantizedGemv.DecodeRows(w, 0, 5, p);
            }
            Assert.Equal(expected, tile);
        }
    }

    [Theory]
    [InlineData(4, 32)]
    [InlineData(8, 128)]
    public void ResultsDoNotDependOnTheThreadCount(int bits, int group)
    {
        var w = Random(300, 512, bits, group, true, false, seed: 3);
        var x = new float[512];
        new Random(1).NextBytes(new byte[1]);
        for (int i = 0; i < x.Length; i++) x[i] = MathF.Sin(i);
        var parallel = new float[300];
        var serial = new float[300];
        Gemm.MultiplyByQuantized(x, 1, w, parallel, parallel: true);
        Gemm.MultiplyByQuantized(x, 1, w, serial, parallel: false);
        Assert.Equal(serial, parallel);
    }

    [Fact]
    public void BadShapesAreRefused()
    {
        Assert.Throws<ArgumentException>(() => new QuantizedMatrix(2, 64, 3, 32, new byte[48], Int4Levels, new float[4], null));
        Assert.Throws<ArgumentException>(() => new QuantizedMatrix(2, 64, 4, 24, new byte[64], Int4Levels, new float[6], null)); // straddles chunks
        Assert.Throws<ArgumentException>(() => new QuantizedMatrix(2, 64, 4, 32, new byte[63], Int4Levels, new float[4], null));
        Assert.Throws<ArgumentException>(() => new QuantizedMatrix(2, 64, 4, 32, new byte[64], Int4Levels, [1, 1, float.NaN, 1], null));
        Assert.Throws<ArgumentException>(() => new QuantizedMatrix(2, 64, 8, 32, new byte[128], Int4Levels, new float[4], null));
    }
}
