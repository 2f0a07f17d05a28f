using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Tests.Calibration;

public class SelfGeneratedCalibrationTests
{
    private static LlamaModel Model() => RandomModel.Create(RandomModel.SmolLM2Shape with
    {
        HiddenSize = 32, IntermediateSize = 48, LayerCount = 2, HeadCount = 4, KvHeadCount = 2, HeadDim = 8, VocabSize = 40,
    }, DType.F32, seed: 3);

    [Fact]
    public void Windows_AreSeededAndShaped()
    {
        using var model = Model();
        var a = SelfGeneratedCalibration.Sample(model, 3, 17, seed: 5);
        var b = SelfGeneratedCalibration.Sample(model, 3, 17, seed: 5);
        var c = SelfGeneratedCalibration.Sample(model, 3, 17, seed: 6);
        Assert.Equal(3, a.SampleCount);
        Assert.Equal(17, a.SequenceLength);
        Assert.All(a.Samples, w => Assert.All(w, t => Assert.InRange(t, 0, 39)));
        Assert.Equal(a.Samples, b.Samples);
        Assert.NotEqual(a.Samples, c.Samples);
        Assert.Throws<ArgumentException>(() => SelfGeneratedCalibration.Sample(model, 1, model.Config.MaxPositions + 1, 0));
    }

    /// <summary>
    /// Samples drawn at temperature 1 from the model's next-token distribution have a mean negative log-likelihood
    /// equal in expectation to the mean entropy of those distributions; a sampler at another temperature, or tokens
    /// recorded one position off, breaks that by far more than the statistical error.
    /// </summary>
    [Fact]
    public void Samples_FollowTheModelsDistribution()
    {
        using var model = LlamaModel.Load(SharedData.Require("models", "stories260K")); // peaked distributions: temperature matters
        var data = SelfGeneratedCalibration.Sample(model, 24, 32, seed: 1);
        int vocab = model.Config.VocabSize;
        var differences = new List<double>();
        foreach (var window in data.Samples)
        {
            float[] logits = model.Forward(window); // [32, vocab]
            for (int t = 0; t + 1 < window.Length; t++)
            {
                var row = logits.AsSpan(t * vocab, vocab);
                double max = double.NegativeInfinity, sum = 0, entropy = 0;
                foreach (float v in row) max = Math.Max(max, v);
                foreach (float v in row) sum += Math.Exp(v - max);
                double logZ = max + Math.Log(sum);
                foreach (float v in row)
                {
                    double logp = v - logZ;
                    entropy -= Math.Exp(logp) * logp;
                }
                double nll = logZ - row[window[t + 1]];
                differences.Add(nll - entropy);
            }
        }
        double mean = differences.Average();
        double sd = Math.Sqrt(differences.Sum(d => (d - mean) * (d - mean)) / (differences.Count - 1));
        double standardError = sd / Math.Sqrt(differences.Count);
        Assert.True(Math.Abs(mean) < 4 * standardError, $"mean NLL − entropy {mean:0.0000} (standard error {standardError:0.0000})");
    }
}
