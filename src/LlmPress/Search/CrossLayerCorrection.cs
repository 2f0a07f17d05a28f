using LlmPress.Models;

namespace LlmPress.Search;

/// <summary>
/// Scales the linearity theorem's first-order prediction by how much whole configurations exceed the sum of their
/// layers' terms. The theorem adds one term per layer; errors in consecutive layers compound, so a configuration's
/// metric increase is larger than Σ αₗ·tₗ², and the more so the larger the errors (stories260K, GPTQ, KL: measured /
/// predicted ≈ 1.0 at uniform 4 bits, 1.3–1.6 at 3 bits, ~3 at 2 bits). The ratio is measured on the uniform
/// configurations (one metric evaluation per level) and interpolated by cost: a configuration costing between uniform
/// levels j and j + 1 gets the ratio interpolated between theirs (the nearest one outside that range).
/// </summary>
public sealed class CrossLayerCorrection
{
    private readonly double[] _costs;   // uniform configurations' total costs, increasing
    private readonly double[] _ratios;  // measured increase / first-order increase at each

    private CrossLayerCorrection(double[] costs, double[] ratios) => (_costs, _ratios) = (costs, ratios);

    /// <summary>Total cost of each uniform configuration measured (increasing).</summary>
    public IReadOnlyList<double> UniformCosts => _costs;

    /// <summary>Measured over first-order increase of each uniform configuration.</summary>
    public IReadOnlyList<double> Ratios => _ratios;

    /// <summary>
    /// Measures the uniform configurations of <paramref name="database"/> on <paramref name="model"/> (the uncompressed
    /// model; restored afterwards). Levels whose first-order increase is not positive (e.g. lossless) are skipped.
    /// </summary>
    /// <param name="model">The uncompressed model.</param>
    /// <param name="database">The level database.</param>
    /// <param name="sensitivity">αₗ in database order, measured with the same <paramref name="metric"/>.</param>
    /// <param name="metric">The quality metric of the model as it currently is.</param>
    public static CrossLayerCorrection Measure(LlamaModel model, LevelDatabase database, SensitivityResult sensitivity, Func<LlamaModel, double> metric)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(sensitivity);
        ArgumentNullException.ThrowIfNull(metric);
        int count = database.Linears.Count;
        var costs = new List<double>();
        var ratios = new List<double>();
        var uniform = new int[count];
        var squared = new double[count];
        try
        {
            for (int j = 0; j < database.Levels.Count; j++)
            {
                Array.Fill(uniform, j);
                for (int l = 0; l < count; l++) squared[l] = database.WeightError(l, j);
                double firstOrder = sensitivity.Predict(squared) - sensitivity.BaseMetric;
                if (!(firstOrder > 0)) continue;
                database.Apply(model, uniform);
                costs.Add(database.Space.TotalCost(uniform));
                ratios.Add((metric(model) - sensitivity.BaseMetric) / firstOrder);
            }
        }
        finally
        {
            database.Restore(model);
        }
        var order = Enumerable.Range(0, costs.Count).OrderBy(i => costs[i]).ToArray();
        return new CrossLayerCorrection([.. order.Select(i => costs[i])], [.. order.Select(i => ratios[i])]);
    }

    /// <summary>The ratio at total cost <paramref name="cost"/> (1 when nothing was measured).</summary>
    public double RatioAt(double cost)
    {
        if (_costs.Length == 0) return 1;
        if (cost <= _costs[0]) return _ratios[0];
        for (int i = 1; i < _costs.Length; i++)
            if (cost <= _costs[i])
            {
                double f = (cost - _costs[i - 1]) / (_costs[i] - _costs[i - 1]);
                return _ratios[i - 1] + f * (_ratios[i] - _ratios[i - 1]);
            }
        return _ratios[^1];
    }

    /// <summary>The corrected prediction of a configuration costing <paramref name="cost"/> whose first-order prediction is <paramref name="predicted"/>.</summary>
    public double Correct(double predicted, double baseMetric, double cost) => baseMetric + RatioAt(cost) * (predicted - baseMetric);
}
