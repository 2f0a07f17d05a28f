using LlmPress.Evaluation;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Tests.Evaluation;

public class DistributionComparisonTests
{
    private static readonly ModelConfig s_tiny = RandomModel.SmolLM2Shape with
    {
        HiddenSize = 32, IntermediateSize = 48, LayerCount = 2, HeadCount = 4, KvHeadCount = 2, HeadDim = 8, VocabSize = 300,
    };

    private static int[] Tokens(int count, int seed)
    {
        var rng = new Random(seed);
        var tokens = new int[count];
        for (int i = 0; i < count; i++) tokens[i] = rng.Next(s_tiny.VocabSize);
        return tokens;
    }

    [Fact]
    public void AModelAgainstItselfHasZeroDivergence()
    {
        using var model = RandomModel.Create(s_tiny, DType.F32, seed: 2);
        var tokens = Tokens(2 * 100, 5);
        var c = DistributionComparison.Evaluate(model, model, tokens, 100);
        Assert.InRange(c.MeanKlDivergence, 0, 1e-6);
        Assert.Equal(1.0, c.Top1Agreement);
        Assert.Equal(c.Base.Perplexity, c.Model.Perplexity);
        Assert.Equal(PerplexityEvaluator.Evaluate(model, tokens, 100).Perplexity, c.Model.Perplexity, 1e-4 * c.Model.Perplexity);
    }

    [Fact]
    public void KlMatchesDirectComputation()
    {
        // Two different random models: their next-token distributions differ, so the KL is clearly positive.
        using var model = RandomModel.Create(s_tiny, DType.F32, seed: 3);
        using var baseModel = RandomModel.Create(s_tiny, DType.F32, seed: 4);
        var tokens = Tokens(60, 9);
        var c = DistributionComparison.Evaluate(model, baseModel, tokens, 60);

        var q = model.Forward(tokens);
        var p = baseModel.Forward(tokens);
        int vocab = s_tiny.VocabSize;
        double klSum = 0, klMax = 0;
        int agree = 0;
        for (int t = 0; t < 59; t++)
        {
            double[] lq = LogSoftmax(q.AsSpan(t * vocab, vocab)), lp = LogSoftmax(p.AsSpan(t * vocab, vocab));
            double kl = 0;
            int argQ = 0, argP = 0;
            for (int v = 0; v < vocab; v++)
            {
                kl += Math.Exp(lp[v]) * (lp[v] - lq[v]);
                if (lq[v] > lq[argQ]) argQ = v;
                if (lp[v] > lp[argP]) argP = v;
            }
            klSum += kl;
            klMax = Math.Max(klMax, kl);
            if (argQ == argP) agree++;
        }
        Assert.True(klSum > 0);
        Assert.Equal(klSum / 59, c.MeanKlDivergence, 1e-4 * klSum / 59 + 1e-9);
        Assert.Equal(klMax, c.MaxKlDivergence, 1e-4 * klMax + 1e-9);
        Assert.Equal(agree / 59.0, c.Top1Agreement, 1e-12);
    }

    [Fact]
    public void DifferentVocabulariesAreRejected()
    {
        using var a = RandomModel.Create(s_tiny, DType.F32);
        using var b = RandomModel.Create(s_tiny with { VocabSize = 301 }, DType.F32);
        var e = Assert.Throws<ArgumentException>(() => DistributionComparison.Evaluate(a, b, Tokens(100, 1), 50));
        Assert.Contains("different vocabularies", e.Message);
    }

    private static double[] LogSoftmax(ReadOnlySpan<float> x)
    {
        double max = double.NegativeInfinity;
        foreach (var v in x) max = Math.Max(max, v);
        double sum = 0;
        foreach (var v in x) sum += Math.Exp(v - max);
        var result = new double[x.Length];
        for (int i = 0; i < x.Length; i++) result[i] = x[i] - max - Math.Log(sum);
        return result;
    }
}
