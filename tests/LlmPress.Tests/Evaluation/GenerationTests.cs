using LlmPress.Evaluation;
using LlmPress.Models;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Evaluation;

public class GenerationTests
{
    [Fact]
    public void GreedyStoriesFromBosTellsTheKnownStory()
    {
        string dir = SharedData.Require("models", "stories260K");
        using var model = LlamaModel.Load(dir);
        var generator = new TextGenerator(model, Tokenizer.Load(dir));
        string text = string.Concat(generator.Generate("", new GenerationOptions(MaxTokens: 40)).Select(t => t.Text));
        Assert.StartsWith("Once upon a time, there was a little girl named Lily. She loved to play outside in the park.", text);
        Assert.Equal(1, generator.LastStats!.PromptTokens); // BOS only
    }

    [Fact]
    public void SamplingIsReproducibleForASeed()
    {
        string dir = SharedData.Require("models", "stories260K");
        using var model = LlamaModel.Load(dir);
        var generator = new TextGenerator(model, Tokenizer.Load(dir));
        string Run(int seed) => string.Concat(generator.Generate("Once upon", new GenerationOptions(30, Temperature: 1f, TopP: 0.9f, Seed: seed)).Select(t => t.Text));
        Assert.Equal(Run(11), Run(11));
        Assert.NotEqual(Run(11), Run(12));
    }
}

public class SamplerTests
{
    [Fact]
    public void ZeroTemperatureIsArgmax()
        => Assert.Equal(2, new Sampler().Sample([0.1f, -3f, 5f, 4.9f]));

    [Fact]
    public void TinyTopPKeepsOnlyTheMostLikelyToken()
    {
        var sampler = new Sampler(temperature: 1f, topP: 0.01f, seed: 3);
        for (int i = 0; i < 50; i++) Assert.Equal(3, sampler.Sample([1f, 2f, 0f, 6f, 5f]));
    }

    [Fact]
    public void SamplingFollowsTheDistribution()
    {
        // softmax([0, ln 3]) = [0.25, 0.75]: 4000 draws land within ±3σ (σ ≈ 27) of 3000.
        var sampler = new Sampler(temperature: 1f, seed: 9);
        int ones = 0;
        for (int i = 0; i < 4000; i++) ones += sampler.Sample([0f, MathF.Log(3)]);
        Assert.InRange(ones, 3000 - 82, 3000 + 82);
    }

    [Fact]
    public void InvalidSettingsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(temperature: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(topP: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(topP: 1.5f));
    }
}
