using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;
using LlmPress.Quantization;

namespace LlmPress.Tests.Numerics;

/// <summary>
/// MXFP4/NVFP4 matrices keep their scales as one code byte per group (<see cref="QuantizedMatrix.ScaleCodes"/>); every
/// kernel must see exactly the FP32 scales a matrix built with them as FP32 sees.
/// </summary>
public class ScaleCodesTests
{
    private static readonly float[] E2M1 = [0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f];

    /// <summary>The same codes twice: scales as codes + table, and as FP32 (table[code]).</summary>
    private static (QuantizedMatrix Coded, QuantizedMatrix Fp32) Twins(int rows, int cols, int groupSize, bool nvfp4, int seed)
    {
        var random = new Random(seed);
        int rowBytes = (cols + 1) / 2, groups = (cols + groupSize - 1) / groupSize;
        var codes = new byte[rows * rowBytes];
        random.NextBytes(codes);
        if (cols % 2 == 1)
            for (int r = 0; r < rows; r++) codes[r * rowBytes + rowBytes - 1] &= 0x0F;
        // NVFP4: E4M3 ÷ a global scale (codes 1..126: positive, finite, subnormals included); MXFP4: E8M0 around 2⁰.
        const float Global = 37.5f;
        var scaleCodes = new byte[rows * groups];
        for (int i = 0; i < scaleCodes.Length; i++) scaleCodes[i] = (byte)(nvfp4 ? random.Next(1, 127) : random.Next(110, 140));
        var scales = new float[scaleCodes.Length];
        for (int i = 0; i < scales.Length; i++)
            scales[i] = nvfp4 ? Nvfp4Format.EffectiveScale(scaleCodes[i], Global) : E8M0.Decode(scaleCodes[i]);
        var coded = nvfp4
            ? new QuantizedMatrix(rows, cols, 4, groupSize, codes, E2M1, scaleCodes, ScaleCoding.E4M3, Global)
            : new QuantizedMatrix(rows, cols, 4, groupSize, codes, E2M1, scaleCodes, ScaleCoding.E8M0);
        return (coded, new QuantizedMatrix(rows, cols, 4, groupSize, codes, E2M1, scales, null));
    }

    public static TheoryData<int, int, int, bool> Shapes => new()
    {
        { 9, 576, 16, true },   // NVFP4 at the 135M shape's width: 4 full 128-column chunks and a 64-column tail
        { 13, 200, 16, true },  // 4-row blocks and a 1-row tail, an 8-column tail
        { 10, 256, 32, false }, // MXFP4, whole chunks
        { 6, 176, 32, false },  // MXFP4 with a 16-column tail
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void KernelsGiveTheSameBitsAsFp32Scales(int rows, int cols, int groupSize, bool nvfp4)
    {
        var (coded, fp32) = Twins(rows, cols, groupSize, nvfp4, seed: rows * 31 + cols);
        Assert.Null(coded.Scales);
        // One byte per group instead of four, plus the 1 KiB table and its 512 bytes of byte planes.
        Assert.Equal(fp32.MemoryBytes - 3L * rows * coded.Groups + 4 * 256 + 512, coded.MemoryBytes);
        Assert.Equal(fp32.Dequantize(), coded.Dequantize());
        foreach (var level in NumericsTestUtil.Levels())
            using (NumericsTestUtil.Force(level))
                foreach (int m in new[] { 1, 3, 33 })
                    foreach (bool int8 in new[] { false, true })
                    {
                        var random = new Random(m);
                        var x = new float[m * cols];
                        for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 2 - 1);
                        var expected = new float[m * rows];
                        var actual = new float[m * rows];
                        Gemm.MultiplyByQuantized(x, m, fp32, expected, int8Activations: int8);
                        Gemm.MultiplyByQuantized(x, m, coded, actual, int8Activations: int8);
                        Assert.True(expected.AsSpan().SequenceEqual(actual), $"{level}, m {m}, int8 {int8}");
                    }
    }

    [Theory]
    [InlineData(ScaleCoding.E8M0, 1f)]
    [InlineData(ScaleCoding.E4M3, 1f)]
    [InlineData(ScaleCoding.E4M3, 37.5f)]
    [InlineData(ScaleCoding.E4M3, 0.3f)]
    public void VectorDecoderMatchesTheCodecOnEveryCode(ScaleCoding coding, float divisor)
    {
        // Every code except the NaN ones, in an order that puts each through the 16-wide path and a few through the tail.
        var codes = Enumerable.Range(0, 256).Select(c => (byte)c)
            .Where(c => coding == ScaleCoding.E8M0 ? c != E8M0.NaN : (c & 0x7F) != 0x7F).Reverse().ToArray();
        var decoded = new float[codes.Length];
        ScaleCodeDecoder.Decode(codes, new ScaleCodeTable(coding, divisor), decoded);
        for (int i = 0; i < codes.Length; i++)
        {
            float expected = coding == ScaleCoding.E8M0 ? E8M0.Decode(codes[i]) : Fp8E4M3.Decode(codes[i]) / divisor;
            Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(decoded[i]),
                $"code 0x{codes[i]:X2}: {decoded[i]} instead of {expected}");
        }
    }

    [Fact]
    public void ACodeThatDecodesToNaNIsRejected()
    {
        var scaleCodes = new byte[] { 127, E8M0.NaN };
        var e = Assert.Throws<ArgumentException>(() => new QuantizedMatrix(2, 32, 4, 32, new byte[32], E2M1, scaleCodes, ScaleCoding.E8M0));
        Assert.Contains("255", e.Message);
    }
}
