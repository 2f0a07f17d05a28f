using LlmPress.Numerics;
using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization;

/// <summary>Seeded matrices and comparison helpers shared by the quantization tests.</summary>
internal static class QuantTestData
{
    /// <summary>[rows, cols] of N(0, σ²), with a few large outliers when <paramref name="outliers"/> is set.</summary>
    public static float[] Gaussian(int rows, int cols, int seed, float sigma = 1f, bool outliers = false)
    {
        var rng = new Random(seed);
        var w = new float[rows * cols];
        for (int i = 0; i < w.Length; i++) w[i] = (float)rng.NextGaussian() * sigma;
        if (outliers)
            for (int k = 0; k < Math.Max(1, w.Length / 97); k++) w[rng.Next(w.Length)] *= 8;
        return w;
    }

    /// <summary>Σ(a − b)² / Σb².</summary>
    public static double RelativeError(ReadOnlySpan<float> approximation, ReadOnlySpan<float> reference)
    {
        double num = 0, den = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            double d = approximation[i] - reference[i];
            num += d * d;
            den += (double)reference[i] * reference[i];
        }
        return num / den;
    }

    /// <summary>Same format, shape and bytes of every tensor.</summary>
    public static void AssertIdentical(PackedWeight expected, PackedWeight actual)
    {
        Assert.Equal(expected.Format, actual.Format);
        Assert.Equal(expected.Rows, actual.Rows);
        Assert.Equal(expected.Cols, actual.Cols);
        Assert.Equal(expected.Tensors.Count, actual.Tensors.Count);
        for (int i = 0; i < expected.Tensors.Count; i++)
        {
            var e = expected.Tensors[i];
            var a = actual.Tensors[i];
            Assert.Equal(e.Suffix, a.Suffix);
            Assert.Equal(e.DType, a.DType);
            Assert.Equal(e.Shape, a.Shape);
            Assert.True(e.Data.AsSpan().SequenceEqual(a.Data), $"{expected.Format}: tensor '{e.Suffix}' differs");
        }
    }

    /// <summary>Bit-for-bit equality of float arrays (distinguishes −0 from +0).</summary>
    public static void AssertBitIdentical(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToUInt32Bits(expected[i]) != BitConverter.SingleToUInt32Bits(actual[i]))
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, expected {expected[i]:R}");
    }

    /// <summary>One format of every kind and flavour (small HIGGS rotation blocks keep the tests fast).</summary>
    public static IEnumerable<QuantFormat> AllFormats()
    {
        foreach (int bits in new[] { 2, 3, 4, 5, 6, 7, 8 })
        {
            yield return QuantFormat.Int(bits, 32, symmetric: false);
            yield return QuantFormat.Int(bits, null, symmetric: true);
        }
        yield return QuantFormat.Int(4, 128, symmetric: true);
        yield return QuantFormat.Int(3, 20, symmetric: false, rotationBlockSize: 16);
        yield return QuantFormat.Mxfp4();
        yield return QuantFormat.Mxfp4(rotationBlockSize: 32);
        yield return QuantFormat.Nvfp4();
        yield return QuantFormat.Nvfp4(rotationBlockSize: 16);
        yield return QuantFormat.Higgs(2, 256, 256);
        yield return QuantFormat.Higgs(2, 64, 256);
        yield return QuantFormat.Higgs(2, 16, 512);
        yield return QuantFormat.Higgs(1, 16, 256);
        yield return QuantFormat.Higgs(1, 8, 256);
        yield return QuantFormat.Higgs(1, 4, 256);
    }

    public static TheoryData<string> AllFormatNames()
    {
        var data = new TheoryData<string>();
        foreach (var f in AllFormats()) data.Add(f.Name);
        return data;
    }
}
