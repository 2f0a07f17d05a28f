using LlmPress.Evaluation;
using LlmPress.Models;

namespace LlmPress.Calibration;

/// <summary>
/// Calibration windows sampled from the model itself (temperature 1, each from a random first token), for models
/// without a tokenizer or text (e.g. random-weight test checkpoints), as data-free methods do (LLM-QAT generates its
/// training data from the model). On its own samples a compressed model's mean negative log-likelihood is the base
/// model's entropy plus the KL to it, so perplexity and KL rank configurations alike.
/// </summary>
public static class SelfGeneratedCalibration
{
    /// <summary>Samples <paramref name="count"/> windows of <paramref name="length"/> tokens.</summary>
    /// <param name="model">The (uncompressed) model to sample from.</param>
    /// <param name="count">Windows.</param>
    /// <param name="length">Tokens per window (at most the model's max positions).</param>
    /// <param name="seed">Seed of the first tokens and the sampling.</param>
    /// <exception cref="ArgumentException">Bad counts or a window longer than the model's context.</exception>
    public static CalibrationData Sample(LlamaModel model, int count, int length, int seed)
    {
        ArgumentNullException.ThrowIfNull(model);
        var config = model.Config;
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        if (length > config.MaxPositions) throw new ArgumentException($"Windows of {length} tokens exceed the model's context of {config.MaxPositions}.", nameof(length));
        var rng = new Random(seed);
        var sampler = new Sampler(temperature: 1, topP: 1, seed: seed);
        var logits = new float[config.VocabSize];
        var scratch = new ForwardScratch(config);
        var windows = new int[count][];
        int[] step = new int[1];
        for (int w = 0; w < count; w++)
        {
            windows[w] = new int[length];
            var cache = new KvCache(config, length);
            step[0] = rng.Next(config.VocabSize);
            for (int t = 0; t < length; t++)
            {
                windows[w][t] = step[0];
                if (t == length - 1) break;
                var normed = model.ForwardHidden(step, scratch, cache);
                model.ComputeLogits(normed[..config.HiddenSize], 1, logits);
                step[0] = sampler.Sample(logits);
            }
        }
        return CalibrationData.FromWindows(windows, $"{count} × {length} tokens sampled from the model (seed {seed})");
    }
}
