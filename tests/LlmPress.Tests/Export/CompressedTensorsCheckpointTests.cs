using LlmPress.Export;
using LlmPress.IO;
using LlmPress.Numerics;

namespace LlmPress.Tests.Export;

/// <summary>How a compressed-tensors quantization_config (as llm-compressor writes it) resolves each linear, and what is refused.</summary>
public sealed class CompressedTensorsCheckpointTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Directory(string quantizationConfig)
    {
        string dir = _temp.File(Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), $$"""{"model_type": "llama", "quantization_config": {{quantizationConfig}}}""");
        return dir;
    }

    // The quantization_config text with the weights of a symmetric INT4 group-128 scheme put in for INT4G128.
    private static string Config(string text) => text.Replace("INT4G128", Int4Group128, StringComparison.Ordinal);

    private const string Int4Group128 = """
        {"num_bits": 4, "type": "int", "symmetric": true, "group_size": 128, "strategy": "group", "dynamic": false, "actorder": null}
        """;

    [Fact]
    public void IgnoreComesFirstThenTargetsByNameRegexOrClass()
    {
        string dir = Directory(Config("""
            {"quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
             "ignore": ["lm_head", "re:.*mlp\\.down_proj$"],
             "config_groups": {
               "group_0": {"targets": ["model.layers.0.self_attn.q_proj"], "weights": {"num_bits": 8, "type": "int", "symmetric": true, "group_size": null, "strategy": "channel"}, "input_activations": null},
               "group_1": {"targets": ["Linear"], "weights": INT4G128, "input_activations": null}}}
            """));
        var checkpoint = CompressedTensorsCheckpoint.TryLoad(dir)!;
        Assert.Equal("pack-quantized", checkpoint.Format);
        Assert.Null(checkpoint.SchemeFor("model.layers.3.mlp.down_proj"));
        Assert.Null(checkpoint.SchemeFor("lm_head"));
        Assert.Equal(8, checkpoint.SchemeFor("model.layers.0.self_attn.q_proj")!.Bits);
        Assert.Equal(new CompressedTensorsScheme("pack-quantized", "int", 4, true, "group", 128), checkpoint.SchemeFor("model.layers.1.self_attn.q_proj"));
        Assert.NotNull(checkpoint.SchemeFor("model.layers.3.mlp.up_proj"));
    }

    [Theory]
    [InlineData("""{"quant_method": "gptq", "bits": 4}""")]
    [InlineData("""{"quant_method": "compressed-tensors", "format": "dense", "config_groups": {}}""")]
    [InlineData("""{"quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "frozen", "config_groups": {}}""")]
    public void OtherMethodsAndUncompressedCheckpointsAreNotRead(string config) =>
        Assert.Null(CompressedTensorsCheckpoint.TryLoad(Directory(config)));

    [Fact]
    public void UnsupportedSchemesAndActivationOrderAreRefusedNamingTheModule()
    {
        string dir = Directory(Config("""
            {"quant_method": "compressed-tensors", "format": "float-quantized", "quantization_status": "compressed",
             "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"num_bits": 8, "type": "float", "symmetric": true, "strategy": "channel"}, "input_activations": null}}}
            """));
        SafeTensorsWriter.Write(Path.Combine(dir, TensorStore.SingleFileName), [new TensorToWrite("x", DType.U8, [1], new byte[1])]);
        using var store = TensorStore.Open(dir);
        var e = Assert.Throws<InvalidDataException>(() => CompressedTensorsCheckpoint.TryLoad(dir)!.LoadWeight(store, "model.layers.0.mlp.up_proj", 4, 4));
        Assert.Contains("model.layers.0.mlp.up_proj", e.Message);
        Assert.Contains("float-quantized", e.Message);

        string ordered = Directory(Config("""
            {"quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
             "config_groups": {"group_0": {"targets": ["Linear"], "weights": INT4G128, "input_activations": null}}}
            """));
        SafeTensorsWriter.Write(Path.Combine(ordered, TensorStore.SingleFileName),
            [new TensorToWrite("model.layers.0.mlp.up_proj.weight_g_idx", DType.I32, [1], new byte[4])]);
        using var orderedStore = TensorStore.Open(ordered);
        e = Assert.Throws<InvalidDataException>(() => CompressedTensorsCheckpoint.TryLoad(ordered)!.LoadWeight(orderedStore, "model.layers.0.mlp.up_proj", 4, 128));
        Assert.Contains("weight_g_idx", e.Message);

        string activations = Directory(Config("""
            {"quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
             "config_groups": {"group_0": {"targets": ["Linear"], "weights": INT4G128, "input_activations": {"num_bits": 8, "type": "int"}}}}
            """));
        Assert.Contains("quantizes activations", Assert.Throws<InvalidDataException>(() => CompressedTensorsCheckpoint.TryLoad(activations)).Message);
    }
}
