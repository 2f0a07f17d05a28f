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

    [Fact]
    public void SpanNarrowingToBFloat16MatchesTheScalarRounding()
    {
        // Random bit patterns (every exponent, NaNs, infinities, subnormals, ties), lengths around the 16-wide blocks.
        var rng = new Random(7);
        foreach (int length in new[] { 0, 5, 16, 33, 1000 })
        {
            var source = new float[length];
            for (int i = 0; i < length; i++) source[i] = BitConverter.Int32BitsToSingle(rng.Next() ^ (rng.Next(2) << 31));
            if (length > 8)
            {
                source[0] = float.NaN;
                source[1] = float.NegativeInfinity;
                source[2] = 1.00390625f; // a tie
                source[3] = BitConverter.UInt32BitsToSingle(0x7F7FFFFF); // rounds up to infinity
                source[4] = BitConverter.UInt32BitsToSingle(0xFFC12345); // a negative NaN with payload
            }
            var span = new ushort[length];
            FloatConversion.SingleToBFloat16(source, span);
            for (int i = 0; i < length; i++) Assert.Equal(FloatConversion.SingleToBFloat16(source[i]), span[i]);
        }
    }
}
