using LlmPress.Evaluation;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Search;

namespace LlmPress.Tests.Search;

public class KlDivergenceFitnessTests
{
    private static readonly ModelConfig s_tiny = RandomModel.SmolLM2Shape with
    {
        HiddenSize = 32, IntermediateSize = 48, LayerCount = 2, HeadCount = 4, KvHeadCount = 2, HeadDim = 8, VocabSize = 300,
    };

    private static int[][] Windows(int count, int length, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, length).Select(_ => rng.Next(s_tiny.VocabSize)).ToArray()).ToArray();
    }

    [Fact]
    public void AModelAgainstItselfScoresZero()
    {
        using var model = RandomModel.Create(s_tiny, DType.F32, seed: 2);
        var fitness = new KlDivergenceFitness(model, Windows(3, 40, 1));
        Assert.Equal(0, fitness.Evaluate(model, [0, 1, 2]), 12);
        var top = new KlDivergenceFitness(model, Windows(3, 40, 1), topK: 10);
        Assert.InRange(top.Evaluate(model, [2]), -1e-7, 1e-7); // float log-probs: rest bucket rounding only
    }

    [Fact]
    public void FullKlEqualsTheEvaluatorsMeanKl()
    {
        using var model = RandomModel.Create(s_tiny, DType.F32, seed: 3);
        using var baseModel = RandomModel.Create(s_tiny, DType.F32, seed: 4);
        var windows = Windows(4, 50, 7);
        var fitness = new KlDivergenceFitness(baseModel, windows);
        double kl = fitness.Evaluate(model, [0, 1, 2, 3]);
        // The evaluator scores the same positions (all but each window's last) of the concatenated windows.
        var comparison = DistributionComparison.Evaluate(model, baseModel, windows.SelectMany(w => w).ToArray(), 50);
        Assert.True(kl > 0.01);
        Assert.Equal(comparison.MeanKlDivergence, kl, 1e-5 * kl); // both sum in double from FP32 log-probs
        // A subset is the mean over that subset's windows.
        double first = fitness.Evaluate(model, [0]), rest = fitness.Evaluate(model, [1, 2, 3]);
        Assert.Equal(kl, (first + 3 * rest) / 4, 1e-9);
    }

    [Fact]
    public void TopKIsALowerBoundThatTightensWithK()
    {
        using var model = RandomModel.Create(s_tiny, DType.F32, seed: 5);
        using var baseModel = RandomModel.Create(s_tiny, DType.F32, seed: 6);
        var windows = Windows(2, 30, 3);
        double full = new KlDivergenceFitness(baseModel, windows).Evaluate(model, [0, 1]);
        double previous = 0;
        foreach (int k in new[] { 1, 10, 100, 299 })
        {
            double top = new KlDivergenceFitness(baseModel, windows, k).Evaluate(model, [0, 1]);
            // ≤ full up to rounding: the rest buckets are 1 − Σ of FP32-stored probabilities (measured slack 2e-6 relative).
            Assert.True(top <= full * (1 + 1e-5), $"top-{k} {top} > full {full}");
            Assert.True(top >= previous - 1e-6, $"top-{k} {top} < smaller K {previous}");
            previous = top;
        }
        Assert.Equal(full, new KlDivergenceFitness(baseModel, windows, 300).Evaluate(model, [0, 1]), 12); // K = vocabulary: full
    }

    [Fact]
    public void BadArgumentsAreRefused()
    {
        using var model = RandomModel.Create(s_tiny, DType.F32, seed: 2);
        Assert.Throws<ArgumentException>(() => new KlDivergenceFitness(model, []));
        Assert.Throws<ArgumentException>(() => new KlDivergenceFitness(model, [[1, 2, 3], [1, 2]]));
        Assert.Throws<ArgumentException>(() => new KlDivergenceFitness(model, [[1, 2]], topK: 0));
        var fitness = new KlDivergenceFitness(model, [[1, 2, 3]]);
        Assert.Throws<ArgumentException>(() => fitness.Evaluate(model, [1]));
        Assert.Throws<ArgumentException>(() => fitness.Evaluate(model, []));
    }
}
