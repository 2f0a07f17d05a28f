using LlmPress.Models;

namespace LlmPress.Tests.Models;

public class ModelConfigTests
{
    private const string Llama = """
        {"model_type": "llama", "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5,
         "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512, "max_position_embeddings": 512,
         "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": true,
         "bos_token_id": 1, "eos_token_id": 2}
        """;

    private static ModelConfig Load(string json)
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("config.json"), json);
        return ModelConfig.Load(dir.Path);
    }

    private static string LoadError(string json)
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("config.json"), json);
        var e = Assert.Throws<InvalidDataException>(() => ModelConfig.Load(dir.Path));
        Assert.Contains("config.json", e.Message);
        return e.Message;
    }

    [Fact]
    public void ParsesLlamaFields()
    {
        var c = Load(Llama);
        Assert.Equal(("llama", 64, 172, 5, 8, 4, 8, 512, 512), (c.ModelType, c.HiddenSize, c.IntermediateSize, c.LayerCount, c.HeadCount, c.KvHeadCount, c.HeadDim, c.VocabSize, c.MaxPositions));
        Assert.True(c.TieWordEmbeddings);
        Assert.False(c.QkvBias);
        Assert.Equal(1, c.BosTokenId);
        Assert.Equal([2], c.EosTokenIds);
        Assert.Equal(RopeScalingType.None, c.RopeScaling.Type);
    }

    [Fact]
    public void SharedModelsParse()
    {
        var llama3 = ModelConfig.Load(SharedData.Require("models", "tiny-llama3"));
        Assert.Equal(RopeScalingType.Llama3, llama3.RopeScaling.Type);
        Assert.Equal((8.0, 1.0, 4.0, 16), (llama3.RopeScaling.Factor, llama3.RopeScaling.LowFreqFactor, llama3.RopeScaling.HighFreqFactor, llama3.RopeScaling.OriginalMaxPositions));
        var qwen = ModelConfig.Load(SharedData.Require("models", "tiny-qwen2"));
        Assert.True(qwen.QkvBias);
        Assert.False(qwen.OutputBias);
        var mistral = ModelConfig.Load(SharedData.Require("models", "tiny-mistral"));
        Assert.Equal(32, mistral.HeadDim);
        Assert.Equal(256, mistral.QueryDim);
    }

    [Fact]
    public void SmolLM2ShapeParameterCountIs135M()
    {
        var c = ModelConfig.Load(SharedData.Require("tokenizers", "smollm2", "config.json"));
        Assert.Equal(134_515_008, c.ParameterCount); // the published SmolLM2-135M count
        Assert.Equal(RandomModel.SmolLM2Shape.ParameterCount, c.ParameterCount);
    }

    [Fact]
    public void UnsupportedArchitectureNamesTheField()
    {
        string message = LoadError(Llama.Replace("\"llama\"", "\"gpt2\""));
        Assert.Contains("'model_type' 'gpt2' is not supported", message);
        Assert.Contains("llama, mistral, qwen2", message);
    }

    [Fact]
    public void UnknownRopeTypeIsRejected()
        => Assert.Contains("rope_scaling.rope_type", LoadError(Llama.Replace("\"rope_theta\"", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}, \"rope_theta\"")));

    [Fact]
    public void MissingFieldIsNamed()
        => Assert.Contains("'hidden_size' is missing", LoadError(Llama.Replace("\"hidden_size\": 64,", "")));

    [Fact]
    public void WrongTypeIsNamed()
        => Assert.Contains("'num_hidden_layers' must be an integer", LoadError(Llama.Replace("\"num_hidden_layers\": 5", "\"num_hidden_layers\": \"five\"")));

    [Fact]
    public void KvHeadsMustDivideHeads()
        => Assert.Contains("num_key_value_heads", LoadError(Llama.Replace("\"num_key_value_heads\": 4", "\"num_key_value_heads\": 3")));

    [Fact]
    public void InvalidJsonIsReported()
        => Assert.Contains("not valid JSON", LoadError("{\"model_type\": "));

    [Fact]
    public void MissingFileIsReported()
    {
        using var dir = new TempDirectory();
        var e = Assert.Throws<FileNotFoundException>(() => ModelConfig.Load(dir.Path));
        Assert.Contains("config.json not found", e.Message);
    }
}
