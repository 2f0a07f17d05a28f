namespace LlmPress.Search;

/// <summary>
/// The multiple-choice knapsack behind non-uniform compression: pick one option j(l) per layer l to minimise
/// Σ error[l][j(l)] subject to Σ cost[l][j(l)] ≤ budget — solved by dynamic programming over a budget axis of integer
/// units (EvoPress' dp_search, the linearity theorem's allocation).
/// </summary>
/// <remarks>
/// When every cost is an integer (bits·numel, kept weights), the unit is their greatest common divisor and the DP is
/// exact. Otherwise, or when that axis would exceed <c>maxUnits</c>, the unit is budget/maxUnits and each cost is
/// rounded UP to whole units, so the answer never exceeds the budget and is optimal for the rounded costs
/// (<see cref="KnapsackSolution.Exact"/> false): it can miss the true optimum only by choices within one unit per layer
/// of the budget. Time O(layers·units·options), memory O(layers·units) bytes for the choices.
/// </remarks>
public static class MultipleChoiceKnapsack
{
    /// <summary>Solves the problem.</summary>
    /// <param name="costs">Per layer, per option: a finite cost ≥ 0.</param>
    /// <param name="errors">Per layer, per option: the error (finite; +∞ marks an option that may not be chosen).</param>
    /// <param name="budget">The largest allowed total cost.</param>
    /// <param name="maxUnits">Largest number of budget units (default 1,000,000).</param>
    /// <exception cref="ArgumentException">Shapes differ, a negative/NaN cost or NaN error, more than 255 options, or a
    /// budget below the cheapest allowed choice (the message gives that minimum).</exception>
    public static KnapsackSolution Solve(IReadOnlyList<double[]> costs, IReadOnlyList<double[]> errors, double budget, int maxUnits = 1_000_000)
    {
        ArgumentNullException.ThrowIfNull(costs);
        ArgumentNullException.ThrowIfNull(errors);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxUnits, 1);
        int layers = costs.Count;
        if (errors.Count != layers) throw new ArgumentException($"{layers} layers of costs but {errors.Count} of errors.", nameof(errors));
        if (!double.IsFinite(budget) || budget < 0) throw new ArgumentException($"The budget must be finite and ≥ 0, not {budget}.", nameof(budget));
        double minimum = 0;
        for (int l = 0; l < layers; l++)
        {
            if (costs[l].Length != errors[l].Length || costs[l].Length == 0)
                throw new ArgumentException($"Layer {l} has {costs[l].Length} costs and {errors[l].Length} errors; both need the same, non-zero count.");
            if (costs[l].Length > byte.MaxValue) throw new ArgumentException($"Layer {l} has {costs[l].Length} options; at most 255 are supported.");
            double cheapest = double.PositiveInfinity;
            for (int j = 0; j < costs[l].Length; j++)
            {
                double c = costs[l][j], e = errors[l][j];
                if (!double.IsFinite(c) || c < 0) throw new ArgumentException($"Layer {l}, option {j}: cost {c} is not a finite value ≥ 0.", nameof(costs));
                if (double.IsNaN(e) || e == double.NegativeInfinity) throw new ArgumentException($"Layer {l}, option {j}: error {e} is not a number or +∞.", nameof(errors));
                if (e != double.PositiveInfinity) cheapest = Math.Min(cheapest, c);
            }
            if (double.IsPositiveInfinity(cheapest)) throw new ArgumentException($"Layer {l} has no option with a finite error.", nameof(errors));
            minimum += cheapest;
        }
        if (minimum > budget * (1 + 1e-12))
            throw new ArgumentException($"The budget {budget:G6} is below the cheapest possible choice, {minimum:G6}.", nameof(budget));

        var (unit, exact) = ChooseUnit(costs, budget, maxUnits);
        int units = (int)Math.Min(maxUnits, Math.Floor(budget / unit + 1e-9));
        var unitCosts = new int[layers][];
        for (int l = 0; l < layers; l++)
        {
            unitCosts[l] = new int[costs[l].Length];
            for (int j = 0; j < costs[l].Length; j++)
            {
                double u = costs[l][j] / unit;
                // Exact units are integers up to rounding noise; otherwise round up so the budget holds.
                unitCosts[l][j] = exact ? (int)Math.Min(int.MaxValue, Math.Round(u)) : (int)Math.Min(int.MaxValue, Math.Ceiling(u - 1e-9));
            }
        }

        // best[b] = least error of the layers so far with total units exactly ≤ b; choice[l][b] = option of layer l.
        var best = new double[units + 1];
        var next = new double[units + 1];
        var choice = new byte[layers][];
        for (int l = 0; l < layers; l++)
        {
            var c = unitCosts[l];
            var e = errors[l];
            var pick = choice[l] = new byte[units + 1];
            for (int b = 0; b <= units; b++)
            {
                double value = double.PositiveInfinity;
                byte chosen = 0;
                for (int j = 0; j < c.Length; j++)
                {
                    if (c[j] > b || double.IsPositiveInfinity(e[j])) continue;
                    double v = best[b - c[j]] + e[j];
                    if (v < value) { value = v; chosen = (byte)j; }
                }
                next[b] = value;
                pick[b] = chosen;
            }
            (best, next) = (next, best);
        }
        if (double.IsPositiveInfinity(best[units]))
            throw new ArgumentException($"The budget {budget:G6} cannot be met once costs are rounded up to units of {unit:G6}; raise the budget slightly or maxUnits.", nameof(budget));

        var choices = new int[layers];
        double cost = 0, error = 0;
        for (int l = layers - 1, b = units; l >= 0; l--)
        {
            int j = choice[l][b];
            choices[l] = j;
            b -= unitCosts[l][j];
            cost += costs[l][j];
            error += errors[l][j];
        }
        return new KnapsackSolution(choices, cost, error, unit, exact);
    }

    // The GCD of integer costs when the budget axis stays within maxUnits; otherwise budget/maxUnits (rounded costs).
    private static (double Unit, bool Exact) ChooseUnit(IReadOnlyList<double[]> costs, double budget, int maxUnits)
    {
        long gcd = 0;
        bool integers = true;
        foreach (var layer in costs)
            foreach (double c in layer)
            {
                if (c != Math.Floor(c) || c > long.MaxValue / 2) { integers = false; break; }
                gcd = Gcd(gcd, (long)c);
            }
        if (integers && gcd > 0 && budget / gcd <= maxUnits) return (gcd, true);
        if (integers && gcd == 0) return (1, true); // every cost is 0
        return (Math.Max(budget / maxUnits, double.Epsilon), false);
    }

    private static long Gcd(long a, long b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }
}

/// <summary>The knapsack's answer.</summary>
/// <param name="Choices">Option chosen per layer.</param>
/// <param name="Cost">Σ cost of the choices (original, unrounded costs).</param>
/// <param name="Error">Σ error of the choices.</param>
/// <param name="Unit">The budget unit the DP ran on.</param>
/// <param name="Exact">True when no cost was rounded (the answer is the exact optimum).</param>
public sealed record KnapsackSolution(int[] Choices, double Cost, double Error, double Unit, bool Exact);
