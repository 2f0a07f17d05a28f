using System.Globalization;

namespace LlmPress.Search;

/// <summary>
/// The total cost a non-uniform search may spend, from a target average: bits → target·Σnumel (the database's cost is
/// nominal bits·numel), sparsity → (1 − target)·Σnumel weights kept. Targets the levels cannot reach are refused with the
/// reachable range.
/// </summary>
public static class SearchBudget
{
    /// <summary>Σ rows·cols over the database's linears.</summary>
    public static double TotalWeights(LevelDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        double total = 0;
        foreach (var l in database.Linears) total += (double)l.Rows * l.Cols;
        return total;
    }

    /// <summary>The budget (in <see cref="LevelDatabase.Space"/> cost units) of <paramref name="target"/>.</summary>
    /// <param name="database">The level database.</param>
    /// <param name="kind">What the target is (must be the database's kind).</param>
    /// <param name="target">Average bits per weight, or the fraction of weights pruned.</param>
    /// <exception cref="ArgumentException">Another kind than the database's, or a target outside the reachable range (the
    /// message gives the range).</exception>
    public static double For(LevelDatabase database, LevelKind kind, double target)
    {
        ArgumentNullException.ThrowIfNull(database);
        string option = kind == LevelKind.Bits ? "--target-bits" : "--target-sparsity";
        if (kind != database.Kind)
            throw new ArgumentException($"{option}: the database holds {(database.Kind == LevelKind.Bits ? "bit" : "sparsity")} levels; "
                                        + $"use {(database.Kind == LevelKind.Bits ? "--target-bits" : "--target-sparsity")}.");
        double weights = TotalWeights(database);
        var (min, max) = database.Space.CostRange();
        // Relative slack 1e-9: a target typed as a level's exact value must count as reachable despite rounding.
        if (kind == LevelKind.Bits)
        {
            double lo = min / weights, hi = max / weights;
            if (!(target >= lo * (1 - 1e-9) && target <= hi * (1 + 1e-9)))
                throw new ArgumentException($"{option} {Text(target)}: the levels reach average bits from {Text(lo)} to {Text(hi)}.");
            return Math.Min(Math.Max(target * weights, min), max);
        }
        double sparsest = 1 - min / weights, densest = 1 - max / weights;
        if (!(target >= densest - 1e-9 && target <= sparsest + 1e-9))
            throw new ArgumentException($"{option} {Text(target)}: the levels reach sparsities from {Text(densest)} to {Text(sparsest)}.");
        return Math.Min(Math.Max((1 - target) * weights, min), max);
    }

    /// <summary>The uniform configuration (every linear at one level) whose cost equals <paramref name="budget"/>, else null.</summary>
    public static int[]? UniformAt(LevelDatabase database, double budget)
    {
        ArgumentNullException.ThrowIfNull(database);
        var levels = new int[database.Linears.Count];
        for (int j = 0; j < database.Levels.Count; j++)
        {
            Array.Fill(levels, j);
            double cost = database.Space.TotalCost(levels);
            if (Math.Abs(cost - budget) <= 1e-9 * Math.Max(cost, budget)) return levels;
        }
        return null;
    }

    private static string Text(double v) => v.ToString("0.####", CultureInfo.InvariantCulture);
}
