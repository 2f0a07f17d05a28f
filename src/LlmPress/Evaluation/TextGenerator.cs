using System.Diagnostics;
using LlmPress.Models;
using LlmPress.Tokenization;

namespace LlmPress.Evaluation;

/// <param name="MaxTokens">New tokens to generate at most.</param>
/// <param name="Temperature">0 = greedy.</param>
/// <param name="TopP">Nucleus mass; 1 = off.</param>
/// <param name="Seed">Sampling seed.</param>
/// <param name="StopAtEos">Stop when the model emits an end-of-sequence token.</param>
/// <param name="KvCacheType">How the KV cache stores keys and values: F32 (default) or BF16 (half the memory and cache traffic).</param>
public sealed record GenerationOptions(int MaxTokens = 256, float Temperature = 0, float TopP = 1, int Seed = 0, bool StopAtEos = true,
    Numerics.DType KvCacheType = Numerics.DType.F32);

/// <summary>One generated token and the text it completed (may be empty while a multi-byte character is pending).</summary>
public readonly record struct GeneratedToken(int Id, string Text);

/// <summary>Timing of a finished generation.</summary>
public sealed record GenerationStats(int PromptTokens, int GeneratedTokens, double PrefillSeconds, double DecodeSeconds)
{
    /// <summary>Decode speed, counting tokens after the first (the first comes out of the prefill).</summary>
    public double DecodeTokensPerSecond => DecodeSeconds > 0 ? Math.Max(0, GeneratedTokens - 1) / DecodeSeconds : 0;
    public double PrefillTokensPerSecond => PrefillSeconds > 0 ? PromptTokens / PrefillSeconds : 0;
}

/// <summary>
/// Autoregressive generation with a KV cache: the prompt (BOS + encoded text) is prefilled as one matrix pass,
/// then one token per step.
/// </summary>
public sealed class TextGenerator(LlamaModel model, Tokenizer tokenizer)
{
    public GenerationStats? LastStats { get; private set; }

    /// <summary>The prompt's token ids: the model's BOS (when it has one) followed by the encoded text.</summary>
    public int[] EncodePrompt(string prompt)
    {
        int? bos = model.Config.BosTokenId ?? tokenizer.BosTokenId;
        var ids = tokenizer.Encode(prompt);
        return bos is { } b ? [b, .. ids] : ids;
    }

    /// <summary>Streams generated tokens; <see cref="LastStats"/> is set when the enumeration completes.</summary>
    public IEnumerable<GeneratedToken> Generate(string prompt, GenerationOptions options)
        => Generate(EncodePrompt(prompt), options);

    /// <summary>
    /// Streams tokens continuing <paramref name="promptIds"/> exactly as given (no BOS added), for prompts that
    /// already hold their special tokens, such as a rendered chat template.
    /// </summary>
    public IEnumerable<GeneratedToken> Generate(int[] promptIds, GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        if (promptIds.Length == 0)
            throw new ArgumentException("The prompt is empty and the model has no BOS token to start from.");
        int capacity = Math.Min(model.Config.MaxPositions, promptIds.Length + options.MaxTokens);
        if (promptIds.Length >= capacity && options.MaxTokens > 0)
            throw new ArgumentException($"The prompt has {promptIds.Length} tokens; the model's context is {model.Config.MaxPositions}.");
        return Run(promptIds, capacity, options);
    }

    private IEnumerable<GeneratedToken> Run(int[] promptIds, int capacity, GenerationOptions options)
    {
        var config = model.Config;
        var eos = new HashSet<int>(config.EosTokenIds);
        if (tokenizer.EosTokenId is { } e) eos.Add(e);
        var sampler = new Sampler(options.Temperature, options.TopP, options.Seed);
        var cache = new KvCache(config, capacity, options.KvCacheType);
        var scratch = new ForwardScratch(config);
        var logits = new float[config.VocabSize];
        var decoder = tokenizer.CreateStreamDecoder();
        var clock = Stopwatch.StartNew();
        double prefillSeconds = 0;
        int generated = 0;
        int[] step = promptIds;
        int[] single = new int[1];
        while (generated < options.MaxTokens && cache.Length + step.Length <= capacity)
        {
            var normed = model.ForwardHidden(step, scratch, cache);
            int d = config.HiddenSize;
            model.ComputeLogits(normed.Slice((step.Length - 1) * d, d), 1, logits);
            if (generated == 0)
            {
                prefillSeconds = clock.Elapsed.TotalSeconds;
                clock.Restart();
            }
            int next = sampler.Sample(logits);
            generated++;
            if (options.StopAtEos && eos.Contains(next)) break;
            yield return new GeneratedToken(next, decoder.Append(next));
            single[0] = next;
            step = single;
        }
        string rest = decoder.Flush();
        if (rest.Length > 0) yield return new GeneratedToken(-1, rest);
        LastStats = new GenerationStats(promptIds.Length, generated, prefillSeconds, clock.Elapsed.TotalSeconds);
    }
}
