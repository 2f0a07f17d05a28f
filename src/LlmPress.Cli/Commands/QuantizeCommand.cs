using System.CommandLine;
using System.Text.Json;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Cli.Commands;

/// <summary>
/// `llmpress quantize &lt;model&gt; -o DIR --method rtn|gptq|mr-gptq|higgs --format F`: quantizes every decoder-layer linear,
/// one layer at a time, and writes a Hugging Face–layout directory that `eval` and `generate` load. While it runs, the
/// output directory holds a journal of the finished layers (<see cref="QuantizationJournal"/>): a run that is killed or
/// interrupted (Ctrl+C) continues with `--resume`, bit-identically.
/// </summary>
internal static class QuantizeCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new Argument<string>("model") { Description = "Model directory." };
        var o = new OutputOptions();
        var method = new Option<string>("--method")
        {
            Description = "rtn: round to nearest (data-free). gptq: GPTQ with calibration Hessians (needs --calib). "
                + "mr-gptq: micro-rotated GPTQ for MXFP4/NVFP4 — block Hadamard rotation fused into the weights and applied to activations online, "
                + "MSE scales, static act-order (needs --calib). higgs: Hadamard rotation + HIGGS grid (data-free).",
            DefaultValueFactory = _ => "rtn",
        };
        method.AcceptOnlyFromAmong("rtn", "gptq", "mr-gptq", "higgs");
        var q = new QuantFormatOptions("--format", $"Weight format: {QuantFormatOptions.FormatList} (default int4; nvfp4 for mr-gptq; higgs4 for higgs).");
        var lmHead = new Option<string>("--lm-head")
        {
            Description = "Output projection: keep (as stored, the default), or a format — int8 (int8-asym-g128), int4, "
                + "mxfp4, nvfp4, or a canonical name (int8-sym-g32 is exactly GGUF Q8_0) — quantized by GPTQ on the final hidden states "
                + "with --method gptq/mr-gptq, else rounded to nearest. Every decode step reads the whole head, so an "
                + "8-bit head makes a small 4-bit model decode markedly faster. A tied embedding stays as stored (the output is written untied).",
            DefaultValueFactory = _ => "keep",
        };
        var c = new CalibrationOptions();
        var command = new Command("quantize", "Quantize a model's decoder layers (RTN, GPTQ, MR-GPTQ or HIGGS) and write the compressed model.")
        {
            model, o.Output, method, q.Format, q.GroupSize, q.Sym, q.Asym, q.ActOrder, q.RotationBlock, q.ScaleSearch, q.PerLayerScale, o.Keep,
            lmHead, c.Calib, c.Samples, c.SeqLen, c.Seed, o.Force, o.Resume, o.MaxMemory, o.Json, o.DryRun,
        };
        command.SetAction(parse => console.Guard(parse, () =>
        {
            var quantMethod = ParseMethod(parse.GetValue(method));
            string defaultFormat = quantMethod switch { QuantMethod.Higgs => "higgs4", QuantMethod.MrGptq => "nvfp4", _ => "int4" };
            var options = q.Resolve(parse, quantMethod, parse.GetValue(q.Format) ?? defaultFormat) with
            {
                KeepLayers = parse.GetValue(o.Keep) ?? [],
                LmHeadFormat = ParseLmHead(parse.GetValue(lmHead)),
            };
            return Run(console, parse, parse.GetValue(model)!, parse.GetValue(o.Output)!, options, c, parse.GetValue(o.Force), parse.GetValue(o.Json),
                parse.GetValue(o.DryRun), parse.GetValue(o.Resume), JournaledRun.ParseMemory(parse.GetValue(o.MaxMemory)));
        }));
        return command;
    }

    /// <summary>--lm-head: "keep" → null; int2/3/4/8 as --format's shorthands (asymmetric, groups of 128); else a format name.</summary>
    internal static QuantFormat? ParseLmHead(string? name)
    {
        if (name is null or "keep") return null;
        try
        {
            return QuantFormatOptions.ResolveFormat(name, null, false, false);
        }
        catch (CliException)
        {
            throw new CliException($"--lm-head: unknown format '{name}'; expected keep, {QuantFormatOptions.FormatList}.");
        }
    }

    /// <summary>rtn | gptq | mr-gptq | higgs → <see cref="QuantMethod"/>.</summary>
    internal static QuantMethod ParseMethod(string? name) => name switch
    {
        "gptq" => QuantMethod.Gptq,
        "mr-gptq" => QuantMethod.MrGptq,
        "higgs" => QuantMethod.Higgs,
        _ => QuantMethod.Rtn,
    };

    private static int Run(CliConsole console, ParseResult parse, string modelPath, string outputPath, QuantizeOptions options, CalibrationOptions c,
        bool force, bool json, bool dryRun, bool resume, long? maxMemory)
    {
        if (force && resume) throw new CliException("--force and --resume exclude each other: --force starts over, --resume continues.");
        options.Validate();
        if (options.NeedsCalibration && parse.GetValue(c.Calib) is null)
            throw new CliException($"--method {QuantizationPipeline.MethodName(options.Method)} needs calibration text: pass --calib FILE (e.g. a few MB of C4 or WikiText).");
        c.Check(parse);
        if (options.ActOrder && !options.UsesGptq) throw new CliException("--act-order applies to --method gptq and mr-gptq only.");
        var (outputExists, journalExists) = JournaledRun.CheckOutput(modelPath, outputPath, force, resume, dryRun);
        if (resume && outputExists && !journalExists && !dryRun)
            return AlreadyComplete(console, outputPath, options, json);

        if (ModelSource.IsGguf(modelPath)) throw new CliException($"{modelPath}: quantize reads safetensors checkpoints, not GGUF; pass the model directory.");
        if (Sparsity.SparseCheckpoint.TryLoad(modelPath) is { BitmaskLayers.Count: > 0 })
            throw new CliException($"{modelPath}: stores pruned layers in the bitmask layout, which quantize cannot replace; prune with --layout dense first, or use prune --quantize.");
        using var model = ModelSource.OpenModel(modelPath);
        if (dryRun)
        {
            JournaledRun.WarnDryRun(console, outputPath, outputExists, journalExists, force, resume);
            int? length = c.Length(parse, model);
            return PrintPlan(console, modelPath, outputPath, QuantizationPlan.Create(model, options, length is null ? null : parse.GetValue(c.Samples), length, maxMemory), json);
        }
        var calibration = c.Load(parse, model, modelPath);
        var journal = JournaledRun.OpenJournal(console, outputPath, RunFingerprint.Create(model, options, calibration), resume, journalExists, model.Layers.Count);
        var result = JournaledRun.Execute(console, journal, outputPath, outputExists, model.Layers.Count,
            $"{QuantizationPipeline.MethodName(options.Method)} {options.Format.Name} ({model.Layers.Count} layers)", maxMemory,
            (settings, done) => QuantizationPipeline.Run(model, options, calibration, done, settings));
        // The output directory now exists (it holds the journal): the writer replaces it, journal included, in one rename.
        var final = QuantizedCheckpointWriter.Write(modelPath, model.Store!, result, options, outputPath, overwrite: true);

        if (json)
        {
            console.WriteJson(QuantizationReportWriter.ToJson(final));
            return 0;
        }
        var rows = new List<(string, string)>();
        foreach (var l in final.Layers)
            rows.Add((l.Name, $"{l.Rows}×{l.Cols}  {Format.Number(l.BitsPerWeight, "0.00")} b/w  weight err {Format.Number(l.RelativeWeightError, "0.000e+00")}"
                + (l.RelativeOutputError is { } e ? $"  output err {Format.Number(e, "0.000e+00")}" : "") + $"  {Format.Number(l.Seconds, "0.00")} s"));
        rows.Add(("quantized weights", $"{Format.Bytes(final.QuantizedBytesBefore)} → {Format.Bytes(final.QuantizedBytesAfter)} ({Format.Number(final.AverageBitsPerWeight, "0.000")} bits/weight)"));
        rows.Add(("all tensors", $"{Format.Bytes(final.TotalBytesBefore)} → {Format.Bytes(final.TotalBytesAfter)}"));
        if (calibration is not null) rows.Add(("calibration", $"{calibration.SampleCount} × {calibration.SequenceLength} tokens, seed {calibration.Seed}"));
        rows.Add(("time", $"{Format.Number(final.WallSeconds, "0.00")} s, peak memory {Format.Bytes(final.PeakWorkingSetBytes)}"));
        rows.Add(("written", outputPath));
        console.WriteTable($"{final.Method} {final.Format}: {final.Layers.Count} layers of {Path.GetFileName(Path.GetFullPath(modelPath))}", rows);
        return 0;
    }

    // --resume on an output without a journal: a finished run of the same method and format is left as it is.
    private static int AlreadyComplete(CliConsole console, string outputPath, QuantizeOptions options, bool json)
    {
        QuantizedCheckpoint? done;
        try
        {
            done = QuantizedCheckpoint.TryLoad(outputPath);
        }
        catch (JsonException)
        {
            done = null;
        }
        string reportFile = Path.Combine(outputPath, "report.json");
        if (done is null || !File.Exists(reportFile))
            throw new CliException($"{outputPath}: exists but holds no journal to resume; choose another -o directory or pass --force to replace it.");
        string method = QuantizationPipeline.MethodName(options.Method);
        using var config = JsonDocument.Parse(File.ReadAllBytes(done.ConfigFile));
        var q = config.RootElement.GetProperty("quantization_config");
        string? doneMethod = q.TryGetProperty("method", out var m) ? m.GetString() : null;
        string? doneFormat = q.TryGetProperty("format", out var f) ? f.GetString() : null;
        if (doneMethod != method || doneFormat != options.Format.Name)
            throw new CliException($"{outputPath}: holds a finished {doneMethod} {doneFormat} run, not {method} {options.Format.Name}; "
                                   + "choose another -o directory or pass --force to replace it.");
        console.Log($"{outputPath}: already complete ({doneMethod} {doneFormat}, no journal left); nothing to resume");
        if (json) console.Out.WriteLine(File.ReadAllText(reportFile).TrimEnd());
        else console.Out.WriteLine($"{outputPath}: already complete ({doneMethod} {doneFormat})");
        return 0;
    }

    internal static int PrintPlan(CliConsole console, string modelPath, string outputPath, QuantizationPlan plan, bool json, string? sparsity = null)
    {
        if (json)
        {
            var fields = new Dictionary<string, object?>
            {
                ["dry_run"] = true,
                ["method"] = plan.Method,
                ["format"] = plan.Format,
                ["layers"] = plan.Layers.Select(l => new Dictionary<string, object>
                {
                    ["name"] = l.Name, ["rows"] = l.Rows, ["cols"] = l.Cols, ["format"] = l.Format, ["bits_per_weight"] = l.BitsPerWeight,
                    ["bytes_before"] = l.BytesBefore, ["bytes_after"] = l.BytesAfter,
                }).ToArray(),
                ["calibration_samples"] = plan.CalibrationSamples,
                ["calibration_seq_len"] = plan.CalibrationSequenceLength,
                ["average_bits_per_weight"] = plan.AverageBitsPerWeight,
                ["checkpoint_bytes"] = plan.CheckpointBytes,
                ["output_bytes"] = plan.OutputBytes,
                ["estimated_peak_bytes"] = plan.EstimatedPeakBytes,
                ["max_memory_bytes"] = plan.MaxMemoryBytes,
                ["activation_bytes"] = plan.HiddenStateBytes + plan.StageBytes,
                ["spilled_bytes"] = plan.SpilledBytes,
                ["estimated_seconds"] = plan.EstimatedSeconds,
                ["assumed_gflops"] = QuantizationPlan.AssumedGflops,
            };
            if (sparsity is not null) fields.Add("sparsity", sparsity);
            console.WriteJson(fields);
            return 0;
        }
        var shapes = plan.Layers.GroupBy(l => (l.Rows, l.Cols)).Select(g => $"{g.Count()} × [{g.Key.Rows}×{g.Key.Cols}]");
        console.WriteTable($"plan: {plan.Method} {(sparsity is null ? "" : sparsity + " ")}{plan.Format} of {Path.GetFileName(Path.GetFullPath(modelPath))} → {outputPath} (dry run, nothing written)", [
            ("layers", $"{plan.Layers.Count} linear layers: {string.Join(", ", shapes)}"),
            ("calibration", plan.CalibrationSamples is { } n ? $"{n} × {plan.CalibrationSequenceLength} tokens" : "none (data-free)"),
            (sparsity is null ? "quantized weights" : "compressed weights", $"{Format.Bytes(plan.QuantizedBytesBefore)} → {Format.Bytes(plan.QuantizedBytesAfter)} ({Format.Number(plan.AverageBitsPerWeight, "0.000")} bits/weight)"),
            ("output size", $"{Format.Bytes(plan.OutputBytes)} (input {Format.Bytes(plan.CheckpointBytes)})"),
            ("activations", plan.CalibrationSamples is null ? "none"
                : $"{Format.Bytes(plan.HiddenStateBytes + plan.StageBytes)}: " + (plan.SpilledBytes == 0 ? "in RAM"
                    : $"{Format.Bytes(plan.SpilledBytes)} spilled to disk under --max-memory {Format.Bytes(plan.MaxMemoryBytes ?? 0)}")),
            ("peak memory", $"≈ {Format.Bytes(plan.EstimatedPeakBytes)} (runtime + mapped checkpoint + calibration activations in RAM + one layer's working set)"),
            ("time", $"≈ {Format.Number(plan.EstimatedSeconds, "0.0")} s (assuming {QuantizationPlan.AssumedGflops:0} GFLOP/s sustained)"),
        ]);
        return 0;
    }
}
