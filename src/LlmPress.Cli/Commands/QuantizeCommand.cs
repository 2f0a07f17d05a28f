using System.CommandLine;
using System.Text.Json;
using LlmPress.Calibration;
using LlmPress.IO;
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
    private const string FormatList = "int4, int3, int2, int8, mxfp4, nvfp4, higgs4, higgs3, higgs2, or a canonical name such as int4-sym-g64";

    public static Command Create(CliConsole console)
    {
        var model = new Argument<string>("model") { Description = "Model directory." };
        var output = new Option<string>("--output", "-o") { Description = "Directory to write (must not exist unless --force or --resume). While the run is in progress it holds only a journal of the finished layers (.llmpress-journal); the model appears when the run is complete.", Required = true };
        var method = new Option<string>("--method")
        {
            Description = "rtn: round to nearest (data-free). gptq: GPTQ with calibration Hessians (needs --calib). "
                + "mr-gptq: micro-rotated GPTQ for MXFP4/NVFP4 — block Hadamard rotation fused into the weights and applied to activations online, "
                + "MSE scales, static act-order (needs --calib). higgs: Hadamard rotation + HIGGS grid (data-free).",
            DefaultValueFactory = _ => "rtn",
        };
        method.AcceptOnlyFromAmong("rtn", "gptq", "mr-gptq", "higgs");
        var format = new Option<string?>("--format") { Description = $"Weight format: {FormatList} (default int4; nvfp4 for mr-gptq; higgs4 for higgs)." };
        var groupSize = new Option<int?>("--group-size") { Description = "INT formats: input columns per scale group (default 128). MXFP4/NVFP4/HIGGS have fixed groups." };
        var sym = new Option<bool>("--sym") { Description = "INT formats: symmetric grid, no stored zero points." };
        var asym = new Option<bool>("--asym") { Description = "INT formats: asymmetric grid with zero points (the default)." };
        var actOrder = new Option<bool>("--act-order") { Description = "GPTQ: quantize columns by decreasing Hessian diagonal (static groups). Always on for mr-gptq." };
        var rotationBlock = new Option<int?>("--rotation-block")
        {
            Description = "Hadamard block along each layer's input dimension (power of two). mr-gptq: default 32 for nvfp4 and mxfp4, "
                + "the group size for int; higgs: largest block, default 1024; rtn/gptq: adds a rotation (default none). "
                + "A layer whose width the block would pad by more than 1/8 gets the largest smaller block that does not.",
        };
        var scaleSearch = new Option<string?>("--scale-search")
        {
            Description = "How group scales are chosen: minmax, or mse (shrink search on |w−q|^2.4). Default mse for mr-gptq, minmax otherwise.",
        };
        scaleSearch.AcceptOnlyFromAmong("minmax", "mse");
        var perLayerScale = new Option<bool>("--nvfp4-per-layer-scale")
        {
            Description = "NVFP4: give every linear its own global scale. By default q/k/v share one and gate/up another (the smallest "
                + "of each group), as engines that fuse them (vLLM) require.",
        };
        var keep = new Option<string[]>("--keep")
        {
            Description = "Regular expression over module names (e.g. 'layers\\.0\\.' or 'down_proj'): matching linears stay as stored. "
                + "Repeatable. Embeddings and lm_head always stay as stored.",
            AllowMultipleArgumentsPerToken = false,
        };
        var calib = new Option<string?>("--calib") { Description = "Calibration text file (e.g. a slice of C4 or WikiText), tokenized once." };
        var samples = new Option<int>("--calib-samples") { Description = "Calibration windows (default 128).", DefaultValueFactory = _ => 128 };
        var seqLen = new Option<int?>("--calib-seq-len") { Description = "Tokens per calibration window (default 2048, capped at the model's max positions)." };
        var seed = new Option<int>("--seed") { Description = "Seed for the calibration window offsets (default 0).", DefaultValueFactory = _ => 0 };
        var force = new Option<bool>("--force") { Description = "Replace an existing output directory, discarding any unfinished run's journal in it." };
        var resume = new Option<bool>("--resume")
        {
            Description = "Continue an interrupted run from the journal in the output directory: finished layers are reused and the result is "
                          + "bit-identical to an uninterrupted run. The settings must match the interrupted run's (a mismatch is an error). "
                          + "Without a journal the run starts from the first layer; on a finished output it does nothing.",
        };
        var maxMemory = new Option<string?>("--max-memory")
        {
            Description = "Memory budget, e.g. 4G or 1500M (K/M/G/T, binary). Calibration activations that do not fit beside one layer's working set "
                          + "are spilled to a file in the output directory (same result, more disk I/O). The memory-mapped model is not counted. "
                          + "Default: no limit, everything in RAM.",
        };
        var json = new Option<bool>("--json") { Description = "Print the report (as in report.json) as JSON on stdout." };
        var dryRun = new Option<bool>("--dry-run")
        {
            Description = "Print the plan (layers, formats, output size, estimated peak memory and time) and stop before any work; nothing is written.",
        };
        var command = new Command("quantize", "Quantize a model's decoder layers (RTN, GPTQ, MR-GPTQ or HIGGS) and write the compressed model.")
        {
            model, output, method, format, groupSize, sym, asym, actOrder, rotationBlock, scaleSearch, perLayerScale, keep, calib, samples, seqLen, seed, force, resume, maxMemory, json, dryRun,
        };
        command.SetAction(parse => console.Guard(parse, () =>
        {
            var quantMethod = parse.GetValue(method) switch
            {
                "gptq" => QuantMethod.Gptq,
                "mr-gptq" => QuantMethod.MrGptq,
                "higgs" => QuantMethod.Higgs,
                _ => QuantMethod.Rtn,
            };
            string defaultFormat = quantMethod switch { QuantMethod.Higgs => "higgs4", QuantMethod.MrGptq => "nvfp4", _ => "int4" };
            var quantFormat = ResolveFormat(parse.GetValue(format) ?? defaultFormat, parse.GetValue(groupSize), parse.GetValue(sym), parse.GetValue(asym));
            int? block = parse.GetValue(rotationBlock);
            if (block is int b && quantFormat.RotationBlockSize is int named && named != b && quantFormat.Kind != QuantKind.Higgs)
                throw new CliException($"--rotation-block {b} contradicts the format name {quantFormat.Name}; give the block once.");
            var options = new QuantizeOptions
            {
                Method = quantMethod,
                Format = quantFormat,
                ActOrder = parse.GetValue(actOrder),
                RotationBlockSize = block,
                ScaleSearch = parse.GetValue(scaleSearch) switch { "mse" => ScaleSearch.Mse, "minmax" => ScaleSearch.MinMax, _ => null },
                KeepLayers = parse.GetValue(keep) ?? [],
                ShareNvfp4GlobalScale = !parse.GetValue(perLayerScale),
            };
            return Run(console, parse.GetValue(model)!, parse.GetValue(output)!, options, parse.GetValue(calib), parse.GetValue(samples),
                parse.GetValue(seqLen), parse.GetValue(seed), parse.GetValue(force), parse.GetValue(json), parse.GetValue(dryRun),
                parse.GetValue(resume), ParseMemory(parse.GetValue(maxMemory)));
        }));
        return command;
    }

    /// <summary>Maps --format / --group-size / --sym / --asym to a <see cref="QuantFormat"/>.</summary>
    internal static QuantFormat ResolveFormat(string name, int? groupSize, bool sym, bool asym)
    {
        if (sym && asym) throw new CliException("--sym and --asym exclude each other; pass one.");
        if (groupSize is < 1) throw new CliException($"--group-size must be at least 1, not {groupSize}.");
        int? bits = name switch { "int2" => 2, "int3" => 3, "int4" => 4, "int8" => 8, _ => null };
        if (bits is { } b) return QuantFormat.Int(b, groupSize ?? 128, symmetric: sym);
        if (!QuantFormat.TryParse(name, out var format))
            throw new CliException($"--format: unknown format '{name}'; expected {FormatList}.");
        if (format.Kind != QuantKind.Int && groupSize is not null)
            throw new CliException($"--group-size {groupSize}: {format.Name} has fixed groups of {format.GroupSize}; --group-size applies to int formats only.");
        if (format.Kind != QuantKind.Int && (sym || asym))
            throw new CliException($"--sym/--asym apply to int formats only, not {format.Name}.");
        if (format.Kind == QuantKind.Int && (groupSize is not null || sym || asym))
            throw new CliException($"--format {name} already fixes group size and symmetry; drop --group-size/--sym/--asym or use --format int{format.Bits}.");
        return format;
    }

    /// <summary>--max-memory's value in bytes (null when not given).</summary>
    internal static long? ParseMemory(string? text)
    {
        if (text is null) return null;
        if (!ByteSize.TryParse(text, out long bytes))
            throw new CliException($"--max-memory: '{text}' is not a memory size; use e.g. 4G, 1500M or a number of bytes.");
        return bytes;
    }

    private static int Run(CliConsole console, string modelPath, string outputPath, QuantizeOptions options, string? calibPath,
        int calibSamples, int? calibSeqLen, int seed, bool force, bool json, bool dryRun = false, bool resume = false, long? maxMemory = null)
    {
        if (force && resume) throw new CliException("--force and --resume exclude each other: --force starts over, --resume continues.");
        options.Validate();
        if (options.NeedsCalibration && calibPath is null)
            throw new CliException($"--method {QuantizationPipeline.MethodName(options.Method)} needs calibration text: pass --calib FILE (e.g. a few MB of C4 or WikiText).");
        if (calibPath is not null && !File.Exists(calibPath)) throw new CliException($"{calibPath}: calibration file not found.");
        if (calibSamples < 1) throw new CliException($"--calib-samples must be at least 1, not {calibSamples}.");
        if (calibSeqLen is < 1) throw new CliException($"--calib-seq-len must be at least 1, not {calibSeqLen}.");
        if (options.ActOrder && !options.UsesGptq) throw new CliException("--act-order applies to --method gptq and mr-gptq only.");
        string fullOutput = Path.GetFullPath(outputPath);
        if (Directory.Exists(modelPath) && Path.GetFullPath(modelPath).TrimEnd('/') == fullOutput.TrimEnd('/'))
            throw new CliException($"{outputPath}: the output directory is the input model; choose another -o directory.");
        bool outputExists = Directory.Exists(outputPath) || File.Exists(outputPath);
        bool journalExists = QuantizationJournal.Exists(outputPath);
        if (File.Exists(outputPath) && !dryRun)
            throw new CliException($"{outputPath}: is a file; -o names the directory to write.");
        if (outputExists && !force && !resume && !dryRun)
            throw new CliException(journalExists
                ? $"{outputPath}: holds an unfinished run's journal; pass --resume to continue it or --force to start over."
                : $"{outputPath}: output already exists; choose another -o directory or pass --force to replace it.");
        if (resume && outputExists && !journalExists && !dryRun)
            return AlreadyComplete(console, outputPath, options, json);

        if (ModelSource.IsGguf(modelPath)) throw new CliException($"{modelPath}: quantize reads safetensors checkpoints, not GGUF; pass the model directory.");
        using var model = ModelSource.OpenModel(modelPath);
        if (dryRun)
        {
            if (outputExists && !force && !resume)
                console.Log(journalExists
                    ? $"warning: {outputPath} holds an unfinished run's journal; the real run needs --resume or --force."
                    : $"warning: {outputPath} exists; the real run needs another -o directory or --force.");
            int? length = calibPath is null ? null : Math.Min(calibSeqLen ?? 2048, model.Config.MaxPositions);
            return PrintPlan(console, modelPath, outputPath, QuantizationPlan.Create(model, options, calibPath is null ? null : calibSamples, length, maxMemory), json);
        }
        CalibrationData? calibration = null;
        if (calibPath is not null)
        {
            var tokenizer = ModelSource.OpenTokenizer(modelPath);
            int length = Math.Min(calibSeqLen ?? 2048, model.Config.MaxPositions);
            calibration = CalibrationData.FromText(tokenizer, File.ReadAllText(calibPath), model.Config.BosTokenId ?? tokenizer.BosTokenId,
                calibSamples, length, seed, calibPath);
        }

        var fingerprint = RunFingerprint.Create(model, options, calibration);
        QuantizationJournal journal;
        if (resume && journalExists)
        {
            journal = QuantizationJournal.Open(outputPath, fingerprint);
            console.Log($"resuming {outputPath}: {journal.FinishedLayers} of {model.Layers.Count} layers already done");
        }
        else
        {
            if (resume) console.Log($"{outputPath}: no journal to resume; starting from the first layer");
            journal = QuantizationJournal.Create(outputPath, fingerprint);
        }

        // Ctrl+C stops between calibration passes and leaves the journal resumable; a second Ctrl+C kills at once
        // (the journal stays consistent either way).
        using var interrupt = new CancellationTokenSource();
        int finished = journal.FinishedLayers;
        void OnCancel(object? sender, ConsoleCancelEventArgs e)
        {
            if (interrupt.IsCancellationRequested) return;
            e.Cancel = true;
            interrupt.Cancel();
            console.Log("interrupt: stopping; finished layers stay in the journal (Ctrl+C again to kill now)");
        }
        Console.CancelKeyPress += OnCancel;
        QuantizationResult result;
        try
        {
            var settings = new QuantizationRunSettings { Journal = journal, MaxMemoryBytes = maxMemory, CancellationToken = interrupt.Token };
            result = console.WithProgress(
                $"{QuantizationPipeline.MethodName(options.Method)} {options.Format.Name} ({model.Layers.Count} layers)", model.Layers.Count,
                report => QuantizationPipeline.Run(model, options, calibration, done => { finished = done; report(done); }, settings));
        }
        catch (OperationCanceledException)
        {
            throw new CliException($"interrupted after {finished} of {model.Layers.Count} layers; {outputPath} keeps their journal: "
                                   + "run the same command with --resume to continue.");
        }
        catch (Exception e) when (journal.FinishedLayers == 0 || e is ArgumentException)
        {
            // Nothing worth resuming — no layer finished, or the input itself is bad (a quantization failure names the
            // layer; a rerun would fail the same way): leave no trace of this run (an output directory we created goes
            // too). Anything else (I/O, memory) keeps the journal for --resume.
            try
            {
                Directory.Delete(journal.Directory, recursive: true);
                if (!outputExists) Directory.Delete(outputPath);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            throw;
        }
        finally
        {
            Console.CancelKeyPress -= OnCancel;
        }
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
        if (calibration is not null) rows.Add(("calibration", $"{calibration.SampleCount} × {calibration.SequenceLength} tokens, seed {seed}"));
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

    private static int PrintPlan(CliConsole console, string modelPath, string outputPath, QuantizationPlan plan, bool json)
    {
        if (json)
        {
            console.WriteJson(new Dictionary<string, object?>
            {
                ["dry_run"] = true,
                ["method"] = plan.Method,
                ["format"] = plan.Format,
                ["layers"] = plan.Layers.Select(l => new Dictionary<string, object>
                {
                    ["name"] = l.Name, ["rows"] = l.Rows, ["cols"] = l.Cols, ["bits_per_weight"] = l.BitsPerWeight,
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
            });
            return 0;
        }
        var shapes = plan.Layers.GroupBy(l => (l.Rows, l.Cols)).Select(g => $"{g.Count()} × [{g.Key.Rows}×{g.Key.Cols}]");
        console.WriteTable($"plan: {plan.Method} {plan.Format} of {Path.GetFileName(Path.GetFullPath(modelPath))} → {outputPath} (dry run, nothing written)", [
            ("layers", $"{plan.Layers.Count} linear layers: {string.Join(", ", shapes)}"),
            ("calibration", plan.CalibrationSamples is { } n ? $"{n} × {plan.CalibrationSequenceLength} tokens" : "none (data-free)"),
            ("quantized weights", $"{Format.Bytes(plan.QuantizedBytesBefore)} → {Format.Bytes(plan.QuantizedBytesAfter)} ({Format.Number(plan.AverageBitsPerWeight, "0.000")} bits/weight)"),
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
