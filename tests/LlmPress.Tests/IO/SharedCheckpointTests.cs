using System.Text.Json;
using LlmPress.IO;
using LlmPress.Numerics;

namespace LlmPress.Tests.IO;

/// <summary>Reads the real checkpoints in ../shared/models (skipped when shared/ is absent).</summary>
public sealed class SharedCheckpointTests
{
    public static TheoryData<string> Models => new() { "stories260K", "tiny-llama3", "tiny-qwen2", "tiny-mistral" };

    [Fact]
    public void Stories260KHasTheExpectedTensors()
    {
        string path = SharedData.Require("models", "stories260K", "model.safetensors");
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(2 + 5 * 9, file.Tensors.Count);
        Assert.All(file.Tensors, t => Assert.Equal(DType.F32, t.DType));

        Assert.True(file.TryGetTensor("model.embed_tokens.weight", out var embed));
        Assert.Equal([512L, 64], embed.Shape);
        Assert.Equal(512 * 64 * 4, embed.ByteLength);
        Assert.Equal(8 + 4880, embed.DataOffset); // first tensor, right after the 4880-byte header

        (string Name, long[] Shape)[] layer0 =
        [
            ("model.layers.0.input_layernorm.weight", [64]),
            ("model.layers.0.post_attention_layernorm.weight", [64]),
            ("model.layers.0.self_attn.q_proj.weight", [64, 64]),
            ("model.layers.0.self_attn.k_proj.weight", [32, 64]), // 4 kv heads × head_dim 8
            ("model.layers.0.self_attn.v_proj.weight", [32, 64]),
            ("model.layers.0.self_attn.o_proj.weight", [64, 64]),
            ("model.layers.0.mlp.gate_proj.weight", [172, 64]),
            ("model.layers.0.mlp.up_proj.weight", [172, 64]),
            ("model.layers.0.mlp.down_proj.weight", [64, 172]),
        ];
        foreach (var (name, shape) in layer0)
        {
            Assert.True(file.TryGetTensor(name, out var info), name);
            Assert.Equal(shape, info.Shape);
        }
        Assert.False(file.TryGetTensor("lm_head.weight", out _)); // tied embeddings

        // First values of the embedding, as read by an independent reader (Python struct).
        var first = new float[4];
        FloatConversion.ToSingle(DType.F32, file.GetData("model.embed_tokens.weight").Span, first);
        Assert.Equal([-0.29474878f, 0.5618956f, 0.17542253f, 0.3405736f], first);
    }

    [Fact]
    public void Stories260KThroughTheStore()
    {
        string directory = Path.GetDirectoryName(SharedData.Require("models", "stories260K", "model.safetensors"))!;
        using var store = TensorStore.Open(directory);
        Assert.Equal(directory, store.Path);
        Assert.Equal([Path.Combine(directory, "model.safetensors")], store.Files);
        Assert.Equal(47, store.Names.Count);
        Assert.Equal(new FileInfo(store.Files[0]).Length - 8 - 4880, store.TotalBytes);

        var embed = store.GetMatrix("model.embed_tokens.weight", 512, 64);
        Assert.Equal(DType.F32, embed.Type);
        Assert.Equal(-0.29474878f, embed.ToFloatArray()[0]);
        float[] norm = store.ReadFloats("model.norm.weight", 64);
        Assert.Equal(64, norm.Length);
        Assert.All(norm, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void TinyLlama3IsStoredInBF16()
    {
        string path = SharedData.Require("models", "tiny-llama3", "model.safetensors");
        using var store = TensorStore.Open(path);
        Assert.All(store.Tensors, t => Assert.Equal(DType.BF16, t.DType));
        Assert.True(store.Contains("lm_head.weight")); // untied head

        var head = store.GetMatrix("lm_head.weight", 300, 96);
        Assert.Equal(DType.BF16, head.Type);
        Assert.Equal(300 * 96 * 2, head.Data.Length);
        float[] norm = store.ReadFloats("model.norm.weight", 96);
        Assert.All(norm, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void TinyQwen2HasAttentionBiases()
    {
        string path = SharedData.Require("models", "tiny-qwen2", "model.safetensors");
        using var store = TensorStore.Open(Path.GetDirectoryName(path)!);
        foreach (string projection in new[] { "q_proj", "k_proj", "v_proj" })
            Assert.True(store.Contains($"model.layers.0.self_attn.{projection}.bias"), projection);
        Assert.False(store.Contains("model.layers.0.self_attn.o_proj.bias"));
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void EveryModelOpensAndMatchesItsConfig(string model)
    {
        string directory = Path.GetDirectoryName(SharedData.Require("models", model, "model.safetensors"))!;
        using var config = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(directory, "config.json")));
        int vocab = config.RootElement.GetProperty("vocab_size").GetInt32();
        int hidden = config.RootElement.GetProperty("hidden_size").GetInt32();
        int layers = config.RootElement.GetProperty("num_hidden_layers").GetInt32();

        using var store = TensorStore.Open(directory);
        var embed = store.GetMatrix("model.embed_tokens.weight", vocab, hidden);
        Assert.Equal(vocab, embed.Rows);
        for (int layer = 0; layer < layers; layer++)
            Assert.Equal([hidden], store.GetInfo($"model.layers.{layer}.input_layernorm.weight").Shape);
        Assert.False(store.Contains($"model.layers.{layers}.input_layernorm.weight"));

        // Every byte of every tensor is readable (touches the whole mapping).
        long sum = 0;
        foreach (string name in store.Names)
        {
            foreach (byte b in store.GetData(name).Span) sum += b;
        }
        Assert.True(sum > 0);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void GoldenLogitsHoldInputIdsAndLogits(string model)
    {
        string path = SharedData.Require("models", model, "golden-logits.safetensors");
        using var config = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Path.GetDirectoryName(path)!, "config.json")));
        int vocab = config.RootElement.GetProperty("vocab_size").GetInt32();

        using var file = SafeTensorsFile.Open(path);
        Assert.True(file.TryGetTensor("input_ids", out var ids));
        Assert.True(file.TryGetTensor("logits", out var logits));
        Assert.Equal(DType.I32, ids.DType);
        Assert.Single(ids.Shape);
        long tokens = ids.Shape[0];
        Assert.True(tokens > 0);
        Assert.Equal(DType.F32, logits.DType);
        Assert.Equal([tokens, vocab], logits.Shape);
        Assert.Contains("logits[t] predicts token t+1", file.Metadata["note"]);

        var idValues = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(file.GetData("input_ids").Span);
        Assert.All(idValues.ToArray(), id => Assert.InRange(id, 0, vocab - 1));

        using var store = TensorStore.Open(path);
        float[] values = store.ReadFloats("logits", tokens, vocab);
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
    }
}
