using LlmPress.Numerics;
using LlmPress.Sparsity;

namespace LlmPress.Tests.Sparsity;

public class StoredValuesTests
{
    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    [InlineData(DType.F32)]
    public void Round_KeepsZerosAndMatchesTheStoredBytes(DType type)
    {
        var rng = new Random(5);
        var w = Enumerable.Range(0, 1000).Select(i => i % 3 == 0 ? 0f : (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var rounded = w.ToArray();
        StoredValues.Round(type, rounded);
        for (int i = 0; i < w.Length; i++)
            if (w[i] == 0) Assert.Equal(0u, BitConverter.SingleToUInt32Bits(rounded[i])); // +0 stays +0
        // Rounding is idempotent and is exactly what storing and reloading gives.
        var bytes = StoredValues.ToBytes(type, w);
        var reloaded = new float[w.Length];
        FloatConversion.ToSingle(type, bytes, reloaded);
        Assert.Equal(rounded, reloaded);
        Assert.Equal(bytes, StoredValues.ToBytes(type, rounded));
        // Reference for the two narrow types: the nearest representable value (.NET's own conversions).
        for (int i = 0; i < w.Length; i++)
        {
            float expected = type switch
            {
                DType.F16 => (float)(Half)w[i],
                DType.BF16 => NearestBf16(w[i]),
                _ => w[i],
            };
            Assert.Equal(expected, rounded[i]);
        }
        Assert.Equal(w.Length * DTypeInfo.SizeOf(type), bytes.Length);
    }

    // Independent reference: of the two BF16 neighbours (truncated, and one step away from zero) the nearer in double
    // precision, ties to the even bit pattern.
    private static float NearestBf16(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x) & 0xFFFF0000u;
        float down = BitConverter.UInt32BitsToSingle(bits), up = BitConverter.UInt32BitsToSingle(bits + 0x10000u);
        double dDown = Math.Abs((double)x - down), dUp = Math.Abs((double)up - x);
        if (dDown != dUp) return dDown < dUp ? down : up;
        return (bits >> 16 & 1) == 0 ? down : up;
    }
}
