using System.CommandLine;
using LlmPress.Evaluation;

namespace LlmPress.Cli.Commands;

/// <summary>`llmpress eval &lt;model&gt; --data FILE`: perplexity over non-overlapping windows.</summary>
internal static class EvalCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new Argument<string>("model") { Description = "Model directory, or a .gguf file (dequantized to FP32 on load; tokenizer rebuilt from its metadata)." };
        var data = new Option<string>("--data") { Description = "Text file, read as is (e.g. wikitext-2-raw/wiki.test.raw) and tokenized once with one BOS at the start.", Required = true };
        var seqLen = new Option<int?>("--seq-len") { Description = "Window length in tokens (default: the model's max positions, capped at 2048)." };
        var maxWindows = new Option<int?>("--max-windows") { Description = "Evaluate only the first K windows (default: all; the remainder that does not fill a window is dropped)." };
        var protocol = new Option<string>("--protocol")
        {
            Description = "gptq: score every prediction of each window (GPTQ paper / lm-eval). llamacpp: score only the second half of each window (llama-perplexity).",
            DefaultValueFactory = _ => "gptq",
        };
        protocol.AcceptOnlyFromAmong("gptq", "llamacpp");
        var baseModel = new Option<string?>("--base")
        {
            Description = "An uncompressed model to compare with: adds the KL divergence KL(base ‖ model) of the next-token distributions (mean and max over scored positions), top-1 agreement and the base's perplexity, on the same windows.",
        };
        var json = new Option<bool>("--json") { Description = "Print {perplexity, windows, tokens_scored, tokens_per_second} (plus kl_divergence, top1_agreement, base_perplexity with --base) as JSON on stdout." };
        var command = new Command("eval", "Measure perplexity of a model on a text file (and, with --base, how far its predictions moved from the original's).") { model, data, seqLen, maxWindows, protocol, baseModel, json };
        command.SetAction(parse => console.Guard(parse, () => Run(console, parse.GetValue(model)!, parse.GetValue(data)!,
            parse.GetValue(seqLen), parse.GetValue(maxWindows), parse.GetValue(protocol) == "llamacpp" ? PerplexityProtocol.LlamaCpp : PerplexityProtocol.Gptq,
            parse.GetValue(baseModel), parse.GetValue(json))));
        return command;
    }

    private static int Run(CliConsole console, string modelPath, string dataPath, int? seqLen, int? maxWindows, PerplexityProtocol protocol,
        string? basePath, bool json)
    {
        if (!File.Exists(dataPath)) throw new CliException($"{dataPath}: data file not found.");
        if (seqLen is < 2) throw new CliException($"--seq-len must be at least 2, not {seqLen}.");
        if (maxWindows is < 1) throw new CliException($"--max-windows must be at least 1, not {maxWindows}.");
        using var model = ModelSource.OpenModel(modelPath);
        var tokenizer = ModelSource.OpenTokenizer(modelPath);
        int windowLength = seqLen ?? Math.Min(model.Config.MaxPositions, 2048);

        string text = File.ReadAllText(dataPath);
        int? bos = model.Config.BosTokenId ?? tokenizer.BosTokenId;
        int[] encoded = tokenizer.Encode(text);
        int[] tokens = bos is { } b ? [b, .. encoded] : encoded;
        if (tokens.Length < windowLength)
            throw new CliException($"{dataPath}: the text yields {tokens.Length} tokens, fewer than one window of {windowLength}; use a longer text or a smaller --seq-len.");

        int totalWindows = tokens.Length / windowLength;
        int windows = maxWindows is { } k ? Math.Min(k, totalWindows) : totalWindows;
        string protocolName = protocol == PerplexityProtocol.LlamaCpp ? "llamacpp" : "gptq";
        if (basePath is not null)
            return RunComparison(console, model, basePath, dataPath, modelPath, tokens, windowLength, windows, totalWindows, protocol, protocolName, json);

        var result = console.WithProgress($"perplexity ({windows} × {windowLength} tokens)", windows,
            report => PerplexityEvaluator.Evaluate(model, tokens, windowLength, windows, protocol, (done, _) => report(done)));

        if (json)
        {
            console.WriteJson(new Dictionary<string, object>
            {
                ["perplexity"] = result.Perplexity,
                ["windows"] = result.Windows,
                ["tokens_scored"] = result.TokensScored,
                ["tokens_per_second"] = result.TokensPerSecond,
                ["seq_len"] = windowLength,
                ["protocol"] = protocolName,
                ["text_tokens"] = tokens.Length,
            });
            return 0;
        }
        console.WriteTable($"{Path.GetFileName(Path.GetFullPath(modelPath))} on {Path.GetFileName(dataPath)}", [
            ("perplexity", Format.Number(result.Perplexity, "0.0000")),
            ("windows", $"{result.Windows} of {windowLength} tokens ({protocolName} protocol)"),
            ("tokens scored", result.TokensScored.ToString()),
            ("text tokens", $"{tokens.Length} ({totalWindows} full windows)"),
            ("speed", $"{Format.Number(result.TokensPerSecond, "0.0")} tokens/s ({Format.Number(result.Seconds, "0.00")} s)"),
        ]);
        return 0;
    }

    private static int RunComparison(CliConsole console, LlmPress.Models.LlamaModel model, string basePath, string dataPath, string modelPath,
        int[] tokens, int windowLength, int windows, int totalWindows, PerplexityProtocol protocol, string protocolName, bool json)
    {
        using var baseModel = ModelSource.OpenModel(basePath);
        var c = DistributionComparison.Evaluate(model, baseModel, tokens, windowLength, windows, protocol);
        if (json)
        {
            console.WriteJson(new Dictionary<string, object>
            {
                ["perplexity"] = c.Model.Perplexity,
                ["base_perplexity"] = c.Base.Perplexity,
                ["kl_divergence"] = c.MeanKlDivergence,
                ["max_kl_divergence"] = c.MaxKlDivergence,
                ["top1_agreement"] = c.Top1Agreement,
                ["windows"] = c.Model.Windows,
                ["tokens_scored"] = c.Model.TokensScored,
                ["tokens_per_second"] = c.Model.TokensPerSecond,
                ["seq_len"] = windowLength,
                ["protocol"] = protocolName,
                ["text_tokens"] = tokens.Length,
            });
            return 0;
        }
        console.WriteTable($"{Path.GetFileName(Path.GetFullPath(modelPath))} vs {Path.GetFileName(Path.GetFullPath(basePath))} on {Path.GetFileName(dataPath)}", [
            ("perplexity", $"{Format.Number(c.Model.Perplexity, "0.0000")} (base {Format.Number(c.Base.Perplexity, "0.0000")})"),
            ("KL divergence", $"mean {Format.Number(c.MeanKlDivergence, "0.000000")} nats, max {Format.Number(c.MaxKlDivergence, "0.0000")}"),
            ("top-1 agreement", $"{Format.Number(100 * c.Top1Agreement, "0.00")}%"),
            ("windows", $"{c.Model.Windows} of {windowLength} tokens ({protocolName} protocol)"),
            ("tokens scored", c.Model.TokensScored.ToString()),
            ("text tokens", $"{tokens.Length} ({totalWindows} full windows)"),
        ]);
        return 0;
    }
}
