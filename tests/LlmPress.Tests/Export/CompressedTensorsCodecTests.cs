using System.Runtime.InteropServices;
using LlmPress.Export;
using LlmPress.IO;
using LlmPress.Numerics;

namespace LlmPress.Tests.Export;

/// <summary>
/// <see cref="CompressedTensorsCodec.Decode"/> on hand-built tensors whose values are worked out by hand from
/// compressed-tensors' rules (unpack_from_int32 − 2^(b−1), (q − z)·scale; E2M1·2^(e−127); E2M1·E4M3/g), independent
/// of any LlmPress quantizer.
/// </summary>
public sealed class CompressedTensorsCodecTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private TensorStore Store(params TensorToWrite[] tensors)
    {
        string dir = _temp.File(Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        SafeTensorsWriter.Write(Path.Combine(dir, TensorStore.SingleFileName), tensors);
        return TensorStore.Open(dir);
    }

    private static TensorToWrite Tensor<T>(string name, DType dtype, long[] shape, params T[] values) where T : struct =>
        new(name, dtype, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    [Fact]
    public void Int4AsymmetricGroupsDecodeAsCodeMinusZeroTimesScale()
    {
        // [2, 16], groups of 8. Row 0 codes 0..15, row 1 all 15. Zero points (unsigned): row 0 {3, 8}, row 1 {0, 15}.
        // Scales: row 0 {0.5, 2}, row 1 {1, 0.25}. Value = (q − z)·s.
        var scheme = new CompressedTensorsScheme(CompressedTensorsScheme.PackQuantized, "int", 4, false, "group", 8);
        using var store = Store(
            Tensor("m.weight_packed", DType.I32, [2, 2], unchecked((int)0x76543210), unchecked((int)0xFEDCBA98), -1, -1),
            Tensor("m.weight_scale", DType.F16, [2, 2], (Half)0.5f, (Half)2f, (Half)1f, (Half)0.25f),
            // Zero points packed along the output dimension: one word per group holding rows 0 and 1 in nibbles 0 and 1.
            Tensor("m.weight_zero_point", DType.I32, [1, 2], 0x03, 0xF8),
            Tensor("m.weight_shape", DType.I64, [2], 2L, 16L));
        float[] values = CompressedTensorsCodec.Decode(store, "m", scheme, 2, 16);
        for (int c = 0; c < 16; c++)
        {
            Assert.Equal(c < 8 ? (c - 3) * 0.5f : (c - 8) * 2f, values[c]);
            Assert.Equal(c < 8 ? 15f : 0f, values[16 + c]);
        }
    }

    [Fact]
    public void Int8SymmetricPerChannelDecodesSignedCodes()
    {
        // [1, 4] per channel: unsigned 0, 127, 128, 255 are signed −128, −1, 0, 127; scale 0.125.
        var scheme = new CompressedTensorsScheme(CompressedTensorsScheme.PackQuantized, "int", 8, true, "channel", null);
        using var store = Store(
            Tensor("m.weight_packed", DType.I32, [1, 1], unchecked((int)0xFF807F00)),
            Tensor("m.weight_scale", DType.F16, [1, 1], (Half)0.125f),
            Tensor("m.weight_shape", DType.I64, [2], 1L, 4L));
        Assert.Equal([-16f, -0.125f, 0f, 15.875f], CompressedTensorsCodec.Decode(store, "m", scheme, 1, 4));
    }

    [Fact]
    public void Mxfp4DecodesLowNibbleFirstWithE8M0Scales()
    {
        // [1, 64]: group 0 scale code 128 (2^1), group 1 code 125 (2^−2). Byte 0x7A: element 0 = 0xA (−1), element 1 = 0x7 (6).
        var scheme = new CompressedTensorsScheme(CompressedTensorsScheme.Mxfp4PackQuantized, "float", 4, true, "group", 32);
        var packed = new byte[32];
        packed[0] = 0x7A;
        packed[16] = 0x83; // element 32 = 3 (1.5), element 33 = 8 (−0)
        using var store = Store(new TensorToWrite("m.weight_packed", DType.U8, [1, 32], packed), new TensorToWrite("m.weight_scale", DType.U8, [1, 2], new byte[] { 128, 125 }));
        float[] values = CompressedTensorsCodec.Decode(store, "m", scheme, 1, 64);
        Assert.Equal(-2f, values[0]);
        Assert.Equal(12f, values[1]);
        Assert.Equal(0.375f, values[32]);
        Assert.Equal(BitConverter.SingleToInt32Bits(-0f), BitConverter.SingleToInt32Bits(values[33]));
        Assert.Equal(0f, values[2]);
    }

    [Fact]
    public void Nvfp4DividesTheE4M3ScaleByTheGlobalScale()
    {
        // [1, 16]: E4M3 0x48 = 2^(9−7) = 4, 0x01 would be 2^−9; g = 8 → effective scale 0.5. Element 0 = 0x7 (6) → 3; element 1 = 0xF (−6) → −3.
        var scheme = new CompressedTensorsScheme(CompressedTensorsScheme.Nvfp4PackQuantized, "float", 4, true, "tensor_group", 16);
        var packed = new byte[8];
        packed[0] = 0xF7;
        packed[7] = 0x10; // element 14 = 0 (0), element 15 = 1 (0.5) → 0.25
        using var store = Store(
            new TensorToWrite("m.weight_packed", DType.U8, [1, 8], packed),
            new TensorToWrite("m.weight_scale", DType.F8E4M3, [1, 1], new byte[] { 0x48 }),
            Tensor("m.weight_global_scale", DType.F32, [1], 8f));
        float[] values = CompressedTensorsCodec.Decode(store, "m", scheme, 1, 16);
        Assert.Equal(3f, values[0]);
        Assert.Equal(-3f, values[1]);
        Assert.Equal(0.25f, values[15]);
    }

    [Fact]
    public void WrongShapesAndNaNScalesAreNamed()
    {
        var scheme = new CompressedTensorsScheme(CompressedTensorsScheme.Nvfp4PackQuantized, "float", 4, true, "tensor_group", 16);
        using var store = Store(
            new TensorToWrite("m.weight_packed", DType.U8, [1, 8], new byte[8]),
            new TensorToWrite("m.weight_scale", DType.F8E4M3, [1, 1], new byte[] { 0x7F }),
            Tensor("m.weight_global_scale", DType.F32, [1], 1f));
        Assert.Contains("m.weight_scale[0, 0] is NaN", Assert.Throws<InvalidDataException>(() => CompressedTensorsCodec.Decode(store, "m", scheme, 1, 16)).Message);
        Assert.Contains("m.weight_packed is U8 [1, 8]; expected U8 [2, 8]",
            Assert.Throws<InvalidDataException>(() => CompressedTensorsCodec.Decode(store, "m", scheme, 2, 16)).Message);
    }
}
