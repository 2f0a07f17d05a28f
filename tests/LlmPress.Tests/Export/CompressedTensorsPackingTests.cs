using LlmPress.Export;
using LlmPress.IO;
using LlmPress.Numerics;

namespace LlmPress.Tests.Export;

/// <summary>compressed-tensors' int32 packing against hand-computed words (pack_to_int32's own docstring example included).</summary>
public sealed class CompressedTensorsPackingTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Int4RowsPackFirstValueIntoTheLowestBits()
    {
        // Value i of a word in bits [4i, 4i + 4): 1..8 → 0x87654321; a second row of 15, 0, ... checks sign and padding.
        byte[] values = [1, 2, 3, 4, 5, 6, 7, 8, /* row 1 */ 15, 0, 0, 0, 0, 0, 0, 15];
        int[] packed = CompressedTensorsPacking.PackRows(values, 2, 8, 4);
        Assert.Equal([unchecked((int)0x87654321), unchecked((int)0xF000000F)], packed);
        Assert.Equal(values, CompressedTensorsPacking.UnpackRows(packed, 2, 8, 4));
    }

    [Fact]
    public void Int8RowsMatchPackToInt32DocstringAndPadTheLastWord()
    {
        // pack_to_int32's docstring: signed [1, 2] at 8 bits → unsigned [129, 130] → 33409.
        Assert.Equal([33409], CompressedTensorsPacking.PackRows([129, 130], 1, 2, 8));
        // 5 values → 2 words, the second zero-padded above its one value.
        int[] packed = CompressedTensorsPacking.PackRows([0x01, 0x02, 0x03, 0x04, 0xFF], 1, 5, 8);
        Assert.Equal([0x04030201, 0x000000FF], packed);
        Assert.Equal(new byte[] { 0x01, 0x02, 0x03, 0x04, 0xFF }, CompressedTensorsPacking.UnpackRows(packed, 1, 5, 8));
    }

    [Fact]
    public void ZeroPointsPackAlongTheOutputDimension()
    {
        // [9 rows, 2 groups] at 4 bits → [2, 2] words: word (w, g) holds rows 8w .. 8w + 7 of group g.
        var values = new byte[18];
        for (int r = 0; r < 9; r++)
        {
            values[r * 2] = (byte)r;            // group 0: 0, 1, ..., 8
            values[r * 2 + 1] = (byte)(15 - r); // group 1: 15, 14, ..., 7
        }
        int[] packed = CompressedTensorsPacking.PackColumns(values, 9, 2, 4);
        Assert.Equal([0x76543210, unchecked((int)0x89ABCDEF), 0x00000008, 0x00000007], packed);
        Assert.Equal(values, CompressedTensorsPacking.UnpackColumns(packed, 9, 2, 4));
    }

    [Fact]
    public void RandomValuesRoundTripForBothDimensionsAndWidths()
    {
        var rng = new Random(7);
        foreach (int bits in new[] { 4, 8 })
            foreach (var (rows, cols) in new[] { (1, 1), (3, 7), (16, 33), (13, 64) })
            {
                var values = new byte[rows * cols];
                for (int i = 0; i < values.Length; i++) values[i] = (byte)rng.Next(1 << bits);
                Assert.Equal(values, CompressedTensorsPacking.UnpackRows(CompressedTensorsPacking.PackRows(values, rows, cols, bits), rows, cols, bits));
                Assert.Equal(values, CompressedTensorsPacking.UnpackColumns(CompressedTensorsPacking.PackColumns(values, rows, cols, bits), rows, cols, bits));
            }
        Assert.Throws<ArgumentOutOfRangeException>(() => CompressedTensorsPacking.PackFactor(3));
    }

    [Theory]
    [InlineData("int4-asym-g32", 64)]
    [InlineData("int8-sym-perchannel", 36)]
    [InlineData("int4-sym-perchannel", 172)] // 21.5 words: the padded path
    public void EncodedWordsEqualPackingTheUnpackedCodes(string formatName, int cols)
    {
        // The exporter copies LlmPress's qweight bytes as int32 words when rows fill whole words: the same words as packing
        // the codes one by one.
        var format = LlmPress.Quantization.QuantFormat.Parse(formatName);
        var rng = new Random(3);
        var w = new float[5 * cols];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1);
        var weight = format.Quantize(w, 5, cols);
        var scheme = CompressedTensorsScheme.For(format, 5, cols, out _)!;
        var packed = CompressedTensorsCodec.Encode("m", weight, scheme).Single(t => t.Name == "m.weight_packed");
        int[] expected = CompressedTensorsPacking.PackRows(weight.UnpackCodes(), 5, cols, format.Bits);
        Assert.Equal(System.Runtime.InteropServices.MemoryMarshal.AsBytes(expected.AsSpan()).ToArray(), packed.Data.ToArray());
        Assert.Equal(new long[] { 5, CompressedTensorsPacking.WordCount(cols, format.Bits) }, packed.Shape);
    }

    [Fact]
    public void Float8E4M3IsWrittenAsSafetensorsF8E4M3()
    {
        Assert.Equal("F8_E4M3", DTypeInfo.SafeTensorsName(DType.F8E4M3));
        Assert.True(DTypeInfo.TryParseSafeTensorsName("F8_E4M3", out var type));
        Assert.Equal(DType.F8E4M3, type);
        Assert.Equal(1, DTypeInfo.SizeOf(DType.F8E4M3));
        string path = _temp.File("fp8.safetensors");
        SafeTensorsWriter.Write(path, [new TensorToWrite("s", DType.F8E4M3, [2], new byte[] { 0x38, 0xFE })]);
        // The header names the dtype as torch/safetensors do for float8_e4m3fn.
        Assert.Contains("\"dtype\":\"F8_E4M3\"", System.Text.Encoding.UTF8.GetString(File.ReadAllBytes(path)));
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(DType.F8E4M3, file.Tensors[0].DType);
        Assert.Equal(new byte[] { 0x38, 0xFE }, file.GetData("s").ToArray());
    }
}
