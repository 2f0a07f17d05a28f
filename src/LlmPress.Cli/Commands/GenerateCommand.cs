using System.CommandLine;
using System.Text;
using LlmPress.Evaluation;

namespace LlmPress.Cli.Commands;

/// <summary>`llmpress generate &lt;model&gt; --prompt TEXT`: streams a continuation.</summary>
internal static class GenerateCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new Argument<string>("model") { Description = "Model directory, or a .gguf file (dequantized to FP32 on load; tokenizer rebuilt from its metadata)." };
        var prompt = new Option<string>("--prompt", "-p") { Description = "Text to continue (default: empty, so generation starts from BOS).", DefaultValueFactory = _ => "" };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "New tokens to generate at most (default 256; stops earlier at end-of-sequence or a full context).", DefaultValueFactory = _ => 256 };
        var temperature = new Option<float>("--temperature", "-t") { Description = "Sampling temperature; 0 (default) is greedy and deterministic.", DefaultValueFactory = _ => 0f };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling: sample among the most likely tokens holding this probability mass (default 1 = all).", DefaultValueFactory = _ => 1f };
        var seed = new Option<int>("--seed") { Description = "Seed for sampling (default 0); the same seed gives the same text.", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print {text, tokens, tokens_per_second} as JSON instead of streaming." };
        var kvCache = KvCacheOption();
        var command = new Command("generate", "Generate text from a prompt, streaming tokens as they come.") { model, prompt, maxTokens, temperature, topP, seed, kvCache, json };
        command.SetAction(parse => console.Guard(parse, () => Run(console, parse.GetValue(model)!, parse.GetValue(prompt) ?? "",
            new GenerationOptions(parse.GetValue(maxTokens), parse.GetValue(temperature), parse.GetValue(topP), parse.GetValue(seed),
                KvCacheType: ParseKvCache(parse.GetValue(kvCache))),
            parse.GetValue(json))));
        return command;
    }

    /// <summary>--kv-cache f32|bf16, shared by generate and serve.</summary>
    internal static Option<string> KvCacheOption()
    {
        var option = new Option<string>("--kv-cache")
        {
            Description = "How the KV cache stores keys and values: f32 (default; keys and values kept exactly as computed) or bf16 "
                + "(half the memory, and half the bytes each decode step reads from the cache, which dominate at long contexts; "
                + "keys and values rounded once, as engines that keep the cache in the model's 16-bit dtype do).",
            DefaultValueFactory = _ => "f32",
        };
        option.AcceptOnlyFromAmong("f32", "bf16");
        return option;
    }

    internal static LlmPress.Numerics.DType ParseKvCache(string? value) =>
        value == "bf16" ? LlmPress.Numerics.DType.BF16 : LlmPress.Numerics.DType.F32;

    private static int Run(CliConsole console, string modelPath, string prompt, GenerationOptions options, bool json)
    {
        if (options.MaxTokens < 0) throw new CliException($"--max-tokens must be ≥ 0, not {options.MaxTokens}.");
        if (!(options.Temperature >= 0)) throw new CliException($"--temperature must be ≥ 0, not {options.Temperature}.");
        if (!(options.TopP > 0 && options.TopP <= 1)) throw new CliException($"--top-p must be in (0, 1], not {options.TopP}.");
        using var model = ModelSource.OpenModel(modelPath);
        var tokenizer = ModelSource.OpenTokenizer(modelPath);
        var generator = new TextGenerator(model, tokenizer);
        var text = new StringBuilder();
        int count = 0;
        if (!json) console.Out.Write(prompt);
        foreach (var token in generator.Generate(prompt, options))
        {
            text.Append(token.Text);
            if (token.Id >= 0) count++;
            if (!json)
            {
                console.Out.Write(token.Text);
                console.Out.Flush();
            }
        }
        var stats = generator.LastStats!;
        if (json)
        {
            console.WriteJson(new Dictionary<string, object>
            {
                ["text"] = text.ToString(),
                ["prompt_tokens"] = stats.PromptTokens,
                ["tokens"] = count,
                ["tokens_per_second"] = stats.DecodeTokensPerSecond,
                ["prefill_tokens_per_second"] = stats.PrefillTokensPerSecond,
            });
            return 0;
        }
        console.Out.WriteLine();
        console.Log($"[{stats.PromptTokens} prompt tokens, {count} generated; prefill {Format.Number(stats.PrefillTokensPerSecond, "0.0")} tokens/s, decode {Format.Number(stats.DecodeTokensPerSecond, "0.0")} tokens/s]");
        return 0;
    }
}
