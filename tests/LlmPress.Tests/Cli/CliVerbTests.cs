using System.Text.Json;

namespace LlmPress.Tests.Cli;

public class CliVerbTests
{
    [Fact]
    public void InspectReportsArchitectureAsJson()
    {
        var (code, output, error) = CliRunner.Run("inspect", SharedData.Require("models", "tiny-llama3"), "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.Equal("llama", root.GetProperty("model_type").GetString());
        Assert.Equal(2, root.GetProperty("layers").GetInt32());
        Assert.Equal(2, root.GetProperty("kv_heads").GetInt32());
        Assert.True(root.GetProperty("dtypes").TryGetProperty("BF16", out _));
        Assert.True(root.GetProperty("parameters").GetInt64() > 0);
    }

    [Fact]
    public void InspectPrintsATable()
    {
        var (code, output, _) = CliRunner.Run("inspect", SharedData.Require("models", "stories260K"));
        Assert.Equal(0, code);
        Assert.Contains("architecture", output);
        Assert.Contains("llama (5 layers, hidden 64", output);
        Assert.Contains("size on disk", output);
    }

    [Fact]
    public void EvalPrintsJson()
    {
        var (code, output, error) = CliRunner.Run("eval", SharedData.Require("models", "stories260K"),
            "--data", SharedData.Require("data", "tinystories", "tinystories-10k.txt"), "--seq-len", "128", "--max-windows", "3", "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.Equal(3, root.GetProperty("windows").GetInt32());
        Assert.Equal(3 * 127, root.GetProperty("tokens_scored").GetInt64());
        Assert.InRange(root.GetProperty("perplexity").GetDouble(), 1.0, 50.0);
        Assert.True(root.GetProperty("tokens_per_second").GetDouble() > 0);
    }

    [Fact]
    public void GenerateStreamsTheGreedyStory()
    {
        var (code, output, error) = CliRunner.Run("generate", SharedData.Require("models", "stories260K"), "--max-tokens", "30");
        Assert.True(code == 0, error);
        Assert.StartsWith("Once upon a time, there was a little girl named Lily.", output);
        Assert.Contains("tokens/s", error);
    }

    [Fact]
    public void GenerateWithABf16KvCacheTellsTheSameGreedyStory()
    {
        // stories260K's greedy continuation has wide margins between its top tokens: BF16 keys and values (≤ 0.6% on
        // the logits, GoldenLogitsTests) do not change it over these 30 tokens.
        var (code, output, error) = CliRunner.Run("generate", SharedData.Require("models", "stories260K"), "--max-tokens", "30", "--kv-cache", "bf16");
        Assert.True(code == 0, error);
        Assert.StartsWith("Once upon a time, there was a little girl named Lily.", output);
        (code, _, error) = CliRunner.Run("generate", SharedData.Require("models", "stories260K"), "--kv-cache", "f16");
        Assert.Equal(1, code);
        Assert.Contains("f16", error);
    }

    [Fact]
    public void HelpExplainsDefaults()
    {
        var (code, output, _) = CliRunner.Run("eval", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--seq-len", output);
        Assert.Contains("capped at 2048", output);
    }

    [Fact]
    public void QuickBenchReportsJson()
    {
        var (code, output, error) = CliRunner.Run("bench", "--quick", "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        var results = doc.RootElement.GetProperty("results");
        Assert.True(results.GetProperty("sgemm_1thread").GetProperty("value").GetDouble() > 0);
        Assert.True(results.GetProperty("prefill").GetProperty("value").GetDouble() > 0);
        Assert.True(results.GetProperty("decode_int4_bound_share").GetProperty("value").GetDouble() > 0);
    }
}
