using LlmPress.Search;

namespace LlmPress.Tests.Search;

public class MultipleChoiceKnapsackTests
{
    // Exhaustive reference: every combination of options.
    private static (double Error, double Cost) BruteForce(double[][] costs, double[][] errors, double budget)
    {
        double bestError = double.PositiveInfinity, bestCost = 0;
        var pick = new int[costs.Length];
        while (true)
        {
            double c = 0, e = 0;
            for (int l = 0; l < costs.Length; l++) { c += costs[l][pick[l]]; e += errors[l][pick[l]]; }
            if (c <= budget && e < bestError) { bestError = e; bestCost = c; }
            int k = 0;
            while (k < costs.Length && ++pick[k] == costs[k].Length) pick[k++] = 0;
            if (k == costs.Length) return (bestError, bestCost);
        }
    }

    // Bits levels on layers of different sizes, errors falling with bits like 4^−bits with per-layer sensitivity.
    private static (double[][] Costs, double[][] Errors) BitsProblem(Random rng, int layers, int[] bits, bool fractional)
    {
        var costs = new double[layers][];
        var errors = new double[layers][];
        for (int l = 0; l < layers; l++)
        {
            int numel = 64 * rng.Next(1, 9);
            double alpha = rng.NextDouble() * 10 + 0.1;
            costs[l] = bits.Select(b => b * numel + (fractional ? rng.NextDouble() * 7 : 0)).ToArray();
            errors[l] = bits.Select(b => alpha * Math.Pow(4, -b) * (1 + 0.1 * rng.NextDouble())).ToArray();
        }
        return (costs, errors);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void IntegerCosts_MatchBruteForceExactly(int seed)
    {
        var rng = new Random(seed);
        var (costs, errors) = BitsProblem(rng, 6, [2, 3, 4, 5, 6], fractional: false);
        double total = costs.Sum(c => c[0] / 2); // numel per layer
        foreach (double avgBits in new[] { 2.0, 2.5, 3.0, 3.7, 5.2, 6.0 })
        {
            double budget = avgBits * total;
            var solution = MultipleChoiceKnapsack.Solve(costs, errors, budget);
            var (error, _) = BruteForce(costs, errors, budget);
            Assert.True(solution.Exact);
            Assert.True(solution.Cost <= budget);
            Assert.Equal(error, solution.Error, 12);
            Assert.Equal(solution.Error, solution.Choices.Select((j, l) => errors[l][j]).Sum(), 12);
        }
    }

    [Fact]
    public void FractionalCosts_NeverExceedTheBudgetAndApproachTheOptimum()
    {
        var rng = new Random(9);
        var (costs, errors) = BitsProblem(rng, 6, [2, 3, 4], fractional: true);
        double budget = costs.Sum(c => c[1]);
        var (optimum, _) = BruteForce(costs, errors, budget);
        var coarse = MultipleChoiceKnapsack.Solve(costs, errors, budget, maxUnits: 50);
        var fine = MultipleChoiceKnapsack.Solve(costs, errors, budget, maxUnits: 1_000_000);
        Assert.False(coarse.Exact);
        Assert.True(coarse.Cost <= budget && fine.Cost <= budget);
        Assert.True(coarse.Error >= optimum - 1e-12 && fine.Error >= optimum - 1e-12);
        // With a million units the rounding (≤ 6 units of budget/10⁶ in all) is far below the cost gaps here.
        Assert.Equal(optimum, fine.Error, 12);
    }

    [Fact]
    public void InfiniteErrorsAreNeverChosen()
    {
        double[][] costs = [[1, 2, 3], [1, 2, 3]];
        double[][] errors = [[double.PositiveInfinity, 5, 1], [9, 4, 0]];
        var s = MultipleChoiceKnapsack.Solve(costs, errors, 4);
        Assert.Equal([1, 1], s.Choices);
        Assert.Equal(9, s.Error);
    }

    [Fact]
    public void BudgetBelowTheCheapestChoiceSaysTheMinimum()
    {
        double[][] costs = [[2, 3], [4, 5]];
        double[][] errors = [[1, 0], [1, 0]];
        var e = Assert.Throws<ArgumentException>(() => MultipleChoiceKnapsack.Solve(costs, errors, 5.5));
        Assert.Contains("cheapest possible choice, 6", e.Message);
        Assert.Throws<ArgumentException>(() => MultipleChoiceKnapsack.Solve(costs, [[1, 0]], 10));
        Assert.Throws<ArgumentException>(() => MultipleChoiceKnapsack.Solve([[-1.0]], [[0.0]], 10));
        Assert.Throws<ArgumentException>(() => MultipleChoiceKnapsack.Solve([[1.0]], [[double.NaN]], 10));
    }
}
