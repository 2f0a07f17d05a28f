using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization;

public class HiggsGridTests
{
    [Theory]
    [InlineData(4, new[] { 0.4527800, 1.5104176 })]
    [InlineData(8, new[] { 0.2450942, 0.7560053, 1.3439093, 2.1519456 })]
    [InlineData(16, new[] { 0.1283950, 0.3880483, 0.6567591, 0.9423404, 1.2562312, 1.6180464, 2.0690172, 2.7325895 })]
    public void ScalarGridsAreThePublishedLloydMaxQuantizers(int n, double[] positive)
    {
        // transformers' higgs.py values (ALGORITHMS.md §4.1), symmetric, ascending.
        var grid = HiggsGrid.Get(1, n);
        Assert.Equal(n, grid.Count);
        for (int i = 0; i < n / 2; i++)
        {
            Assert.Equal(positive[i], grid.Points[n / 2 + i], 1e-6);
            Assert.Equal(-positive[i], grid.Points[n / 2 - 1 - i], 1e-6);
        }
    }

    [Fact]
    public void ScalarGridsAreRegeneratedExactlyByLloydMax()
    {
        // The p = 1 resource is nothing but the generator's output (and its recorded MSE the closed form's).
        foreach (int n in new[] { 4, 8, 16 })
        {
            var g = HiggsGridGenerator.LloydMax(n, out double mse, maxIterations: 200_000, tolerance: 1e-12);
            var grid = HiggsGrid.Get(1, n);
            for (int i = 0; i < n; i++) Assert.Equal((float)g[i], grid.Points[i], 1e-6f);
            Assert.Equal(mse, grid.Mse, 1e-9);
        }
        HiggsGridGenerator.LloydMax(4, out double mse4);
        Assert.Equal(0.1175, mse4, 4); // the classic Max (1960) value for 2 bits
    }

    [Theory]
    [InlineData(16, 4)]
    [InlineData(64, 8)]
    [InlineData(256, 16)]
    public void VectorGridsBeatScalarGridsOfEqualBitsAndMatchTheirRecordedMse(int n, int scalarN)
    {
        var grid = HiggsGrid.Get(2, n);
        double mse = HiggsGridGenerator.MonteCarloMse(grid, 1 << 17, seed: 99);
        Assert.InRange(mse, grid.Mse * 0.99, grid.Mse * 1.01); // fresh samples agree with the recorded value
        Assert.True(mse < 0.97 * HiggsGrid.Get(1, scalarN).Mse, $"p=2 n={n}: {mse} vs p=1 n={scalarN}: {HiggsGrid.Get(1, scalarN).Mse}");
    }

    [Theory]
    [InlineData(16, 2)]
    [InlineData(64, 1)]
    [InlineData(256, 1)]
    public void VectorGridsAreWithinOnePercentOfAFreshLloydRun(int n, int seed)
    {
        // A fresh, much cheaper run of the same algorithm from random points: the stored grid is at least as good up to 1%;
        // for n = 16 and 64 the cheap run gets within 1% of it too (n = 256 converges slowly: see the next test).
        var settings = new HiggsGridGenerator.Settings { Steps = n == 256 ? 60 : 100, BatchSize = 8192, Seeds = [seed] };
        var fresh = new HiggsGrid(2, HiggsGridGenerator.StochasticLloyd(2, n, seed, settings));
        double freshMse = HiggsGridGenerator.MonteCarloMse(fresh, 1 << 17, seed: 7);
        double storedMse = HiggsGridGenerator.MonteCarloMse(HiggsGrid.Get(2, n), 1 << 17, seed: 7);
        Assert.True(storedMse <= 1.01 * freshMse, $"n={n}: stored {storedMse} vs fresh {freshMse}");
        if (n < 256) Assert.True(freshMse <= 1.01 * storedMse, $"n={n}: fresh {freshMse} vs stored {storedMse}");
    }

    [Fact]
    public void LargestVectorGridIsAFixedPointOfLloyd()
    {
        // Lloyd steps from the stored n = 256 grid on fresh samples cannot improve it by more than 0.5%: it has converged.
        var grid = HiggsGrid.Get(2, 256);
        var points = grid.Points.ToArray();
        var rng = new Random(4);
        int m = 1 << 17;
        var xs = new float[m];
        var ys = new float[m];
        for (int i = 0; i < m; i++)
        {
            xs[i] = (float)LlmPress.Numerics.RandomExtensions.NextGaussian(rng);
            ys[i] = (float)LlmPress.Numerics.RandomExtensions.NextGaussian(rng);
        }
        var codes = new byte[m];
        for (int step = 0; step < 3; step++)
        {
            new HiggsGrid(2, points).Nearest(xs, ys, codes, vectorized: true);
            var sums = new double[512];
            var counts = new int[256];
            for (int i = 0; i < m; i++)
            {
                counts[codes[i]]++;
                sums[2 * codes[i]] += xs[i];
                sums[2 * codes[i] + 1] += ys[i];
            }
            for (int j = 0; j < 256; j++)
                if (counts[j] > 0)
                {
                    points[2 * j] = (float)(sums[2 * j] / counts[j]);
                    points[2 * j + 1] = (float)(sums[2 * j + 1] / counts[j]);
                }
        }
        double before = HiggsGridGenerator.MonteCarloMse(grid, 1 << 17, seed: 8);
        double after = HiggsGridGenerator.MonteCarloMse(new HiggsGrid(2, points), 1 << 17, seed: 8);
        Assert.True(after > 0.995 * before, $"Lloyd improved the stored grid from {before} to {after}");
    }

    [Fact]
    public void ACheapRegenerationConvergesToTheStoredSmallGrid()
    {
        // Same seed as the resource's winning run, 10× fewer samples: the same configuration comes out, up to the
        // rotation/reflection N(0, I₂) cannot tell apart (1 centre point, a ring of 6, an outer ring of 9).
        var stored = HiggsGrid.Get(2, 16).Points.ToArray();
        var settings = new HiggsGridGenerator.Settings { Steps = 150, BatchSize = 8192 };
        var fresh = HiggsGridGenerator.StochasticLloyd(2, 16, seed: 2, settings);
        double distance = DistanceUpToOrthogonalTransform(stored, fresh);
        Assert.True(distance < 0.06, $"the regenerated grid is {distance} away from the resource");
    }

    // max over points of the distance to the nearest point of the other set, minimized over rotations and reflections
    // that map some point of b onto the direction of some point of a.
    private static double DistanceUpToOrthogonalTransform(float[] a, float[] b)
    {
        int n = a.Length / 2;
        double best = double.MaxValue;
        foreach (int reflect in new[] { 1, -1 })
            for (int i = 0; i < n; i++)
                for (int k = 0; k < n; k++)
                {
                    double ra = Math.Atan2(a[2 * i + 1], a[2 * i]), rb = Math.Atan2(reflect * b[2 * k + 1], b[2 * k]);
                    if (Math.Abs(Math.Sqrt(a[2 * i] * a[2 * i] + a[2 * i + 1] * a[2 * i + 1]) - Math.Sqrt(b[2 * k] * b[2 * k] + b[2 * k + 1] * b[2 * k + 1])) > 0.1) continue;
                    double theta = ra - rb, c = Math.Cos(theta), s = Math.Sin(theta);
                    var t = new double[2 * n];
                    for (int j = 0; j < n; j++)
                    {
                        double x = b[2 * j], y = reflect * b[2 * j + 1];
                        t[2 * j] = c * x - s * y;
                        t[2 * j + 1] = s * x + c * y;
                    }
                    double worst = 0;
                    for (int j = 0; j < n; j++)
                    {
                        double da = double.MaxValue, db = double.MaxValue;
                        for (int m = 0; m < n; m++)
                        {
                            da = Math.Min(da, Math.Sqrt(Sq(a[2 * j] - t[2 * m]) + Sq(a[2 * j + 1] - t[2 * m + 1])));
                            db = Math.Min(db, Math.Sqrt(Sq(t[2 * j] - a[2 * m]) + Sq(t[2 * j + 1] - a[2 * m + 1])));
                        }
                        worst = Math.Max(worst, Math.Max(da, db));
                    }
                    best = Math.Min(best, worst);
                }
        return best;
    }

    private static double Sq(double x) => x * x;

    [Fact]
    public void FindNearestBreaksTiesTowardsTheLowerIndex()
    {
        var grid = new HiggsGrid(2, [1f, 0f, -1f, 0f, 0f, 2f]);
        Assert.Equal(0, grid.FindNearest([0f, 0f]));   // equidistant from points 0 and 1
        Assert.Equal(1, grid.FindNearest([-0.9f, 0.1f]));
        Assert.Equal(2, grid.FindNearest([0f, 5f]));
        var rng = new Random(1);
        var ux = Enumerable.Range(0, 1001).Select(_ => (float)rng.NextDouble() * 6 - 3).ToArray();
        var uy = Enumerable.Range(0, 1001).Select(_ => (float)rng.NextDouble() * 6 - 3).ToArray();
        foreach (var g in new[] { HiggsGrid.Get(2, 256), HiggsGrid.Get(2, 16), HiggsGrid.Get(1, 8) })
        {
            var a = new byte[1001];
            var b = new byte[1001];
            g.Nearest(ux, g.Dimension == 2 ? uy : default, a, vectorized: false);
            g.Nearest(ux, g.Dimension == 2 ? uy : default, b, vectorized: true);
            Assert.Equal(a, b);
        }
    }

    [Fact]
    public void ResourceIsWellFormed()
    {
        using var stream = typeof(HiggsGrid).Assembly.GetManifestResourceStream(HiggsGrid.ResourceName)!;
        var grids = HiggsGrid.ParseGrids(stream);
        Assert.Equal(6, grids.Count);
        foreach (var ((p, n), (points, mse)) in grids)
        {
            Assert.True(HiggsGrid.IsSupported(p, n));
            Assert.Equal(p * n, points.Length);
            Assert.InRange(mse, 0.005, 0.12);
        }
    }

    /// <summary>
    /// Regenerates src/LlmPress/Resources/higgs-grids.json (a few minutes in Release):
    /// LLMPRESS_REGENERATE_HIGGS_GRIDS=1 dotnet test tests/LlmPress.Tests -c Release --filter FullyQualifiedName~RegenerateResource
    /// </summary>
    [Fact]
    public void RegenerateResource()
    {
        if (Environment.GetEnvironmentVariable("LLMPRESS_REGENERATE_HIGGS_GRIDS") != "1")
            Assert.Skip("Generating test: set LLMPRESS_REGENERATE_HIGGS_GRIDS=1 to rewrite src/LlmPress/Resources/higgs-grids.json.");
        string directory = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(directory, "LlmPress.slnx"))) directory = Path.GetDirectoryName(directory)!;
        string json = HiggsGridGenerator.GenerateResourceJson(new HiggsGridGenerator.Settings());
        File.WriteAllText(Path.Combine(directory, "src", "LlmPress", "Resources", "higgs-grids.json"), json);
    }
}
