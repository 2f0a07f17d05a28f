using LlmPress.Numerics;

namespace LlmPress.Tests.Numerics;

public class FloatConversionTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(17)]
    [InlineData(65)]
    public void BFloat16WideningMatchesScalarDefinition(int length)
    {
        var rng = new Random(20261122);
        var src = new ushort[length];
        for (int i = 0; i < length; i++) src[i] = (ushort)rng.Next(0, 65536);
        var dst = new float[length];
        FloatConversion.BFloat16ToSingle(src, dst);
        for (int i = 0; i < length; i++)
            Assert.Equal(BitConverter.UInt32BitsToSingle((uint)src[i] << 16).ToString("R"), dst[i].ToString("R"));
    }

    [Theory]
    [InlineData(1.0f, 0x3F80)]
    [InlineData(-2.0f, 0xC000)]
    [InlineData(1.00390625f, 0x3F80)] // exactly halfway between 0x3F80 and 0x3F81: ties to even
    [InlineData(1.01171875f, 0x3F82)] // halfway between 0x3F81 and 0x3F82: ties to even (up)
    public void SingleToBFloat16RoundsToNearestEven(float value, int expected)
        => Assert.Equal((ushort)expected, FloatConversion.SingleToBFloat16(value));
}
