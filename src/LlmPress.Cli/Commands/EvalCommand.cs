using System.CommandLine;
using LlmPress.Evaluation;

namespace LlmPress.Cli.Commands;

/// <summary>`llmpress eval &lt;model&gt; --data FILE`: perplexity over non-overlapping windows.</summary>
internal static class EvalCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new Argument<string>("model") { Description = "Model directory." };
        var data = new Option<string>("--data") { Description = "Text file, read as is (e.g. wikitext-2-raw/wiki.test.raw) and tokenized once with one BOS at the start.", Required = true };
        var seqLen = new Option<int?>("--seq-len") { Description = "Window length in tokens (default: the model's max positions, capped at 2048)." };
        var maxWindows = new Option<int?>("--max-windows") { Description = "Evaluate only the first K windows (default: all; the remainder that does not fill a window is dropped)." };
        var protocol = new Option<string>("--protocol")
        {
            Description = "gptq: score every prediction of each window (GPTQ paper / lm-eval). llamacpp: score only the second half of each window (llama-perplexity).",
            DefaultValueFactory = _ => "gptq",
        };
        protocol.AcceptOnlyFromAmong("gptq", "llamacpp");
        var json = new Option<bool>("--json") { Description = "Print {perplexity, windows, tokens_scored, tokens_per_second} as JSON on stdout." };
        var command = new Command("eval", "Measure perplexity of a model on a text file.") { model, data, seqLen, maxWindows, protocol, json };
        command.SetAction(parse => console.Guard(parse, () => Run(console, parse.GetValue(model)!, parse.GetValue(data)!,
            parse.GetValue(seqLen), parse.GetValue(maxWindows), parse.GetValue(protocol) == "llamacpp" ? PerplexityProtocol.LlamaCpp : PerplexityProtocol.Gptq,
            parse.GetValue(json))));
        return command;
    }

    private static int Run(CliConsole console, string modelPath, string dataPath, int? seqLen, int? maxWindows, PerplexityProtocol protocol, bool json)
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
                ["protocol"] = protocol == PerplexityProtocol.LlamaCpp ? "llamacpp" : "gptq",
                ["text_tokens"] = tokens.Length,
            });
            return 0;
        }
        console.WriteTable($"{Path.GetFileName(Path.GetFullPath(modelPath))} on {Path.GetFileName(dataPath)}", [
            ("perplexity", Format.Number(result.Perplexity, "0.0000")),
            ("windows", $"{result.Windows} of {windowLength} tokens ({(protocol == PerplexityProtocol.LlamaCpp ? "llamacpp" : "gptq")} protocol)"),
            ("tokens scored", result.TokensScored.ToString()),
            ("text tokens", $"{tokens.Length} ({totalWindows} full windows)"),
            ("speed", $"{Format.Number(result.TokensPerSecond, "0.0")} tokens/s ({Format.Number(result.Seconds, "0.00")} s)"),
        ]);
        return 0;
    }
}
