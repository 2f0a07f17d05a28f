using System.Runtime.Intrinsics;
using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization;

public class Fp4E2M1Tests
{
    [Fact]
    public void DecodeTableFollowsTheE2M1Definition()
    {
        // Definition: sign bit 3, exponent bits 2..1 (bias 1), mantissa bit 0; exponent 0 is subnormal: m·0.5.
        for (int code = 0; code < 16; code++)
        {
            int e = (code >> 1) & 3, m = code & 1;
            double magnitude = e == 0 ? m * 0.5 : (1 + m / 2.0) * Math.Pow(2, e - 1);
            double expected = (code & 8) != 0 ? -magnitude : magnitude;
            Assert.Equal(expected, Fp4E2M1.Decode(code));
            Assert.Equal((code & 8) != 0, float.IsNegative(Fp4E2M1.Decode(code)));
        }
        Assert.Equal(new float[] { 0, 0.5f, 1, 1.5f, 2, 3, 4, 6 }, Fp4E2M1.Values[..8].ToArray());
    }

    [Theory]
    // exact values
    [InlineData(0f, 0)] [InlineData(0.5f, 1)] [InlineData(1f, 2)] [InlineData(1.5f, 3)]
    [InlineData(2f, 4)] [InlineData(3f, 5)] [InlineData(4f, 6)] [InlineData(6f, 7)]
    // ties go to the even code: 0.25→0, 0.75→1 (code 2), 1.25→1, 1.75→2, 2.5→2, 3.5→4, 5→4
    [InlineData(0.25f, 0)] [InlineData(0.75f, 2)] [InlineData(1.25f, 2)] [InlineData(1.75f, 4)]
    [InlineData(2.5f, 4)] [InlineData(3.5f, 6)] [InlineData(5f, 6)]
    // just off the ties
    [InlineData(0.2500001f, 1)] [InlineData(0.7499999f, 1)] [InlineData(1.2500001f, 3)] [InlineData(1.7499999f, 3)]
    [InlineData(2.5000002f, 5)] [InlineData(3.4999998f, 5)] [InlineData(5.0000005f, 7)]
    // saturation
    [InlineData(6.5f, 7)] [InlineData(100f, 7)] [InlineData(float.PositiveInfinity, 7)] [InlineData(float.MaxValue, 7)]
    // negatives and zeros: the sign bit is x < 0, so −0 itself is code 0 but a negative value rounding to 0 is code 8
    [InlineData(-0.1f, 8)] [InlineData(-0.25f, 8)] [InlineData(-0.75f, 10)] [InlineData(-5f, 14)]
    [InlineData(-7f, 15)] [InlineData(1e-30f, 0)]
    public void EncodeRoundsToNearestWithTiesToEvenCodeAndSaturates(float x, int code)
        => Assert.Equal(code, Fp4E2M1.Encode(x));

    [Fact]
    public void NegativeZeroAndNaNEncodeAsPositiveZero()
    {
        Assert.Equal(0, Fp4E2M1.Encode(-0f));
        Assert.Equal(0, Fp4E2M1.Encode(float.NaN));
    }

    [Fact]
    public void EncodeIsNearestValue()
    {
        var rng = new Random(7);
        for (int i = 0; i < 20000; i++)
        {
            float x = (float)((rng.NextDouble() - 0.5) * 16);
            float q = Fp4E2M1.Decode(Fp4E2M1.Encode(x));
            float best = float.MaxValue;
            foreach (float v in Fp4E2M1.Values) best = Math.Min(best, Math.Abs(v - x));
            Assert.Equal(best, Math.Abs(q - x));
        }
    }

    [Fact]
    public void VectorEncodeMatchesScalarBitForBit()
    {
        var values = new List<float> { float.NaN, -float.NaN, 0f, -0f, 0.25f, -0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5f, 6f, 7f, -7f, 1e-40f, -1e-40f, 1e30f };
        foreach (float t in new[] { 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5f })
        {
            values.Add(MathF.BitDecrement(t));
            values.Add(MathF.BitIncrement(t));
            values.Add(-MathF.BitIncrement(t));
        }
        var rng = new Random(3);
        while (values.Count % 8 != 0 || values.Count < 4000) values.Add((float)((rng.NextDouble() - 0.5) * 20));
        for (int i = 0; i < values.Count; i += 8)
        {
            var v = Vector256.Create(values.GetRange(i, 8).ToArray());
            var codes = Fp4E2M1.Encode(v, out var decoded);
            for (int l = 0; l < 8; l++)
            {
                byte expected = Fp4E2M1.Encode(values[i + l]);
                Assert.Equal(expected, codes.GetElement(l));
                Assert.Equal(BitConverter.SingleToUInt32Bits(Fp4E2M1.Decode(expected)), BitConverter.SingleToUInt32Bits(decoded.GetElement(l)));
            }
        }
    }

    [Fact]
    public void PacksTheEvenElementIntoTheLowNibble()
    {
        byte[] codes = [0x1, 0x2, 0x3, 0xF, 0x9];
        var packed = new byte[3];
        Fp4E2M1.Pack(codes, packed);
        Assert.Equal(new byte[] { 0x21, 0xF3, 0x09 }, packed);
        var back = new byte[5];
        Fp4E2M1.Unpack(packed, back);
        Assert.Equal(codes, back);
    }
}
