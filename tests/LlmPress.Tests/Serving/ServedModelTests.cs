using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LlmPress.Cli.Serving;
using LlmPress.Evaluation;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Serving;

/// <summary>
/// Chat prompts of templated tokenizers (Llama-3, Qwen3 ChatML) end to end, with random-weight models whose vocabulary
/// matches the real tokenizer: the token ids the server feeds the model, and a served chat answer.
/// </summary>
public class ServedModelTests
{
    private static LlamaModel RandomModelFor(Tokenizer tokenizer, int? bos) => RandomModel.Create(new ModelConfig
    {
        ModelType = "llama",
        HiddenSize = 32,
        IntermediateSize = 64,
        LayerCount = 1,
        HeadCount = 2,
        KvHeadCount = 1,
        HeadDim = 16,
        VocabSize = tokenizer.VocabSize,
        MaxPositions = 128,
        TieWordEmbeddings = true,
        BosTokenId = bos,
    }, DType.F32, seed: 5);

    private static readonly ChatMessage[] s_chat = [new("system", "Be brief."), new("user", "Hi")];

    [Fact]
    public void ChatMlPromptsGetNoBosEvenWhenTheModelConfigNamesOne()
    {
        var tokenizer = Tokenizer.Load(SharedData.Require("tokenizers", "qwen3"));
        Assert.True(tokenizer.TryGetTokenId("<|endoftext|>", out int endOfText));
        // Qwen checkpoints' config.json has bos_token_id = <|endoftext|>, but their template adds no BOS.
        using var served = new ServedModel("qwen", RandomModelFor(tokenizer, endOfText), tokenizer);
        int[] ids = served.EncodeChat(s_chat);
        Assert.Equal(tokenizer.Encode("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), ids);
        Assert.True(tokenizer.TryGetTokenId("<|im_start|>", out int imStart));
        Assert.Equal(imStart, ids[0]);
        Assert.True(tokenizer.TryGetTokenId("<|im_end|>", out int imEnd));
        Assert.True(served.IsEndOfTurn(imEnd));
        Assert.False(served.IsEndOfTurn(endOfText));
    }

    [Fact]
    public void Llama3PromptsHoldBosExactlyOnce()
    {
        var tokenizer = Tokenizer.Load(SharedData.Require("tokenizers", "llama3"));
        using var served = new ServedModel("llama", RandomModelFor(tokenizer, tokenizer.BosTokenId), tokenizer);
        int[] ids = served.EncodeChat(s_chat);
        Assert.Equal(tokenizer.BosTokenId, ids[0]);
        Assert.Single(ids, id => id == tokenizer.BosTokenId);
        Assert.True(tokenizer.TryGetTokenId("<|eot_id|>", out int eot));
        Assert.True(served.IsEndOfTurn(eot));
    }

    [Fact]
    public async Task ServesAnLlmPressQuantizedDirectory()
    {
        string source = SharedData.Require("models", "stories260K");
        using var dir = new TempDirectory();
        string quantized = Path.Combine(dir.Path, "rtn4");
        var (code, _, err) = LlmPress.Tests.Cli.CliRunner.Run("quantize", source, "-o", quantized, "--format", "int4");
        Assert.True(code == 0, err);

        using var model = LlamaModel.Load(quantized);
        var tokenizer = Tokenizer.Load(quantized);
        string expected = string.Concat(new TextGenerator(model, tokenizer).Generate("Once upon a time", new GenerationOptions(20)).Select(t => t.Text));
        using var served = new ServedModel("rtn4", LlamaModel.Load(quantized), tokenizer);
        await using var server = await OpenAiServer.StartAsync(served, IPAddress.Loopback, 0, _ => { }, TestContext.Current.CancellationToken);
        using var client = new HttpClient { BaseAddress = server.Address };
        using var response = await client.PostAsJsonAsync("/v1/completions", new { prompt = "Once upon a time", max_tokens = 20, temperature = 0 }, TestContext.Current.CancellationToken);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.Equal(expected, body.RootElement.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task ServedChatMlAnswerIsTheGeneratorsContinuationOfTheTemplatedPrompt()
    {
        var tokenizer = Tokenizer.Load(SharedData.Require("tokenizers", "qwen3"));
        using var model = RandomModelFor(tokenizer, null);
        using var served = new ServedModel("qwen", model, tokenizer);
        int[] prompt = served.EncodeChat(s_chat);
        var expected = new System.Text.StringBuilder();
        int count = 0;
        foreach (var token in new TextGenerator(model, tokenizer).Generate(prompt, new GenerationOptions(12)))
        {
            if (token.Id >= 0 && served.IsEndOfTurn(token.Id)) break;
            expected.Append(token.Text);
            if (token.Id >= 0) count++;
        }

        await using var server = await OpenAiServer.StartAsync(served, IPAddress.Loopback, 0, _ => { }, TestContext.Current.CancellationToken);
        using var client = new HttpClient { BaseAddress = server.Address };
        using var response = await client.PostAsJsonAsync("/v1/chat/completions", new
        {
            model = "qwen",
            messages = new[] { new { role = "system", content = "Be brief." }, new { role = "user", content = "Hi" } },
            max_tokens = 12,
            temperature = 0,
        }, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.Equal(expected.ToString(), body.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(prompt.Length, body.RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(count, body.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }
}
