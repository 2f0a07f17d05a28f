using LlmPress.Search;

namespace LlmPress.Tests.Search;

public class EvoPressSearchTests
{
    private static readonly int[] Bits = [2, 3, 4, 5, 6];

    // 12 layers in two sizes; error of layer l at b bits = α_l·4^−b (a separable objective whose exact optimum the DP knows).
    private static (LevelSpace Space, double[][] Errors, double Numel) Problem(int seed)
    {
        var rng = new Random(seed);
        int layers = 12;
        var costs = new double[layers][];
        var errors = new double[layers][];
        double numel = 0;
        for (int l = 0; l < layers; l++)
        {
            int n = l % 3 == 0 ? 3 * 64 : 64;
            double alpha = Math.Exp(rng.NextDouble() * 4);
            costs[l] = Bits.Select(b => (double)b * n).ToArray();
            errors[l] = Bits.Select(b => alpha * Math.Pow(4, -b)).ToArray();
            numel += n;
        }
        return (new LevelSpace(Enumerable.Range(0, layers).Select(l => $"layer{l}").ToArray(), costs), errors, numel);
    }

    private static EvoPressSearch.Fitness Separable(double[][] errors) => (levels, windows) =>
    {
        double sum = 0;
        for (int l = 0; l < levels.Length; l++) sum += errors[l][levels[l]];
        return sum;
    };

    [Fact]
    public void Mutation_KeepsTheCostExactly_AndTradesAcrossSizes()
    {
        var (space, _, _) = Problem(1);
        var rng = new Random(3);
        var levels = Enumerable.Repeat(2, space.LayerCount).ToArray();
        double cost = space.TotalCost(levels);
        int acrossSizes = 0;
        for (int i = 0; i < 500; i++)
        {
            var child = EvoPressSearch.Mutate(space, levels, 3, rng);
            Assert.NotNull(child);
            Assert.Equal(cost, space.TotalCost(child), 9);
            int ups = child.Zip(levels, (a, b) => Math.Max(0, a - b)).Sum(), downs = child.Zip(levels, (a, b) => Math.Max(0, b - a)).Sum();
            Assert.True(ups + downs <= 30, $"{ups + downs} level steps"); // ≤ 3 exchanges of ≤ 10 layers, one step each
            acrossSizes += ups != downs ? 1 : 0; // a 192-weight layer traded for three 64-weight ones
            levels = child;
        }
        Assert.True(acrossSizes > 20, $"{acrossSizes} of 500 mutations traded across sizes");
    }

    [Fact]
    public void Search_ImprovesOnUniformAndApproachesTheExactOptimum()
    {
        var (space, errors, numel) = Problem(2);
        double budget = 3 * numel; // 3 bits on average
        var uniform = Enumerable.Repeat(1, space.LayerCount).ToArray();
        var optimum = MultipleChoiceKnapsack.Solve(space.Costs(), errors, budget);
        var options = new EvoPressOptions { Generations = 60, Offspring = 8, SurvivorsPerStage = [2, 1], WindowsPerStage = [1, 1], Seed = 5 };
        var result = EvoPressSearch.Run(space, budget, Separable(errors), 4, options, start: uniform, cancel: TestContext.Current.CancellationToken);

        double start = Separable(errors)(uniform, [0]);
        Assert.Equal(start, result.History[0]);
        Assert.Equal(61, result.History.Count);
        for (int g = 1; g < result.History.Count; g++) Assert.True(result.History[g] <= result.History[g - 1]); // elitism, fixed objective
        Assert.Equal(budget, space.TotalCost(result.Parent), 9);
        Assert.True(result.ParentFitness < 0.8 * start, $"{result.ParentFitness} vs uniform {start}");
        Assert.True(result.ParentFitness <= optimum.Error * 1.05, $"{result.ParentFitness} vs optimum {optimum.Error}");
    }

    [Fact]
    public void RandomStart_FitsTheBudget_AndLeavesLessThanOneStepUnused()
    {
        var (space, errors, numel) = Problem(4);
        foreach (double bits in new[] { 2.3, 2.9, 3.5, 4.75 })
        {
            double budget = bits * numel;
            var options = new EvoPressOptions { Generations = 0, Offspring = 4, SurvivorsPerStage = [1], WindowsPerStage = [1], InitialCandidates = 6, Seed = 2 };
            var start = EvoPressSearch.Run(space, budget, Separable(errors), 1, options, cancel: TestContext.Current.CancellationToken).Parent;
            double cost = space.TotalCost(start);
            Assert.True(cost <= budget, $"{bits} bits: cost {cost} over {budget}");
            // No layer can go one level up within the budget (the smallest step is one level of a 64-weight layer).
            for (int l = 0; l < start.Length; l++)
                if (start[l] + 1 < space.LevelCount(l)) Assert.True(cost + space.Cost(l, start[l] + 1) - space.Cost(l, start[l]) > budget);
        }
    }

    [Fact]
    public void ResumedRun_EqualsAnUninterruptedOne()
    {
        var (space, errors, numel) = Problem(3);
        // A window-dependent fitness, so the sampled windows matter too.
        EvoPressSearch.Fitness fitness = (levels, windows) =>
        {
            double sum = Separable(errors)(levels, windows), w = 0;
            foreach (int i in windows) w += i;
            return sum * (1 + 0.01 * w);
        };
        var options = new EvoPressOptions { Generations = 12, Offspring = 6, SurvivorsPerStage = [3, 1], WindowsPerStage = [2, 4], Seed = 11 };
        var full = EvoPressSearch.Run(space, 2.6 * numel, fitness, 6, options, cancel: TestContext.Current.CancellationToken);
        var saved = new List<EvoPressState>();
        var partial = EvoPressSearch.Run(space, 2.6 * numel, fitness, 6, options with { Generations = 5 }, generationDone: saved.Add, cancel: TestContext.Current.CancellationToken);
        Assert.Equal(6, saved.Count);
        var resumed = EvoPressSearch.Run(space, 2.6 * numel, fitness, 6, options, resume: partial, cancel: TestContext.Current.CancellationToken);
        Assert.Equal(full.Parent, resumed.Parent);
        Assert.Equal(full.History, resumed.History);
        Assert.True(space.TotalCost(full.Parent) <= 2.6 * numel);
    }

    [Fact]
    public void BadBudgetsAndStatesAreRefused()
    {
        var (space, errors, numel) = Problem(4);
        var options = new EvoPressOptions { Generations = 1 };
        var e = Assert.Throws<ArgumentException>(() => EvoPressSearch.Run(space, 1.5 * numel, Separable(errors), 8, options, cancel: TestContext.Current.CancellationToken));
        Assert.Contains("below the cheapest", e.Message);
        var over = Enumerable.Repeat(4, space.LayerCount).ToArray();
        Assert.Throws<ArgumentException>(() => EvoPressSearch.Run(space, 3 * numel, Separable(errors), 8, options, start: over, cancel: TestContext.Current.CancellationToken));
        var foreign = new EvoPressState(1, [0, 1], 0, [0.0]);
        Assert.Throws<ArgumentException>(() => EvoPressSearch.Run(space, 3 * numel, Separable(errors), 8, options, resume: foreign, cancel: TestContext.Current.CancellationToken));
        Assert.Throws<ArgumentException>(() => EvoPressSearch.Run(space, 3 * numel, Separable(errors), 1, options, cancel: TestContext.Current.CancellationToken)); // stage needs 8 windows
    }
}
