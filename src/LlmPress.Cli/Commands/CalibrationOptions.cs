using System.CommandLine;
using LlmPress.Calibration;
using LlmPress.Models;

namespace LlmPress.Cli.Commands;

/// <summary>Calibration options shared by `quantize` and `prune`.</summary>
internal sealed class CalibrationOptions
{
    public Option<string?> Calib { get; } = new("--calib") { Description = "Calibration text file (e.g. a slice of C4 or WikiText), tokenized once." };
    public Option<int> Samples { get; } = new("--calib-samples") { Description = "Calibration windows (default 128).", DefaultValueFactory = _ => 128 };
    public Option<int?> SeqLen { get; } = new("--calib-seq-len") { Description = "Tokens per calibration window (default 2048, capped at the model's max positions)." };
    public Option<int> Seed { get; } = new("--seed") { Description = "Seed for the calibration window offsets (default 0).", DefaultValueFactory = _ => 0 };

    public IEnumerable<Option> All => [Calib, Samples, SeqLen, Seed];

    /// <summary>Checks the values before any model is opened.</summary>
    public void Check(ParseResult parse)
    {
        string? calibPath = parse.GetValue(Calib);
        if (calibPath is not null && !File.Exists(calibPath)) throw new CliException($"{calibPath}: calibration file not found.");
        if (parse.GetValue(Samples) < 1) throw new CliException($"--calib-samples must be at least 1, not {parse.GetValue(Samples)}.");
        if (parse.GetValue(SeqLen) is < 1) throw new CliException($"--calib-seq-len must be at least 1, not {parse.GetValue(SeqLen)}.");
    }

    /// <summary>Window length for <paramref name="model"/>, or null without --calib.</summary>
    public int? Length(ParseResult parse, LlamaModel model) =>
        parse.GetValue(Calib) is null ? null : Math.Min(parse.GetValue(SeqLen) ?? 2048, model.Config.MaxPositions);

    /// <summary>The calibration windows, or null without --calib.</summary>
    public CalibrationData? Load(ParseResult parse, LlamaModel model, string modelPath)
    {
        if (parse.GetValue(Calib) is not { } calibPath) return null;
        var tokenizer = ModelSource.OpenTokenizer(modelPath);
        return CalibrationData.FromText(tokenizer, File.ReadAllText(calibPath), model.Config.BosTokenId ?? tokenizer.BosTokenId,
            parse.GetValue(Samples), Length(parse, model)!.Value, parse.GetValue(Seed), calibPath);
    }
}
