namespace LlmPress.Search;

/// <summary>
/// The two searches over depth units (<see cref="DepthUnits"/>) for "drop exactly K sub-blocks":
/// <list type="bullet">
/// <item>dp: each unit's sensitivity is the metric increase measured when it alone is dropped
/// (<see cref="DepthSensitivity"/>); the prediction for a set is the base plus the sum of its units' increases, and the
/// set of K with the smallest sum is chosen exactly (<see cref="DropSmallest"/>).</item>
/// <item>evopress: <see cref="EvoPressSearch"/> over the {dropped, kept} space with the budget units − K: its level
/// switch is a swap of one dropped and one kept unit, so every candidate drops exactly K; it starts from the dp answer
/// for single-drop KL (EvoPress' depth runs start from random sets; a good start costs nothing here).</item>
/// </list>
/// </summary>
public static class DepthSearch
{
    /// <summary>
    /// The configuration dropping the <paramref name="dropBlocks"/> units with the smallest <paramref name="increase"/>
    /// (ties to the lower unit). With every unit costing 1 and exactly K to drop, this is the multiple-choice knapsack's
    /// optimum (min Σ increase over dropped units, Σ kept = units − K): sorting is the exact DP here.
    /// </summary>
    /// <exception cref="ArgumentException">K outside 0..units or a NaN increase.</exception>
    public static int[] DropSmallest(ReadOnlySpan<double> increase, int dropBlocks)
    {
        int units = increase.Length;
        if ((uint)dropBlocks > (uint)units) throw new ArgumentException($"Cannot drop {dropBlocks} of {units} units.", nameof(dropBlocks));
        var order = new int[units];
        var keys = new double[units];
        for (int u = 0; u < units; u++)
        {
            if (double.IsNaN(increase[u])) throw new ArgumentException($"Unit {u} has no measured increase (NaN).", nameof(increase));
            order[u] = u;
            keys[u] = increase[u];
        }
        Array.Sort(order, (a, b) => keys[a] != keys[b] ? keys[a].CompareTo(keys[b]) : a.CompareTo(b));
        return DepthUnits.Dropping(units, order.AsSpan(0, dropBlocks).ToArray());
    }

    /// <summary>The configuration dropping the last <paramref name="dropBlocks"/> units (the naive "cut the top" baseline).</summary>
    public static int[] DropLast(int units, int dropBlocks) => DepthUnits.Dropping(units, Enumerable.Range(units - dropBlocks, dropBlocks));

    /// <summary>Base + Σ increase over the dropped units of <paramref name="levels"/>: the dp's additive prediction.</summary>
    public static double Predict(double baseMetric, ReadOnlySpan<double> increase, ReadOnlySpan<int> levels)
    {
        double sum = baseMetric;
        for (int u = 0; u < levels.Length; u++)
            if (levels[u] == DepthUnits.Dropped) sum += increase[u];
        return sum;
    }

    /// <summary>
    /// Runs EvoPress over the depth units of a <paramref name="layers"/>-layer model with the budget "drop exactly
    /// <paramref name="dropBlocks"/>" (every candidate <paramref name="fitness"/> sees drops exactly K).
    /// </summary>
    /// <param name="layers">Decoder layers (units = 2 × layers).</param>
    /// <param name="dropBlocks">K.</param>
    /// <param name="fitness">Scores a configuration (<see cref="DepthUnits"/> levels) on calibration windows, e.g. by
    /// <see cref="DepthUnits.Apply"/> and <see cref="KlDivergenceFitness.Evaluate"/>; lower is better.</param>
    /// <param name="windowCount">Calibration windows available to the fitness.</param>
    /// <param name="start">A configuration dropping exactly K (e.g. <see cref="DropSmallest"/> of the single-drop KL).</param>
    /// <param name="options">Generations, offspring, stages, seed.</param>
    /// <param name="resume">A saved state to continue.</param>
    /// <param name="generationDone">Called after the start and every generation.</param>
    /// <param name="cancel">Checked between evaluations.</param>
    /// <exception cref="ArgumentException">K out of range or a start or saved state that does not drop exactly K.</exception>
    public static EvoPressState Evolve(int layers, int dropBlocks, EvoPressSearch.Fitness fitness, int windowCount, int[] start, EvoPressOptions options,
        EvoPressState? resume = null, Action<EvoPressState>? generationDone = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(fitness);
        ArgumentNullException.ThrowIfNull(start);
        double budget = DepthUnits.Budget(layers, dropBlocks);
        if (start.Length != DepthUnits.Count(layers) || DepthUnits.DroppedCount(start) != dropBlocks)
            throw new ArgumentException($"The start configuration must drop exactly {dropBlocks} of {DepthUnits.Count(layers)} units.", nameof(start));
        if (resume is not null && (resume.Parent.Length != start.Length || DepthUnits.DroppedCount(resume.Parent) != dropBlocks))
            throw new ArgumentException("The saved search state drops another number of units; start over without resuming.", nameof(resume));
        return EvoPressSearch.Run(DepthUnits.Space(layers), budget, fitness, windowCount, options, start, resume, generationDone, cancel);
    }
}
