using System.CommandLine;
using System.Text.Json;
using LlmPress.Quantization.Pipeline;
using LlmPress.Sparsity;

namespace LlmPress.Cli.Commands;

/// <summary>
/// `llmpress prune &lt;model&gt; -o DIR --method magnitude|wanda|sparsegpt|iobs --sparsity F | --pattern N:M`: prunes
/// every decoder-layer linear, one layer at a time and true-sequentially like `quantize` (optionally quantizing it in
/// the same pass), and writes a Hugging Face–layout directory that `eval` and `generate` load. The run keeps a journal
/// of finished layers, so a killed or interrupted run continues with `--resume`, bit-identically.
/// </summary>
internal static class PruneCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new Argument<string>("model") { Description = "Model directory." };
        var o = new OutputOptions();
        var method = new Option<string>("--method")
        {
            Description = "magnitude: smallest |w| per layer (N:M: per group), data-free. wanda: smallest |w|·‖x‖ per output row (needs --calib). "
                + "sparsegpt: OBS mask selection per block of 128 columns with GPTQ-style error compensation (needs --calib; the default). "
                + "iobs: iterative OBS, SparseGPT refined until the layer's output error stops improving (needs --calib; prune-only).",
            DefaultValueFactory = _ => "sparsegpt",
        };
        method.AcceptOnlyFromAmong("magnitude", "wanda", "sparsegpt", "iobs");
        var sparsity = new Option<string?>("--sparsity")
        {
            Description = "Unstructured sparsity: the fraction of each layer's weights set to zero, in [0, 1) (0.5 or 50%; default 0.5). Excludes --pattern.",
        };
        var pattern = new Option<string?>("--pattern")
        {
            Description = "N:M sparsity instead: N zeros in every M consecutive inputs of each row (2:4 for sparse tensor cores; needs N < M and M dividing every pruned layer's input size). Excludes --sparsity.",
        };
        var sparsityFile = new Option<string?>("--sparsity-file")
        {
            Description = "JSON object of per-layer sparsities overriding the default, e.g. {\"model.layers.0.mlp.down_proj\": 0.6, \"model.layers.1.self_attn.q_proj\": \"2:4\"}; every name must be a decoder-layer linear.",
        };
        var layout = new Option<string>("--layout")
        {
            Description = "Storage of pruned layers. auto (default): N:M layers in compressed-tensors' sparse-24-bitmask layout (kept values + a bitmask) when smaller, others dense. "
                + "dense: every layer as a dense weight with exact zeros in the source dtype (loadable by any tool). bitmask: the bitmask layout for every N:M layer.",
            DefaultValueFactory = _ => "auto",
        };
        layout.AcceptOnlyFromAmong("auto", "dense", "bitmask");
        var quantMethod = new Option<string>("--quant-method")
        {
            Description = "With --quantize: gptq (default) quantizes with SparseGPT's joint error compensation (needs --calib); rtn rounds the pruned weights to nearest. "
                + "(mr-gptq and higgs are refused: their rotations would not keep the zeros.)",
            DefaultValueFactory = _ => "gptq",
        };
        quantMethod.AcceptOnlyFromAmong("rtn", "gptq", "mr-gptq", "higgs");
        var q = new QuantFormatOptions("--quantize", $"Also quantize every pruned layer in this format, in the same pass (joint mode; the zeros live in the codes): {QuantFormatOptions.FormatList}. "
            + "Only int, mxfp4 and nvfp4 formats without rotation. Default: prune only.");
        var iobsIterations = new Option<int>("--iobs-iterations") { Description = "iobs: the most iterations per layer (default 20).", DefaultValueFactory = _ => 20 };
        var damp = new Option<double>("--damp") { Description = "Hessian dampening for sparsegpt/iobs/gptq, as a fraction of mean(diag H) (default 0.01).", DefaultValueFactory = _ => 0.01 };
        var c = new CalibrationOptions();
        var command = new Command("prune", "Prune a model's decoder layers (magnitude, Wanda, SparseGPT or iterative OBS; unstructured or N:M), optionally quantizing them in the same pass, and write the compressed model.")
        {
            model, o.Output, method, sparsity, pattern, sparsityFile, o.Keep, layout, q.Format, quantMethod, q.GroupSize, q.Sym, q.Asym, q.ActOrder,
            q.RotationBlock, q.ScaleSearch, q.PerLayerScale, iobsIterations, damp, c.Calib, c.Samples, c.SeqLen, c.Seed, o.Force, o.Resume, o.MaxMemory, o.Json, o.DryRun,
        };
        command.SetAction(parse => console.Guard(parse, () =>
        {
            var pruneMethod = parse.GetValue(method) switch
            {
                "magnitude" => PruneMethod.Magnitude,
                "wanda" => PruneMethod.Wanda,
                "iobs" => PruneMethod.Iobs,
                _ => PruneMethod.SparseGpt,
            };
            string? quantizeFormat = parse.GetValue(q.Format);
            if (quantizeFormat is null && (q.AnyGiven(parse) || parse.GetResult(quantMethod) is { Implicit: false }))
                throw new CliException("--quant-method, --group-size, --sym/--asym, --act-order, --rotation-block, --scale-search and --nvfp4-per-layer-scale apply with --quantize FORMAT only.");
            var options = new PruneOptions
            {
                Method = pruneMethod,
                Sparsity = DefaultPattern(parse.GetValue(sparsity), parse.GetValue(pattern)),
                LayerSparsity = parse.GetValue(sparsityFile) is { } file ? SparsityFile.Load(file) : new Dictionary<string, SparsityPattern>(),
                KeepLayers = parse.GetValue(o.Keep) ?? [],
                DampPercent = parse.GetValue(damp),
                IobsIterations = parse.GetValue(iobsIterations),
                Layout = parse.GetValue(layout) switch { "dense" => SparseLayout.Dense, "bitmask" => SparseLayout.Bitmask, _ => SparseLayout.Auto },
                Quantize = quantizeFormat is null ? null : q.Resolve(parse, QuantizeCommand.ParseMethod(parse.GetValue(quantMethod)), quantizeFormat),
            };
            return Run(console, parse, parse.GetValue(model)!, parse.GetValue(o.Output)!, options, c, parse.GetValue(o.Force), parse.GetValue(o.Json),
                parse.GetValue(o.DryRun), parse.GetValue(o.Resume), JournaledRun.ParseMemory(parse.GetValue(o.MaxMemory)));
        }));
        return command;
    }

    /// <summary>--sparsity F or --pattern N:M (not both); default 50% unstructured.</summary>
    internal static SparsityPattern DefaultPattern(string? sparsity, string? pattern)
    {
        if (sparsity is not null && pattern is not null)
            throw new CliException("--sparsity and --pattern exclude each other: give --sparsity F for unstructured sparsity or --pattern N:M.");
        string option = pattern is not null ? "--pattern" : "--sparsity";
        string? text = pattern ?? sparsity;
        if (text is null) return SparsityPattern.Unstructured(0.5);
        SparsityPattern parsed;
        try
        {
            parsed = SparsityPattern.Parse(text);
        }
        catch (Exception e) when (e is FormatException or ArgumentOutOfRangeException)
        {
            throw new CliException($"{option} {text}: {e.Message.Split('\n')[0].Replace(" (Parameter 'fraction')", "").Replace(" (Parameter 'n')", "").Replace(" (Parameter 'm')", "")}");
        }
        if (pattern is not null && !parsed.IsNOfM) throw new CliException($"--pattern {text}: expected N:M such as 2:4; for a fraction of zeros use --sparsity.");
        if (sparsity is not null && parsed.IsNOfM) throw new CliException($"--sparsity {text}: expected a fraction such as 0.5; for N:M sparsity use --pattern {text}.");
        return parsed;
    }

    private static int Run(CliConsole console, ParseResult parse, string modelPath, string outputPath, PruneOptions options, CalibrationOptions c,
        bool force, bool json, bool dryRun, bool resume, long? maxMemory)
    {
        if (force && resume) throw new CliException("--force and --resume exclude each other: --force starts over, --resume continues.");
        options.Validate();
        string method = PruneOptions.MethodName(options.Method);
        if (options.NeedsCalibration && parse.GetValue(c.Calib) is null)
            throw new CliException(options.Method == PruneMethod.Magnitude
                ? "--quantize with --quant-method gptq needs calibration text: pass --calib FILE, or use --quant-method rtn."
                : $"--method {method} is data-aware and needs calibration text: pass --calib FILE (e.g. a few MB of C4 or WikiText).");
        c.Check(parse);
        var (outputExists, journalExists) = JournaledRun.CheckOutput(modelPath, outputPath, force, resume, dryRun);
        if (resume && outputExists && !journalExists && !dryRun)
            return AlreadyComplete(console, outputPath, options, json);

        if (ModelSource.IsGguf(modelPath)) throw new CliException($"{modelPath}: prune reads safetensors checkpoints, not GGUF; pass the model directory.");
        if (QuantizedCheckpoint.TryLoad(modelPath) is not null || SparseCheckpoint.TryLoad(modelPath) is { BitmaskLayers.Count: > 0 })
            throw new CliException($"{modelPath}: is an llmpress quantize or bitmask-layout prune output; prune the original model (prune --quantize prunes and quantizes in one pass).");
        using var model = ModelSource.OpenModel(modelPath);
        options.Validate(model); // every layer's pattern fits, every per-layer name exists: before any work
        if (dryRun)
        {
            JournaledRun.WarnDryRun(console, outputPath, outputExists, journalExists, force, resume);
            int? length = c.Length(parse, model);
            return QuantizeCommand.PrintPlan(console, modelPath, outputPath,
                PruningPipeline.Plan(model, options, length is null ? null : parse.GetValue(c.Samples), length, maxMemory), json, options.Sparsity.Name);
        }
        var calibration = c.Load(parse, model, modelPath);
        var fingerprint = RunFingerprint.Create(model, options.FingerprintFields(), calibration);
        var journal = JournaledRun.OpenJournal(console, outputPath, fingerprint, resume, journalExists, model.Layers.Count);
        var result = JournaledRun.Execute(console, journal, outputPath, outputExists, model.Layers.Count,
            $"{method} {options.Sparsity} ({model.Layers.Count} layers)", maxMemory,
            (settings, done) => PruningPipeline.Run(model, options, calibration, done, settings));
        foreach (var warning in result.Warnings) console.Log($"warning: {warning}");
        // The output directory now exists (it holds the journal): the writer replaces it, journal included, in one rename.
        var final = PrunedCheckpointWriter.Write(modelPath, model.Store!, result, options, outputPath, overwrite: true);

        if (json)
        {
            console.WriteJson(QuantizationReportWriter.ToJson(final));
            return 0;
        }
        var rows = new List<(string, string)>();
        foreach (var l in final.Layers)
            rows.Add((l.Name, $"{l.Rows}×{l.Cols}  {l.Sparsity} → {Format.Number(l.AchievedSparsity ?? 0, "0.0000")} ({l.PrunedWeights} zeros)  {l.Format}"
                + $"  weight err {Format.Number(l.RelativeWeightError, "0.000e+00")}"
                + (l.RelativeOutputError is { } e ? $"  output err {Format.Number(e, "0.000e+00")}" : "")
                + (l.Iterations is { } i ? $"  {i} iterations" : "") + $"  {Format.Number(l.Seconds, "0.00")} s"));
        rows.Add(("sparsity", $"{Format.Number(final.AchievedSparsity ?? 0, "0.0000")} of the compressed layers' weights ({final.PrunedWeights} zeros)"));
        rows.Add(("compressed weights", $"{Format.Bytes(final.QuantizedBytesBefore)} → {Format.Bytes(final.QuantizedBytesAfter)} ({Format.Number(final.AverageBitsPerWeight, "0.000")} bits/weight)"));
        rows.Add(("all tensors", $"{Format.Bytes(final.TotalBytesBefore)} → {Format.Bytes(final.TotalBytesAfter)}"));
        if (calibration is not null) rows.Add(("calibration", $"{calibration.SampleCount} × {calibration.SequenceLength} tokens, seed {calibration.Seed}"));
        rows.Add(("time", $"{Format.Number(final.WallSeconds, "0.00")} s, peak memory {Format.Bytes(final.PeakWorkingSetBytes)}"));
        rows.Add(("written", outputPath));
        console.WriteTable($"{final.Method} {final.Sparsity} ({final.Format}): {final.Layers.Count} layers of {Path.GetFileName(Path.GetFullPath(modelPath))}", rows);
        return 0;
    }

    // --resume on an output without a journal: a finished prune run of the same method and sparsity is left as it is.
    private static int AlreadyComplete(CliConsole console, string outputPath, PruneOptions options, bool json)
    {
        string configFile = Path.Combine(outputPath, "config.json"), reportFile = Path.Combine(outputPath, "report.json");
        string? doneMethod = null, doneSparsity = null;
        try
        {
            if (File.Exists(configFile))
            {
                using var config = JsonDocument.Parse(File.ReadAllBytes(configFile));
                if (config.RootElement.ValueKind == JsonValueKind.Object && config.RootElement.TryGetProperty(SparseCheckpoint.ConfigKey, out var s)
                    && s.ValueKind == JsonValueKind.Object)
                {
                    doneMethod = s.TryGetProperty("method", out var m) ? m.GetString() : null;
                    doneSparsity = s.TryGetProperty("sparsity", out var f) ? f.GetString() : null;
                }
            }
        }
        catch (JsonException)
        {
        }
        if (doneMethod is null || !File.Exists(reportFile))
            throw new CliException($"{outputPath}: exists but holds no journal to resume; choose another -o directory or pass --force to replace it.");
        string method = PruneOptions.MethodName(options.Method);
        if (doneMethod != method || doneSparsity != options.Sparsity.Name)
            throw new CliException($"{outputPath}: holds a finished {doneMethod} {doneSparsity} run, not {method} {options.Sparsity.Name}; "
                                   + "choose another -o directory or pass --force to replace it.");
        console.Log($"{outputPath}: already complete ({doneMethod} {doneSparsity}, no journal left); nothing to resume");
        if (json) console.Out.WriteLine(File.ReadAllText(reportFile).TrimEnd());
        else console.Out.WriteLine($"{outputPath}: already complete ({doneMethod} {doneSparsity})");
        return 0;
    }
}
