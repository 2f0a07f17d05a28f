using System.Runtime.Intrinsics;
using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization;

/// <summary>The internal kernels: each vector version must equal its scalar reference bit for bit.</summary>
public class KernelTests
{
    [Fact]
    public void Pow24IsAccurateAndTheVectorVersionIsBitIdentical()
    {
        var rng = new Random(24);
        var values = new List<float> { 0f, 1f, 2f, 0.5f, 1.41421356f, 1.4142137f, 1e-38f, 1.17549435E-38f, 1e-20f, 1e15f, 3e18f };
        while (values.Count < 8000) values.Add((float)Math.Exp(rng.NextDouble() * 80 - 60));
        for (int i = 0; i < values.Count; i += 8)
        {
            var v = ErrorNorm.Pow24(Vector256.Create(values.GetRange(i, 8).ToArray()));
            for (int l = 0; l < 8; l++)
            {
                float a = values[i + l];
                float scalar = ErrorNorm.Pow24(a);
                Assert.Equal(BitConverter.SingleToUInt32Bits(scalar), BitConverter.SingleToUInt32Bits(v.GetElement(l)));
                if (a >= 1.17549435E-38f)
                {
                    double exact = Math.Pow(a, 2.4);
                    if (exact > 1e-37 && exact < 1e37) Assert.True(Math.Abs(scalar - exact) <= 2e-6 * exact, $"{a}: {scalar} vs {exact}");
                }
                else Assert.Equal(0f, scalar);
            }
        }
    }

    [Fact]
    public void ErrorSumsAgreeBetweenScalarAndVectorForEveryTail()
    {
        var rng = new Random(5);
        for (int n = 0; n <= 41; n++)
        {
            var x = new float[n];
            for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
            var intRounding = new IntRounding(0.3f, 7f, 15f);
            var fpRounding = new Fp4Rounding(0.37f);
            Assert.Equal(ShrinkSearch.ErrorSum(x, intRounding, false), ShrinkSearch.ErrorSum(x, intRounding, true));
            Assert.Equal(ShrinkSearch.ErrorSum(x, fpRounding, false), ShrinkSearch.ErrorSum(x, fpRounding, true));
            double direct = 0;
            foreach (float v in x) direct += Math.Pow(Math.Abs(intRounding.Apply(v) - v), 2.4);
            Assert.Equal(direct, ShrinkSearch.ErrorSum(x, intRounding, false), 4);
        }
    }

    [Fact]
    public void IntRoundingTiesToEvenInBothVersions()
    {
        // x/s exactly halfway between integers: torch.round (and ours) rounds to even; then + zero, clamp to [0, maxq].
        var x = new float[24];
        for (int i = 0; i < x.Length; i++) x[i] = (i - 12 + 0.5f) * 0.25f;
        var expected = x.Select(v => (int)Math.Clamp(Math.Round(v / 0.25f, MidpointRounding.ToEven) + 8, 0, 15)).ToArray();
        for (int i = 0; i < x.Length; i += 8)
        {
            var v = IntRounding.Code(Vector256.Create(x.AsSpan(i, 8)), Vector256.Create(0.25f), Vector256.Create(8f), Vector256.Create(15f));
            for (int l = 0; l < 8; l++)
            {
                Assert.Equal(expected[i + l], v.GetElement(l));
                Assert.Equal(expected[i + l], IntRounding.Code(x[i + l], 0.25f, 8f, 15f));
            }
        }
    }

    [Fact]
    public void ShrinkFactorsAreGptqsGrid()
    {
        Assert.Equal(80, ShrinkSearch.Factors.Length);
        Assert.Equal(1f, ShrinkSearch.Factors[0]);
        Assert.Equal(0.21f, ShrinkSearch.Factors[79]);
    }

    [Fact]
    public void RangesAreOrderIndependentAndNeverNegativeZero()
    {
        var rng = new Random(9);
        for (int n = 0; n < 50; n++)
        {
            var x = new float[n];
            for (int i = 0; i < n; i++) x[i] = rng.Next(4) == 0 ? -0f : (float)(rng.NextDouble() * 10 - (n % 3 == 0 ? 0 : 5));
            GroupRange.MinMax(x, false, out float lo, out float hi);
            GroupRange.MinMax(x, true, out float vlo, out float vhi);
            Assert.Equal(BitConverter.SingleToUInt32Bits(lo), BitConverter.SingleToUInt32Bits(vlo));
            Assert.Equal(BitConverter.SingleToUInt32Bits(hi), BitConverter.SingleToUInt32Bits(vhi));
            Assert.False(float.IsNegative(hi));
            Assert.Equal(Math.Min(0f, x.DefaultIfEmpty(0f).Min()), lo);
            Assert.Equal(Math.Max(0f, x.DefaultIfEmpty(0f).Max()), hi);
            float amax = GroupRange.AbsMax(x, false);
            Assert.Equal(BitConverter.SingleToUInt32Bits(amax), BitConverter.SingleToUInt32Bits(GroupRange.AbsMax(x, true)));
            Assert.Equal(x.Select(MathF.Abs).DefaultIfEmpty(0f).Max(), amax);
        }
        GroupRange.MinMax([-0f, -0f, -0f, -0f, -0f, -0f, -0f, -0f, -0f], true, out float z0, out float z1);
        Assert.False(float.IsNegative(z0) || float.IsNegative(z1));
    }

    [Fact]
    public void FindsTheFirstNonFiniteValue()
    {
        for (int n = 1; n < 40; n++)
        {
            var x = new float[n];
            Assert.Equal(-1, GroupRange.IndexOfNonFinite(x));
            x[n - 1] = float.NaN;
            Assert.Equal(n - 1, GroupRange.IndexOfNonFinite(x));
            x[n / 2] = float.NegativeInfinity;
            Assert.Equal(n / 2, GroupRange.IndexOfNonFinite(x));
        }
    }

    [Fact]
    public void HadamardMatchesTheSylvesterMatrixAndIsSelfInverse()
    {
        var rng = new Random(2);
        foreach (int n in new[] { 1, 2, 4, 8, 32, 128 })
        {
            var x = new float[n];
            for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() - 0.5);
            var y = (float[])x.Clone();
            ReferenceHadamard.Transform(y);
            for (int i = 0; i < n; i++)
            {
                double expected = 0;
                for (int j = 0; j < n; j++) expected += (int.PopCount(i & j) % 2 == 0 ? 1 : -1) * (double)x[j]; // Sylvester: (−1)^popcount(i&j)
                Assert.Equal(expected, y[i], 1e-5 * (1 + Math.Abs(expected)));
            }
            var z = (float[])x.Clone();
            ReferenceHadamard.TransformNormalized(z);
            ReferenceHadamard.TransformNormalized(z);
            for (int i = 0; i < n; i++) Assert.Equal(x[i], z[i], 1e-6f);
        }
        Assert.Throws<ArgumentException>(() => ReferenceHadamard.Transform(new float[12]));
    }
}
