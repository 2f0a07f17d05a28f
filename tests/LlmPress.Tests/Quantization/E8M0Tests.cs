using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization;

public class E8M0Tests
{
    [Fact]
    public void DecodesEveryCodeAsAPowerOfTwo()
    {
        for (int code = 0; code < 255; code++)
        {
            Assert.Equal(Math.Pow(2, code - 127), (double)E8M0.Decode((byte)code));
            Assert.Equal(code - 127, E8M0.ToExponent((byte)code));
        }
        Assert.True(float.IsNaN(E8M0.Decode(0xFF)));
    }

    [Theory]
    [InlineData(0, 127)] [InlineData(-2, 125)] [InlineData(127, 254)] [InlineData(128, 254)] [InlineData(1000, 254)]
    [InlineData(-127, 0)] [InlineData(-128, 0)] [InlineData(-1000, 0)]
    public void FromExponentClampsToTheFiniteRange(int exponent, int code) => Assert.Equal(code, E8M0.FromExponent(exponent));

    [Theory]
    // OCP rule: 2^(floor(log2 amax) − 2)
    [InlineData(5f, 0)] [InlineData(4f, 0)] [InlineData(7.99f, 0)] [InlineData(8f, 1)] [InlineData(3.99f, -1)]
    [InlineData(6f, 0)] [InlineData(0.1f, -6)] [InlineData(1e30f, 97)]
    [InlineData(0f, -127)] [InlineData(1e-40f, -127)] [InlineData(1.17549435E-38f, -127)] // 2^−126 → −128, clamped to −127
    public void MxScaleIsTheOcpExponentRule(float amax, int exponent)
        => Assert.Equal(Math.Max(exponent, -127), E8M0.ToExponent(Mxfp4Format.ScaleCode(amax)));
}
