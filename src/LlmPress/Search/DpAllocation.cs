using LlmPress.Models;

namespace LlmPress.Search;

/// <summary>
/// The linearity-theorem allocation (HIGGS, arXiv 2411.17525 §5): measure each linear's sensitivity αₗ of a metric to
/// relative weight error, take error(l, j) = αₗ·tₗⱼ² with tₗⱼ² the database's ‖W − Ŵ‖²/‖W‖², and choose one level per
/// linear by the exact multiple-choice knapsack under the budget. The prediction is metric(W) + Σ αₗ·t². By default αₗ
/// is fitted to the database's own errors (<see cref="SensitivitySource.Database"/>); on stories260K (GPTQ bits 2–6,
/// KL) the prediction is then within 2% of measurement at 4 bits and 17% at 3 bits (under: cross-layer terms), where
/// Gaussian noise overshot by 90%.
/// </summary>
public static class DpAllocation
{
    /// <summary>Estimates the sensitivities on <paramref name="model"/> (uncompressed; restored afterwards) and solves.</summary>
    /// <param name="model">The uncompressed model the database was built from.</param>
    /// <param name="database">The level database.</param>
    /// <param name="budget">Largest total cost (<see cref="SearchBudget.For"/>).</param>
    /// <param name="metric">Quality metric of the model as it currently is (lower is better), e.g. perplexity on calibration windows.</param>
    /// <param name="source">What error αₗ is measured with.</param>
    /// <param name="seed">Seed of the sensitivity noise (<see cref="SensitivitySource.Gaussian"/>).</param>
    /// <param name="progress">Called with (linears measured, linears).</param>
    /// <exception cref="ArgumentException">A linear of the database missing from the model, or a budget below every configuration.</exception>
    public static DpAllocationResult Run(LlamaModel model, LevelDatabase database, double budget, Func<LlamaModel, double> metric,
        SensitivitySource source = SensitivitySource.Database, int seed = 0, Action<int, int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(metric);
        var byName = new Dictionary<string, LinearLayer>(StringComparer.Ordinal);
        foreach (var layer in model.Layers)
            foreach (var linear in layer.Linears)
                byName[linear.Name] = linear;
        var linears = new LinearLayer[database.Linears.Count];
        for (int i = 0; i < linears.Length; i++)
            linears[i] = byName.TryGetValue(database.Linears[i].Name, out var l)
                ? l : throw new ArgumentException($"The model has no linear {database.Linears[i].Name}; the database belongs to another model.");
        var sensitivity = source == SensitivitySource.Database
            ? LinearitySensitivity.FromDatabase(model, database, metric, progress)
            : LinearitySensitivity.Estimate(model, linears, metric, NoiseLevels(database), seed, progress);
        var correction = CrossLayerCorrection.Measure(model, database, sensitivity, metric);
        return Solve(database, sensitivity, budget, correction);
    }

    /// <summary>Solves for <paramref name="budget"/> with sensitivities already measured (one estimate serves many budgets).</summary>
    /// <param name="database">The level database.</param>
    /// <param name="sensitivity">αₗ in database order.</param>
    /// <param name="budget">Largest total cost.</param>
    /// <param name="correction">When given, the result also carries the prediction corrected for cross-layer effects.</param>
    /// <exception cref="ArgumentException">Not one αₗ per linear, or a budget below every configuration.</exception>
    public static DpAllocationResult Solve(LevelDatabase database, SensitivityResult sensitivity, double budget, CrossLayerCorrection? correction = null)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(sensitivity);
        int count = database.Linears.Count;
        if (sensitivity.Alpha.Length != count) throw new ArgumentException($"{sensitivity.Alpha.Length} sensitivities for {count} linears.", nameof(sensitivity));
        var errors = new double[count][];
        for (int i = 0; i < count; i++)
        {
            errors[i] = new double[database.Levels.Count];
            for (int j = 0; j < errors[i].Length; j++) errors[i][j] = sensitivity.Alpha[i] * database.WeightError(i, j);
        }
        var solution = MultipleChoiceKnapsack.Solve(database.Space.Costs(), errors, budget);
        var squared = new double[count];
        for (int i = 0; i < squared.Length; i++) squared[i] = database.WeightError(i, solution.Choices[i]);
        double predicted = sensitivity.Predict(squared);
        double? corrected = correction?.Correct(predicted, sensitivity.BaseMetric, database.Space.TotalCost(solution.Choices));
        return new DpAllocationResult(solution.Choices, sensitivity, solution, predicted, corrected, correction);
    }

    /// <summary>
    /// Noise sizes t at which the sensitivities are measured: the root mean squared relative weight error of each level
    /// over the linears (levels with t ≥ 1 skipped), so αₗ is fitted over the errors the knapsack actually chooses
    /// between — the metric is not quite linear in t² (2-bit errors are ~5× the 3-bit ones), and a fit at small t alone
    /// underrates what the coarse levels cost.
    /// </summary>
    public static double[] NoiseLevels(LevelDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        var levels = new List<double>();
        for (int j = 0; j < database.Levels.Count; j++)
        {
            double sum = 0;
            for (int i = 0; i < database.Linears.Count; i++) sum += database.WeightError(i, j);
            double t = Math.Sqrt(sum / database.Linears.Count);
            if (t > 1e-6 && t < 1 && !levels.Contains(t)) levels.Add(t);
        }
        return levels.Count > 0 ? [.. levels] : [.. LinearitySensitivity.DefaultNoiseLevels];
    }
}

/// <summary>The DP's answer.</summary>
/// <param name="Levels">Chosen level per linear (database order).</param>
/// <param name="Sensitivity">The measured αₗ and the base metric.</param>
/// <param name="Solution">The knapsack's solution (cost, Σ error, exactness).</param>
/// <param name="Predicted">The linearity theorem's (first-order) predicted metric of <paramref name="Levels"/>.</param>
/// <param name="PredictedCorrected">The prediction scaled by <paramref name="Correction"/> (null without one).</param>
/// <param name="Correction">The cross-layer correction measured on the uniform configurations (null when not measured).</param>
public sealed record DpAllocationResult(int[] Levels, SensitivityResult Sensitivity, KnapsackSolution Solution, double Predicted,
    double? PredictedCorrected, CrossLayerCorrection? Correction);
