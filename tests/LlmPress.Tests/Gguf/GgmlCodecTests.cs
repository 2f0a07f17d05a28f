using System.Buffers.Binary;
using LlmPress.Export;
using LlmPress.Gguf;
using LlmPress.Numerics;
using LlmPress.Quantization;

namespace LlmPress.Tests.Gguf;

/// <summary>
/// The ggml block codecs against hand-computed blocks (from the formulas in ggml-quants.c: quantize_row_q8_0_ref,
/// quantize_row_q4_0_ref, quantize_row_mxfp4_ref and the dequantize_row_* functions), and the exact mapping of LlmPress'
/// int4-sym-g32 / int8-sym-g32 / mxfp4 weights onto Q4_0 / Q8_0 / MXFP4.
/// </summary>
public sealed class GgmlCodecTests
{
    [Fact]
    public void Q8_0_RoundsHalfAwayFromZeroLikeRoundf()
    {
        // amax 127 gives d = 1 exactly, so q = roundf(x): 2.5 → 3 and −2.5 → −3 (banker's rounding would give ±2).
        var x = new float[32];
        x[0] = 127f; x[1] = 2.5f; x[2] = -2.5f; x[3] = 1.5f; x[4] = -0.4f;
        var block = new byte[GgmlQ8_0.BlockBytes];
        GgmlQ8_0.QuantizeRow(x, block);
        Assert.Equal((Half)1f, BinaryPrimitives.ReadHalfLittleEndian(block));
        Assert.Equal([127, 3, -3, 2, 0], block.AsSpan(2, 5).ToArray().Select(b => (int)(sbyte)b));
        var y = new float[32];
        GgmlQ8_0.DequantizeRow(block, y);
        Assert.Equal([127f, 3f, -3f, 2f, 0f], y[..5]);
    }

    [Fact]
    public void Q4_0_UsesTheSignedExtremeAndSplitNibbles()
    {
        // The value of largest magnitude is −8, so d = −8/−8 = 1 and q = min(15, trunc(x + 8.5)).
        var x = new float[32];
        x[0] = -8f; x[1] = 7f; x[2] = 4.5f; x[3] = -0.6f; x[16] = 3f; x[17] = -7.9f;
        var block = new byte[GgmlQ4_0.BlockBytes];
        GgmlQ4_0.QuantizeRow(x, block);
        Assert.Equal((Half)1f, BinaryPrimitives.ReadHalfLittleEndian(block));
        // byte j: element j in the low nibble, element j + 16 in the high nibble.
        Assert.Equal(0 | (11 << 4), block[2]);   // q(−8) = 0, q(3) = 11
        Assert.Equal(15 | (0 << 4), block[3]);   // q(7) = 15, q(−7.9) = trunc(0.6) = 0
        Assert.Equal(13 | (8 << 4), block[4]);   // q(4.5) = 13, q(0) = 8
        Assert.Equal(7 | (8 << 4), block[5]);    // q(−0.6) = trunc(7.9) = 7
        var y = new float[32];
        GgmlQ4_0.DequantizeRow(block, y);
        Assert.Equal([-8f, 7f, 5f, -1f], y[..4]);
        Assert.Equal([3f, -8f], y[16..18]);

        // A positive extreme gives a negative d: x = 8 → d = −1, q = trunc(−8 + 8.5) = 0, value (0 − 8)·(−1) = 8.
        x = new float[32];
        x[5] = 8f;
        GgmlQ4_0.QuantizeRow(x, block);
        Assert.Equal((Half)(-1f), BinaryPrimitives.ReadHalfLittleEndian(block));
        GgmlQ4_0.DequantizeRow(block, y);
        Assert.Equal(8f, y[5]);
    }

    [Fact]
    public void Mxfp4_DoubledTableWithHalfScale()
    {
        // amax 6: e = floor(log2 6) − 2 + 127 = 127, d = 2^(127−128) = 0.5, so kvalues·d are the E2M1 values.
        var x = new float[32];
        x[0] = 6f; x[1] = -0.25f; x[2] = 5f; x[3] = -3f; x[16] = 0.75f; x[17] = -6f;
        var block = new byte[GgmlMxfp4.BlockBytes];
        GgmlMxfp4.QuantizeRow(x, block);
        Assert.Equal(127, block[0]);
        // −0.25 is as close to 0 (index 0) as to −0.5 (index 9): the first index wins. 5 ties 4 (6) and 6 (7): 6.
        // 0.75 ties 0.5 (index 1) and 1 (index 2): ggml keeps the first, where OCP's ties-to-even would pick 1.
        Assert.Equal(7 | (1 << 4), block[1]);    // 6 → 7; 0.75 → 1
        Assert.Equal(0 | (15 << 4), block[2]);   // −0.25 → 0; −6 → 15
        Assert.Equal(6, block[3] & 0xF);         // 5 → 6 (value 4)
        Assert.Equal(13, block[4] & 0xF);        // −3 → 13
        var y = new float[32];
        GgmlMxfp4.DequantizeRow(block, y);
        Assert.Equal([6f, 0f, 4f, -3f], y[..4]);
        Assert.Equal([0.5f, -6f], y[16..18]);
        Assert.Equal(BitConverter.UInt32BitsToSingle(0x0020_0000), GgmlMxfp4.HalfScale(0)); // 2^−128
        Assert.Equal(BitConverter.UInt32BitsToSingle(0x0040_0000), GgmlMxfp4.HalfScale(1)); // 2^−127
        Assert.Equal(1f, GgmlMxfp4.HalfScale(128));
    }

    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.MXFP4)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    [InlineData(GgmlType.F32)]
    public void EncodeIsIndependentOfThreadCountAndDecodesWithinTheGridStep(GgmlType type)
    {
        const int rows = 37, cols = 96;
        var rng = new Random(7);
        var x = new float[rows * cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * (1 + (i % 7));
        byte[] parallel = GgmlCodec.Encode(type, x, rows, cols);
        int saved = Parallelism.MaxThreads;
        Parallelism.MaxThreads = 1;
        try
        {
            Assert.Equal(parallel, GgmlCodec.Encode(type, x, rows, cols));
        }
        finally
        {
            Parallelism.MaxThreads = saved;
        }
        var y = GgmlCodec.Decode(type, parallel, rows, cols);
        for (int b = 0; b < x.Length / 32; b++)
        {
            float amax = 0f;
            for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(x[b * 32 + j]));
            // Worst-case error per type: half a grid step (Q8_0 d = amax/127; Q4_0 |d| = amax/8, and the clamp at 15
            // costs up to a whole step on the side opposite the extreme) plus the FP16 rounding of d (relative 2^−11,
            // times at most amax); MXFP4's coarsest step at the top of the range is 2·2^(e−1) ≤ amax/2, so half of it
            // is ≤ amax/4 (bounded by amax/3 for slack); F16/BF16 are relative roundings (2^−11, 2^−8).
            float bound = type switch
            {
                GgmlType.Q8_0 => amax / 127f * 0.5f + amax / 2048f,
                GgmlType.Q4_0 => amax / 8f + amax / 2048f,
                GgmlType.MXFP4 => amax / 3f,
                GgmlType.F16 => amax * 1e-3f,
                GgmlType.BF16 => amax * 4e-3f,
                _ => 0f,
            };
            for (int j = 0; j < 32; j++)
                Assert.True(Math.Abs(y[b * 32 + j] - x[b * 32 + j]) <= bound, $"{type} block {b} element {j}: {x[b * 32 + j]} → {y[b * 32 + j]} (bound {bound})");
        }
    }

    [Theory]
    [InlineData("int4-sym-g32", GgmlType.Q4_0)]
    [InlineData("int8-sym-g32", GgmlType.Q8_0)]
    [InlineData("mxfp4", GgmlType.MXFP4)]
    public void ExactMappingDecodesBitIdenticallyToTheQuantizer(string formatName, GgmlType expected)
    {
        const int rows = 24, cols = 128;
        var rng = new Random(11);
        var w = new float[rows * cols];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1) * (i % 5 == 0 ? 3f : 0.5f);
        var format = QuantFormat.Parse(formatName);
        Assert.Equal(expected, GgufExporter.ExactType(format, cols));
        var packed = format.Quantize(w, rows, cols);
        byte[] blocks = GgufExporter.EncodeExact(packed, expected);
        Assert.Equal(rows * (long)GgmlTypeInfo.RowBytes(expected, cols)!, blocks.Length);
        var decoded = GgmlCodec.Decode(expected, blocks, rows, cols);
        var reference = packed.Dequantize();
        for (int i = 0; i < reference.Length; i++)
        {
            // MXFP4's code 8 is −0 in LlmPress and +0 in ggml (kvalues_mxfp4[8] = 0): equal as numbers.
            bool same = BitConverter.SingleToInt32Bits(decoded[i]) == BitConverter.SingleToInt32Bits(reference[i])
                || (expected == GgmlType.MXFP4 && decoded[i] == 0f && reference[i] == 0f);
            Assert.True(same, $"{formatName} element {i}: ggml {decoded[i]:R}, LlmPress {reference[i]:R}");
        }
    }

    [Theory]
    [InlineData("int4-asym-g32", 128)]
    [InlineData("int4-sym-g64", 128)]
    [InlineData("int4-sym-g32", 96 + 8)]
    [InlineData("mxfp4-rot32", 128)]
    [InlineData("nvfp4", 128)]
    [InlineData("higgs-p2-n256", 1024)]
    public void FormatsWithoutAGgufGridHaveNoExactType(string formatName, int cols) =>
        Assert.Null(GgufExporter.ExactType(QuantFormat.Parse(formatName), cols));

    [Fact]
    public void QkPermutationMatchesTheConverterReshape()
    {
        // convert_hf_to_gguf.py: w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(w.shape),
        // written here as index arithmetic on a [n_head, 2, half] → [n_head, half, 2] transpose.
        const int heads = 3, headDim = 8, half = headDim / 2, cols = 2;
        int rows = heads * headDim;
        var data = new byte[rows * cols];
        for (int r = 0; r < rows; r++) data[r * cols] = (byte)r;
        byte[] permuted = QkPermutation.ToGguf(data, rows, headDim);
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < half; j++)
                for (int a = 0; a < 2; a++)
                    Assert.Equal(h * headDim + a * half + j, permuted[(h * headDim + j * 2 + a) * cols]);
        var floats = Array.ConvertAll(permuted, b => (float)b);
        var back = QkPermutation.ToHuggingFace(floats, rows, cols, headDim);
        Assert.Equal(Array.ConvertAll(data, b => (float)b), back);
    }
}

/// <summary>The pruned MXFP4 element search against ggml's literal 16-candidate scan.</summary>
public sealed class GgmlMxfp4SearchTests
{
    [Fact]
    public void PrunedSearchEqualsTheLiteralScan()
    {
        var rng = new Random(3);
        var scales = new[] { GgmlMxfp4.HalfScale(0), GgmlMxfp4.HalfScale(1), GgmlMxfp4.HalfScale(100), GgmlMxfp4.HalfScale(127), GgmlMxfp4.HalfScale(128), GgmlMxfp4.HalfScale(200) };
        ReadOnlySpan<int> kvalues = [0, 1, 2, 3, 4, 6, 8, 12];
        foreach (float d in scales)
        {
            // Every grid point, every midpoint (the ties), their float neighbours, and random values around the range.
            var xs = new List<float> { 0f, -0f, float.Epsilon, -float.Epsilon };
            for (int i = 0; i < kvalues.Length; i++)
            {
                float v = kvalues[i] * d;
                xs.AddRange([v, -v, MathF.BitIncrement(v), MathF.BitDecrement(v), -MathF.BitIncrement(v)]);
                if (i + 1 < kvalues.Length)
                {
                    float mid = (kvalues[i] + kvalues[i + 1]) * 0.5f * d;
                    xs.AddRange([mid, -mid, MathF.BitIncrement(mid), MathF.BitDecrement(mid), -MathF.BitIncrement(mid), -MathF.BitDecrement(mid)]);
                }
            }
            for (int i = 0; i < 20000; i++) xs.Add((float)(rng.NextDouble() * 30 - 15) * d);
            foreach (float x in xs)
                Assert.True(GgmlMxfp4.BestIndexReference(x, d) == GgmlMxfp4.BestIndex(x, d), $"x = {x:R}, d = {d:R}");
        }
    }
}

/// <summary>The verifier's rounding bounds: every encoding respects them, and a corrupted block breaks them.</summary>
public sealed class GgmlRoundingBoundTests
{
    [Theory]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.MXFP4)]
    public void EncodingsStayWithinTheBoundAndCorruptionIsCaught(GgmlType type)
    {
        const int rows = 16, cols = 64;
        var rng = new Random(9);
        var x = new float[rows * cols];
        // Gaussian-ish weights at several scales, including FP16-subnormal block scales (amax/127 < 2^−14).
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() - 0.5) * (i / cols % 4 == 0 ? 1e-4f : 0.05f * (1 + i % 3));
        byte[] data = GgmlCodec.Encode(type, x, rows, cols);
        Assert.Null(GgmlRoundingBound.FirstViolation(type, GgmlCodec.Decode(type, data, rows, cols), x, cols));
        // Swapping two rows' data (as a wrong q/k permutation would) is caught.
        int rowBytes = data.Length / rows;
        byte[] swapped = (byte[])data.Clone();
        data.AsSpan(2 * rowBytes, rowBytes).CopyTo(swapped.AsSpan(3 * rowBytes));
        data.AsSpan(3 * rowBytes, rowBytes).CopyTo(swapped.AsSpan(2 * rowBytes));
        Assert.NotNull(GgmlRoundingBound.FirstViolation(type, GgmlCodec.Decode(type, swapped, rows, cols), x, cols));
    }
}
