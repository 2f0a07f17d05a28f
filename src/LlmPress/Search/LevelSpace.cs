namespace LlmPress.Search;

/// <summary>
/// The search space of a non-uniform compression: per layer, the levels it may take (bit widths, sparsities, kept or
/// dropped), each with its cost (bits·numel, non-zero weights, …), ordered by increasing cost. A configuration is one
/// level index per layer.
/// </summary>
public sealed class LevelSpace
{
    private readonly double[][] _costs;

    /// <summary>Creates the space.</summary>
    /// <param name="layers">Layer names (for messages and reports).</param>
    /// <param name="costs">Per layer, the cost of each level, strictly increasing, finite, ≥ 0.</param>
    /// <exception cref="ArgumentException">Counts differ, a layer has no level, or costs are not strictly increasing.</exception>
    public LevelSpace(IReadOnlyList<string> layers, IReadOnlyList<double[]> costs)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(costs);
        if (layers.Count != costs.Count) throw new ArgumentException($"{layers.Count} layer names but {costs.Count} cost lists.", nameof(costs));
        _costs = new double[costs.Count][];
        for (int l = 0; l < costs.Count; l++)
        {
            var c = costs[l] ?? throw new ArgumentException($"Layer {layers[l]} has no costs.", nameof(costs));
            if (c.Length == 0) throw new ArgumentException($"Layer {layers[l]} has no levels.", nameof(costs));
            for (int j = 0; j < c.Length; j++)
                if (!double.IsFinite(c[j]) || c[j] < 0 || (j > 0 && c[j] <= c[j - 1]))
                    throw new ArgumentException($"Layer {layers[l]}: level costs must be finite, ≥ 0 and strictly increasing; level {j} costs {c[j]}.", nameof(costs));
            _costs[l] = (double[])c.Clone();
        }
        Layers = layers.ToArray();
    }

    /// <summary>Layer names.</summary>
    public IReadOnlyList<string> Layers { get; }

    /// <summary>Number of layers.</summary>
    public int LayerCount => _costs.Length;

    /// <summary>Levels of layer l.</summary>
    public int LevelCount(int layer) => _costs[layer].Length;

    /// <summary>Cost of layer l at level j.</summary>
    public double Cost(int layer, int level) => _costs[layer][level];

    /// <summary>Costs per layer (copies), e.g. for <see cref="MultipleChoiceKnapsack"/>.</summary>
    public double[][] Costs() => _costs.Select(c => (double[])c.Clone()).ToArray();

    /// <summary>Σ cost of a configuration.</summary>
    /// <exception cref="ArgumentException">Wrong length or a level out of range.</exception>
    public double TotalCost(ReadOnlySpan<int> levels)
    {
        if (levels.Length != LayerCount) throw new ArgumentException($"A configuration has {LayerCount} levels, not {levels.Length}.", nameof(levels));
        double total = 0;
        for (int l = 0; l < levels.Length; l++)
        {
            if ((uint)levels[l] >= (uint)_costs[l].Length)
                throw new ArgumentException($"Layer {Layers[l]}: level {levels[l]} does not exist (it has {_costs[l].Length}).", nameof(levels));
            total += _costs[l][levels[l]];
        }
        return total;
    }

    /// <summary>Cheapest and dearest possible totals.</summary>
    public (double Min, double Max) CostRange()
    {
        double min = 0, max = 0;
        foreach (var c in _costs) { min += c[0]; max += c[^1]; }
        return (min, max);
    }
}
