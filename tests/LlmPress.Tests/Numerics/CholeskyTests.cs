using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;
using static LlmPress.Tests.Numerics.NumericsTestUtil;

namespace LlmPress.Tests.Numerics;

/// <summary>
/// Cholesky on random SPD matrices A = BᵀB/n + I·d (condition number in the tens to hundreds). Tolerances scale with
/// n·ε·‖A‖ (backward error of Cholesky is O(n·ε)·|L||Lᵀ|) times a condition-number allowance for the inverse.
/// </summary>
public class CholeskyTests
{
    private static float[] RandomSpd(int n, int seed, double diagonal = 0.05)
    {
        var rng = new Random(seed);
        int k = n + 8;
        var b = Random(rng, (long)k * n);
        var a = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++)
            {
                double s = 0;
                for (int r = 0; r < k; r++) s += (double)b[r * n + i] * b[r * n + j];
                a[i * n + j] = a[j * n + i] = s / k + (i == j ? diagonal : 0);
            }
        return Array.ConvertAll(a, v => (float)v);
    }

    public static TheoryData<int, int> Sizes()
    {
        var data = new TheoryData<int, int>();
        foreach (var level in Levels())
            foreach (int n in new[] { 0, 1, 7, 16, 17, 63, 65, 127, 129, 257, 300 })
                data.Add((int)level, n);
        return data;
    }

    private static double MaxAbs(float[] a) => a.Length == 0 ? 0 : a.Max(v => Math.Abs((double)v));

    [Theory]
    [MemberData(nameof(Sizes))]
    public void FactorReproducesMatrixAndMatchesReference(int level, int n)
    {
        var a = RandomSpd(n, n);
        var l = (float[])a.Clone();
        // Garbage in the upper triangle must be ignored.
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) l[i * n + j] = float.NaN;
        bool ok;
        int failed;
        using (Force((KernelLevel)level))
            ok = Cholesky.TryFactor(l, n, out failed);
        Assert.True(ok);
        Assert.Equal(-1, failed);

        // L·Lᵀ ≈ A and upper triangle zero.
        double tol = (n + 4) * Eps * MaxAbs(a) * 4;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                if (j > i) { Assert.Equal(0f, l[i * n + j]); continue; }
                double s = 0;
                for (int p = 0; p <= j; p++) s += (double)l[i * n + p] * l[j * n + p];
                Assert.True(Math.Abs(s - a[i * n + j]) <= tol, $"LLᵀ[{i},{j}] = {s} vs {a[i * n + j]}");
            }

        var reference = (float[])a.Clone();
        Assert.True(CholeskyReference.TryFactor(reference, n, out _));
        double lTol = 1e-3 * Math.Sqrt(MaxAbs(a)) + 1e-6;
        for (int i = 0; i < n * n; i++)
            Assert.True(Math.Abs(reference[i] - l[i]) <= lTol, $"L[{i}] {l[i]} vs reference {reference[i]}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(17)]
    [InlineData(129)]
    [InlineData(300)]
    public void DoubleVariantMatchesReference(int n)
    {
        var a = RandomSpd(n, 3 * n);
        var ad = Array.ConvertAll(a, v => (double)v);
        Assert.True(Cholesky.TryFactor(ad, n, out int failed));
        Assert.Equal(-1, failed);
        var reference = (float[])a.Clone();
        Assert.True(CholeskyReference.TryFactor(reference, n, out _));
        for (int i = 0; i < n * n; i++) Assert.True(Math.Abs(reference[i] - ad[i]) <= 1e-6 * (1 + Math.Abs(ad[i])));
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void InverseTimesMatrixIsIdentity(int level, int n)
    {
        var a = RandomSpd(n, n + 1, diagonal: 0.5);
        var l = (float[])a.Clone();
        var inv = new float[n * n];
        using (Force((KernelLevel)level))
        {
            Assert.True(Cholesky.TryFactor(l, n, out _));
            Cholesky.Invert(l, n, inv);
        }
        var expected = new float[n * n];
        CholeskyReference.Invert(l, n, expected);
        // Well conditioned (smallest eigenvalue ≥ 0.5): inverse·A = I to ~n·ε·cond.
        double tol = 200 * (n + 4) * Eps;
        double invTol = tol * Math.Max(1, MaxAbs(expected));
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < n; p++) s += (double)inv[i * n + p] * a[p * n + j];
                Assert.True(Math.Abs(s - (i == j ? 1 : 0)) <= tol, $"(A⁻¹A)[{i},{j}] = {s}");
                Assert.Equal(inv[i * n + j], inv[j * n + i]);
                Assert.True(Math.Abs(inv[i * n + j] - expected[i * n + j]) <= invTol, $"inverse[{i},{j}]");
            }
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void UpperFactorOfInverseMatchesGptqRoute(int level, int n)
    {
        var h = RandomSpd(n, n + 2, diagonal: 0.5);
        var u = (float[])h.Clone();
        using (Force((KernelLevel)level))
            Assert.True(Cholesky.UpperFactorOfInverse(u, n, out int failed));
        var expected = (float[])h.Clone();
        Assert.True(CholeskyReference.UpperFactorOfInverse(expected, n, out _));
        double tol = 200 * (n + 4) * Eps * Math.Max(1, MaxAbs(expected));
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                if (j < i) Assert.Equal(0f, u[i * n + j]);
                Assert.True(Math.Abs(u[i * n + j] - expected[i * n + j]) <= tol, $"U[{i},{j}] = {u[i * n + j]} vs {expected[i * n + j]}");
            }
        // Uᵀ·U·H ≈ I.
        for (int i = 0; i < n; i += Math.Max(1, n / 7))
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < n; p++)
                {
                    double hinvIp = 0;
                    for (int q = 0; q <= Math.Min(i, p); q++) hinvIp += (double)u[q * n + i] * u[q * n + p];
                    s += hinvIp * h[p * n + j];
                }
                Assert.True(Math.Abs(s - (i == j ? 1 : 0)) <= tol, $"(UᵀU H)[{i},{j}] = {s}");
            }
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(5, 3)]
    [InlineData(200, 150)]
    [InlineData(300, 299)]
    public void FailureReportsTheFirstBadColumn(int n, int bad)
    {
        // SPD everywhere except column `bad`, whose pivot goes negative: set a[bad, bad] below Σ l[bad, p]².
        var a = RandomSpd(n, 7 * n + bad);
        var l0 = (float[])a.Clone();
        Assert.True(CholeskyReference.TryFactor(l0, n, out _));
        double sumSquares = 0;
        for (int p = 0; p < bad; p++) sumSquares += (double)l0[bad * n + p] * l0[bad * n + p];
        a[bad * n + bad] = (float)(sumSquares - 0.5);
        foreach (var level in Levels())
        {
            var l = (float[])a.Clone();
            using (Force(level))
                Assert.False(Cholesky.TryFactor(l, n, out int failed));
            Assert.False(Cholesky.TryFactor((float[])a.Clone(), n, out int failedColumn));
            Assert.Equal(bad, failedColumn);
        }
        var reference = (float[])a.Clone();
        Assert.False(CholeskyReference.TryFactor(reference, n, out int refFailed));
        Assert.Equal(bad, refFailed);
        Assert.False(Cholesky.TryFactor(Array.ConvertAll(a, v => (double)v), n, out int doubleFailed));
        Assert.Equal(bad, doubleFailed);

        var nan = RandomSpd(n, 11);
        nan[bad * n + bad] = float.NaN;
        Assert.False(Cholesky.TryFactor(nan, n, out int nanFailed));
        Assert.Equal(bad, nanFailed);
    }
}
