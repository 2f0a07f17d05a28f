using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Search;

namespace LlmPress.Tests.Search;

/// <summary>
/// The depth searches: the dp selection is the exact optimum (checked by brute force and against the multiple-choice
/// knapsack), EvoPress' swaps keep exactly K units dropped in every candidate and its result never worse than its start,
/// the single-drop measurements agree with the independent KL and perplexity evaluators, and K out of range is refused.
/// </summary>
public class DepthSearchTests
{
    private static readonly ModelConfig Config = new()
    {
        ModelType = "llama", HiddenSize = 32, IntermediateSize = 48, LayerCount = 4, HeadCount = 4, KvHeadCount = 2, HeadDim = 8,
        VocabSize = 61, MaxPositions = 64, RmsNormEps = 1e-5,
    };

    private static List<int[]> Windows(int count, int length, int seed)
    {
        var rng = new Random(seed);
        var windows = new List<int[]>();
        for (int w = 0; w < count; w++) windows.Add([.. Enumerable.Range(0, length).Select(_ => rng.Next(Config.VocabSize))]);
        return windows;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(8)]
    public void DropSmallest_IsTheExactOptimum_ByBruteForceAndByTheKnapsack(int k)
    {
        var rng = new Random(k + 11);
        var increase = Enumerable.Range(0, 8).Select(_ => Math.Round(rng.NextDouble(), 3)).ToArray();
        var levels = DepthSearch.DropSmallest(increase, k);
        Assert.Equal(k, DepthUnits.DroppedCount(levels));
        double chosen = DepthSearch.Predict(0, increase, levels);

        // Brute force over every subset of exactly k.
        double best = double.PositiveInfinity;
        for (int mask = 0; mask < 1 << 8; mask++)
        {
            if (System.Numerics.BitOperations.PopCount((uint)mask) != k) continue;
            double sum = 0;
            for (int u = 0; u < 8; u++)
                if ((mask >> u & 1) != 0) sum += increase[u];
            best = Math.Min(best, sum);
        }
        Assert.Equal(best, chosen, 12);

        // The knapsack over {dropped: cost 0, kept: cost 1} with budget 8 − k (at least k dropped); a drop penalty
        // M > Σ increase makes it drop no more than it must, exactly k, so its optimum must have the same total.
        double penalty = 1 + increase.Sum();
        var costs = Enumerable.Range(0, 8).Select(_ => new double[] { 0, 1 }).ToArray();
        var errors = increase.Select(x => new[] { x + penalty, 0 }).ToArray();
        var knapsack = MultipleChoiceKnapsack.Solve(costs, errors, 8 - k);
        Assert.Equal(k, DepthUnits.DroppedCount(knapsack.Choices));
        Assert.Equal(best, DepthSearch.Predict(0, increase, knapsack.Choices), 9);
    }

    [Fact]
    public void DropSmallest_WithKZero_KeepsEverything_AndTiesGoToTheLowerUnit()
    {
        Assert.All(DepthSearch.DropSmallest([0.5, 0.1, 0.3], 0), level => Assert.Equal(DepthUnits.Kept, level));
        Assert.Equal([0, 1, 0, 1], DepthSearch.DropSmallest([0.2, 0.7, 0.2, 0.2], 2));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(9)]
    public void KOutOfRange_IsRefusedWithTheRange(int k)
    {
        var e = Assert.Throws<ArgumentException>(() => DepthUnits.Budget(4, k));
        Assert.Contains("drop 0 to 8", e.Message);
        Assert.Throws<ArgumentException>(() => DepthSearch.DropSmallest(new double[8], k));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(6)]
    public void EvoPress_EveryCandidateDropsExactlyK_AndTheResultIsNoWorseThanTheStart(int k)
    {
        using var model = RandomModel.Create(Config, DType.F32, seed: 9);
        var windows = Windows(4, 12, 1);
        var fitness = new KlDivergenceFitness(model, windows);
        var start = DepthUnits.Dropping(8, Enumerable.Range(0, k));
        int evaluations = 0;
        var state = DepthSearch.Evolve(4, k, (levels, w) =>
        {
            Assert.Equal(k, DepthUnits.DroppedCount(levels));
            evaluations++;
            DepthUnits.Apply(model, levels);
            return fitness.Evaluate(model, w);
        }, windows.Count, start, new EvoPressOptions { Generations = 6, Offspring = 6, WindowsPerStage = [2, 4], Seed = 2 },
            cancel: TestContext.Current.CancellationToken);
        DepthUnits.Restore(model);
        Assert.True(evaluations > 6 * 6, $"{evaluations} evaluations");
        Assert.Equal(k, DepthUnits.DroppedCount(state.Parent));
        for (int g = 2; g < state.History.Count; g++) Assert.True(state.History[g] <= state.History[g - 1]); // elitism on the same (all) windows
        DepthUnits.Apply(model, start);
        double startKl = fitness.Evaluate(model, [0, 1, 2, 3]);
        DepthUnits.Restore(model);
        Assert.True(state.ParentFitness <= startKl + 1e-12, $"{state.ParentFitness} > start {startKl}");
    }

    [Fact]
    public void Evolve_RefusesAStartThatDoesNotDropExactlyK()
    {
        var e = Assert.Throws<ArgumentException>(() => DepthSearch.Evolve(4, 2, (_, _) => 0, 4, DepthUnits.Dropping(8, [0]), new EvoPressOptions(),
            cancel: TestContext.Current.CancellationToken));
        Assert.Contains("exactly 2", e.Message);
    }

    [Fact]
    public void SingleDropMeasurements_AgreeWithTheKlAndPerplexityEvaluators()
    {
        using var model = RandomModel.Create(Config, DType.F32, seed: 4);
        var windows = Windows(3, 10, 7);
        var measured = DepthSensitivity.Measure(model, windows, cancel: TestContext.Current.CancellationToken);
        var reference = new KlDivergenceFitness(model, windows);
        // Perplexity: the measurement keeps log-probabilities in float32 (rounding ≤ 2⁻²⁴·|log p| per token), WindowScorer
        // folds the logits in double: 1e-6 relative. KL: both keep float32 log-probabilities from the same logits: 1e-9.
        Assert.Equal(WindowPerplexity.Evaluate(model, windows), measured.BasePerplexity, 1e-6 * measured.BasePerplexity);
        for (int u = 0; u < 8; u++)
        {
            var levels = DepthUnits.Dropping(8, [u]);
            DepthUnits.Apply(model, levels);
            Assert.Equal(reference.Evaluate(model, [0, 1, 2]), measured.DropKl[u], 1e-9 * Math.Max(1, measured.DropKl[u]));
            Assert.Equal(WindowPerplexity.Evaluate(model, windows), measured.DropPerplexity[u], 1e-6 * measured.DropPerplexity[u]);
            DepthUnits.Restore(model);
            Assert.True(measured.DropKl[u] > 0 && measured.RelativeUpdate[u] > 0);
        }
        Assert.All(model.Layers, l => Assert.False(l.SkipAttention || l.SkipMlp)); // restored
    }
}
