using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization;

public class Fp8E4M3Tests
{
    // Straight from the definition (OCP FP8 E4M3, "FN": no infinities, only S.1111.111 is NaN), in FP64.
    private static double Definition(int code)
    {
        int sign = code >> 7, e = (code >> 3) & 0xF, m = code & 7;
        if (e == 15 && m == 7) return double.NaN;
        double magnitude = e == 0 ? m / 8.0 * Math.Pow(2, -6) : (1 + m / 8.0) * Math.Pow(2, e - 7);
        return sign == 1 ? -magnitude : magnitude;
    }

    [Fact]
    public void DecodeMatchesTheDefinitionForAll256Codes()
    {
        for (int code = 0; code < 256; code++)
        {
            double expected = Definition(code);
            float actual = Fp8E4M3.Decode((byte)code);
            if (double.IsNaN(expected)) Assert.True(float.IsNaN(actual), $"code {code:X2}");
            else
            {
                Assert.Equal(expected, (double)actual);
                Assert.Equal(code >= 0x80, float.IsNegative(actual));
            }
        }
        Assert.Equal(448f, Fp8E4M3.Decode(0x7E));
        Assert.Equal(MathF.Pow(2, -9), Fp8E4M3.Decode(0x01));
        Assert.True(float.IsNaN(Fp8E4M3.Decode(0x7F)) && float.IsNaN(Fp8E4M3.Decode(0xFF)));
    }

    [Fact]
    public void EveryRepresentableValueRoundTrips()
    {
        int checkedCodes = 0;
        for (int code = 0; code < 256; code++)
        {
            if ((code & 0x7F) == 0x7F) continue;
            Assert.Equal(code, Fp8E4M3.Encode(Fp8E4M3.Decode((byte)code)));
            checkedCodes++;
        }
        Assert.Equal(254, checkedCodes);
    }

    [Fact]
    public void MidpointsRoundToTheEvenCodeAndNeighboursToTheNearest()
    {
        // Consecutive positive codes c and c + 1 (up to 448): the exact midpoint (representable in FP32) goes to the
        // even code, one FP32 ulp either side goes to the nearer one.
        for (int c = 0; c < 0x7E; c++)
        {
            float lo = Fp8E4M3.Decode((byte)c), hi = Fp8E4M3.Decode((byte)(c + 1));
            float mid = (lo + hi) / 2;
            Assert.Equal((double)lo + ((double)hi - lo) / 2, (double)mid); // exact
            int even = c % 2 == 0 ? c : c + 1;
            Assert.Equal(even, Fp8E4M3.Encode(mid));
            Assert.Equal(c, Fp8E4M3.Encode(MathF.BitDecrement(mid)));
            Assert.Equal(c + 1, Fp8E4M3.Encode(MathF.BitIncrement(mid)));
            Assert.Equal(even | 0x80, Fp8E4M3.Encode(-mid));
        }
    }

    [Fact]
    public void EncodeIsNearestOnRandomValues()
    {
        var rng = new Random(11);
        for (int i = 0; i < 20000; i++)
        {
            float x = (float)(Math.Exp(rng.NextDouble() * 16 - 10) * (rng.Next(2) == 0 ? 1 : -1));
            if (Math.Abs(x) >= 448) continue;
            float q = Fp8E4M3.Decode(Fp8E4M3.Encode(x));
            double best = double.MaxValue;
            for (int c = 0; c < 256; c++)
                if ((c & 0x7F) != 0x7F) best = Math.Min(best, Math.Abs(Definition(c) - x));
            Assert.Equal(best, Math.Abs((double)q - x), 12);
        }
    }

    [Theory]
    [InlineData(448f, 0x7E)] [InlineData(449f, 0x7E)] [InlineData(464f, 0x7E)] [InlineData(480f, 0x7E)] [InlineData(1e9f, 0x7E)]
    [InlineData(float.PositiveInfinity, 0x7E)] [InlineData(float.NegativeInfinity, 0xFE)] [InlineData(-500f, 0xFE)]
    [InlineData(float.NaN, 0x7F)] [InlineData(0f, 0x00)] [InlineData(-0f, 0x80)] [InlineData(1f, 0x38)]
    [InlineData(0.0009765625f, 0x00)] // 2^−10: half the smallest subnormal, ties to even (0)
    [InlineData(0.0009765626f, 0x01)]
    [InlineData(0.001953125f, 0x01)]  // 2^−9: the smallest subnormal
    [InlineData(0.0146484375f, 0x08)] // 7.5·2^−9: ties between subnormal 7 and the smallest normal (8), even wins
    [InlineData(1e-30f, 0x00)]
    public void EncodeSaturatesAndHandlesSpecialValues(float x, int code) => Assert.Equal(code, Fp8E4M3.Encode(x));
}
