using System.Text.Json;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Tests.Models;

/// <summary>
/// Depth pruning in the forward pass: a skipped sub-block leaves the residual stream exactly as it was (compared with a
/// reference that computes the block and throws its output away), decoding with a KV cache past a skipped attention
/// agrees with the full-sequence forward, and config.json's llmpress_dropped_blocks sets the skips (bad entries are
/// named errors).
/// </summary>
public class DecoderLayerSkipTests
{
    private static readonly ModelConfig Config = new()
    {
        ModelType = "llama", HiddenSize = 32, IntermediateSize = 48, LayerCount = 3, HeadCount = 4, KvHeadCount = 2, HeadDim = 8,
        VocabSize = 61, MaxPositions = 64, RmsNormEps = 1e-5,
    };

    private static readonly int[] Tokens = [1, 17, 5, 42, 8, 8, 33, 60, 2, 11, 29, 3];

    // Reference: every stage runs; a skipped sub-block's result is computed and then discarded (hidden restored).
    private static float[] ReferenceHidden(LlamaModel model, bool[] skipAttention, bool[] skipMlp)
    {
        int n = Tokens.Length, m = n * model.Config.HiddenSize;
        var scratch = new ForwardScratch(model.Config);
        scratch.EnsureCapacity(n);
        model.Embed(Tokens, scratch.Hidden.AsSpan(0, m));
        var saved = new float[m];
        for (int l = 0; l < model.Layers.Count; l++)
        {
            var layer = model.Layers[l];
            scratch.Hidden.AsSpan(0, m).CopyTo(saved);
            layer.NormalizeAttentionInput(n, scratch);
            layer.Attend(n, 0, scratch);
            layer.ProjectAttentionOutput(n, scratch);
            if (skipAttention[l]) saved.CopyTo(scratch.Hidden.AsSpan(0, m));
            scratch.Hidden.AsSpan(0, m).CopyTo(saved);
            layer.NormalizeMlpInput(n, scratch);
            layer.ActivateMlp(n, scratch);
            layer.ProjectMlpOutput(n, scratch);
            if (skipMlp[l]) saved.CopyTo(scratch.Hidden.AsSpan(0, m));
        }
        return scratch.Hidden.AsSpan(0, m).ToArray();
    }

    [Theory]
    [InlineData(new[] { false, false, false }, new[] { false, false, false })]
    [InlineData(new[] { false, true, false }, new[] { false, false, false })]
    [InlineData(new[] { false, false, false }, new[] { true, false, false })]
    [InlineData(new[] { true, false, true }, new[] { false, true, true })]
    [InlineData(new[] { true, true, true }, new[] { true, true, true })]
    public void Skip_IsBitIdenticalToComputingTheBlockAndDiscardingIt(bool[] skipAttention, bool[] skipMlp)
    {
        var model = RandomModel.Create(Config, DType.F32, seed: 3);
        var expected = ReferenceHidden(model, skipAttention, skipMlp);
        for (int l = 0; l < model.Layers.Count; l++)
        {
            model.Layers[l].SkipAttention = skipAttention[l];
            model.Layers[l].SkipMlp = skipMlp[l];
        }
        var scratch = new ForwardScratch(model.Config);
        int n = Tokens.Length, m = n * model.Config.HiddenSize;
        scratch.EnsureCapacity(n);
        model.Embed(Tokens, scratch.Hidden.AsSpan(0, m));
        foreach (var layer in model.Layers) layer.Forward(n, 0, scratch);
        Assert.Equal(expected, scratch.Hidden.AsSpan(0, m).ToArray()); // exact: the same stages in the same order
    }

    [Fact]
    public void Decode_WithKvCacheAndSkippedAttention_MatchesTheFullSequenceForward()
    {
        var model = RandomModel.Create(Config, DType.F32, seed: 5);
        var dense = model.Forward(Tokens);
        model.Layers[1].SkipAttention = true;
        model.Layers[2].SkipMlp = true;
        var full = model.Forward(Tokens);
        int vocab = Config.VocabSize, d = Config.HiddenSize;
        var cache = new KvCache(model.Config, Tokens.Length);
        var scratch = new ForwardScratch(model.Config);
        var decoded = new float[full.Length];
        var normed = model.ForwardHidden(Tokens.AsSpan(0, 4), scratch, cache);
        model.ComputeLogits(normed, 4, decoded);
        for (int t = 4; t < Tokens.Length; t++)
        {
            normed = model.ForwardHidden(Tokens.AsSpan(t, 1), scratch, cache);
            model.ComputeLogits(normed[..d], 1, decoded.AsSpan(t * vocab, vocab));
        }
        // The skipped attention wrote nothing to its cache slots (they stay as allocated: zeros); the others were filled.
        Assert.All(cache.Keys(1).ToArray(), v => Assert.Equal(0f, v));
        Assert.Contains(cache.Keys(0).ToArray(), v => v != 0);
        // Prefill and decode sum attention in different orders (as GoldenLogitsTests, 1e-4 of the largest logit).
        float max = 0, diff = 0, moved = 0;
        for (int i = 0; i < full.Length; i++)
        {
            max = Math.Max(max, Math.Abs(full[i]));
            diff = Math.Max(diff, Math.Abs(full[i] - decoded[i]));
            moved = Math.Max(moved, Math.Abs(full[i] - dense[i]));
        }
        Assert.True(diff <= 1e-4f * max, $"decode vs full: max |Δ| {diff}, max |logit| {max}");
        Assert.True(moved > 100 * diff, $"the skips must change the logits: {moved} vs {diff}"); // the test sees the skips
    }

    private static ModelConfig Parse(string dropped) => ModelConfig.Parse(JsonDocument.Parse($$"""
        {"model_type": "llama", "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4,
         "vocab_size": 61, "llmpress_dropped_blocks": {{dropped}}}
        """).RootElement, "config.json");

    [Fact]
    public void Config_DroppedBlocks_SetTheLayersSkips()
    {
        var config = Parse("""[{"layer": 0, "block": "mlp"}, {"layer": 2, "block": "self_attn"}]""");
        Assert.Equal([new DroppedBlock(0, DecoderBlock.Mlp), new DroppedBlock(2, DecoderBlock.SelfAttention)], config.DroppedBlocks);
        var model = RandomModel.Create(config, DType.F32);
        Assert.Equal([false, false, true], model.Layers.Select(l => l.SkipAttention));
        Assert.Equal([true, false, false], model.Layers.Select(l => l.SkipMlp));
        Assert.Empty(Parse("null").DroppedBlocks);
    }

    [Theory]
    [InlineData("""[{"layer": 3, "block": "mlp"}]""", "names layer 3, but the model has 3")]
    [InlineData("""[{"layer": 0, "block": "attention"}]""", "neither self_attn nor mlp")]
    [InlineData("""[{"block": "mlp"}]""", "has no layer")]
    [InlineData("""{"layer": 0}""", "must be a list")]
    public void Config_BadDroppedBlocks_AreNamedErrors(string dropped, string message)
    {
        var e = Assert.Throws<InvalidDataException>(() => Parse(dropped));
        Assert.Contains("llmpress_dropped_blocks", e.Message);
        Assert.Contains(message, e.Message);
    }
}
