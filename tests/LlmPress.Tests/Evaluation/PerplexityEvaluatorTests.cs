using LlmPress.Evaluation;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Tests.Evaluation;

public class PerplexityEvaluatorTests
{
    private static readonly ModelConfig s_tiny = RandomModel.SmolLM2Shape with
    {
        HiddenSize = 32, IntermediateSize = 48, LayerCount = 2, HeadCount = 4, KvHeadCount = 2, HeadDim = 8, VocabSize = 300,
    };

    /// <summary>Independent path: full logits of the window, log-softmax in double.</summary>
    private static (double NllSum, int Count) Direct(LlamaModel model, int[] window, int firstRow)
    {
        var logits = model.Forward(window);
        int vocab = model.Config.VocabSize;
        double sum = 0;
        int count = 0;
        for (int t = firstRow; t < window.Length - 1; t++)
        {
            double max = double.NegativeInfinity;
            for (int v = 0; v < vocab; v++) max = Math.Max(max, logits[t * vocab + v]);
            double z = 0;
            for (int v = 0; v < vocab; v++) z += Math.Exp(logits[t * vocab + v] - max);
            sum += max + Math.Log(z) - logits[t * vocab + window[t + 1]];
            count++;
        }
        return (sum, count);
    }

    [Theory]
    [InlineData(PerplexityProtocol.Gptq)]
    [InlineData(PerplexityProtocol.LlamaCpp)]
    public void MatchesDirectComputation(PerplexityProtocol protocol)
    {
        using var model = RandomModel.Create(s_tiny, DType.F32, seed: 4);
        var rng = new Random(8);
        var tokens = new int[3 * 150 + 17]; // 3 windows of 150 and a dropped remainder
        for (int i = 0; i < tokens.Length; i++) tokens[i] = rng.Next(s_tiny.VocabSize);

        var result = PerplexityEvaluator.Evaluate(model, tokens, 150, protocol: protocol);

        double sum = 0;
        int count = 0;
        for (int w = 0; w < 3; w++)
        {
            var (s, c) = Direct(model, tokens[(w * 150)..((w + 1) * 150)], protocol == PerplexityProtocol.LlamaCpp ? 75 : 0);
            sum += s;
            count += c;
        }
        Assert.Equal(3, result.Windows);
        Assert.Equal(protocol == PerplexityProtocol.LlamaCpp ? 3 * 74 : 3 * 149, result.TokensScored);
        Assert.Equal(count, result.TokensScored);
        Assert.Equal(Math.Exp(sum / count), result.Perplexity, 1e-4 * result.Perplexity);
    }

    [Fact]
    public void MaxWindowsLimitsWork()
    {
        using var model = RandomModel.Create(s_tiny, DType.F32);
        var tokens = Enumerable.Range(0, 1000).Select(i => i % 300).ToArray();
        Assert.Equal(2, PerplexityEvaluator.Evaluate(model, tokens, 100, maxWindows: 2).Windows);
    }

    [Fact]
    public void TooFewTokensIsAClearError()
    {
        using var model = RandomModel.Create(s_tiny, DType.F32);
        var e = Assert.Throws<ArgumentException>(() => PerplexityEvaluator.Evaluate(model, new int[50], 100));
        Assert.Contains("fewer than one window of 100", e.Message);
    }

    [Fact]
    public void StoriesPerplexityOnTinyStoriesIsLow()
    {
        // A 260K-parameter model trained on TinyStories: in-domain perplexity is small (single digits to low tens).
        string dir = SharedData.Require("models", "stories260K");
        string text = File.ReadAllText(SharedData.Require("data", "tinystories", "tinystories-10k.txt"))[..20000];
        using var model = LlamaModel.Load(dir);
        var tokenizer = LlmPress.Tokenization.Tokenizer.Load(dir);
        int[] tokens = [1, .. tokenizer.Encode(text)];
        var result = PerplexityEvaluator.Evaluate(model, tokens, 256, maxWindows: 4);
        Assert.InRange(result.Perplexity, 1.5, 30);
    }
}
