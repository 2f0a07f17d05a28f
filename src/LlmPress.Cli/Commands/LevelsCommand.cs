using System.CommandLine;
using System.Globalization;
using LlmPress.IO;
using LlmPress.Quantization.Pipeline;
using LlmPress.Search;
using LlmPress.Sparsity;

namespace LlmPress.Cli.Commands;

/// <summary>
/// `llmpress levels &lt;model&gt; -o DB --kind bits|sparsity --levels ...`: builds a level database — every
/// decoder-layer linear compressed at every level from one calibration pass, stored per layer with its errors — for a
/// search over per-layer levels. Journaled like `quantize`: an interrupted run continues with --resume.
/// </summary>
internal static class LevelsCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new Argument<string>("model") { Description = "Model directory (the uncompressed safetensors checkpoint)." };
        var output = new Option<string>("--output", "-o")
        {
            Description = "Database directory to write: levels.json and one layer-NNNNN.safetensors per decoder layer. Must not exist unless --force or --resume; "
                + "while the run is in progress it also holds a journal (.llmpress-journal), removed when levels.json is written.",
            Required = true,
        };
        var kind = new Option<string>("--kind")
        {
            Description = "bits: INT bit widths (quantization levels). sparsity: unstructured sparsities (pruning levels). "
                + "depth: every decoder layer's attention and MLP sub-block kept or dropped (for `search --drop-blocks K`; needs --calib, takes no --levels).",
            Required = true,
        };
        var levels = new Option<string?>("--levels")
        {
            Description = "Comma-separated levels, each once (required for bits and sparsity): bit widths 2–8 (e.g. 2,3,4,5,6) or sparsities in [0, 1) (e.g. 0.3,0.4,0.5,0.6,0.7). "
                + "Not for --kind depth, whose levels are always kept and dropped.",
        };
        var method = new Option<string?>("--method")
        {
            Description = "bits: gptq (default; needs --calib) or rtn. sparsity: sparsegpt (default; needs --calib), wanda (needs --calib) or magnitude.",
        };
        var groupSize = new Option<int?>("--group-size") { Description = "bits: columns per quantization group (default 128; a group never exceeds the layer's width)." };
        var perChannel = new Option<bool>("--per-channel") { Description = "bits: one group per output row instead of --group-size groups." };
        var sym = new Option<bool>("--sym") { Description = "bits: symmetric INT grid, no stored zero points." };
        var asym = new Option<bool>("--asym") { Description = "bits: asymmetric grid with zero points (the default)." };
        var damp = new Option<double>("--damp") { Description = "Hessian dampening for gptq/sparsegpt, as a fraction of mean(diag H) (default 0.01).", DefaultValueFactory = _ => 0.01 };
        var calibLevel = new Option<string?>("--calib-level")
        {
            Description = "The level installed in the model while later layers are calibrated, so they see a model compressed at that level "
                + "(EvoPress builds its database on a 3-bit model). Default: the middle level in cost order (4 of 2–6 bits, 0.5 of 0.3–0.7; the lower middle for an even count).",
        };
        var maxDisk = new Option<string?>("--max-disk")
        {
            Description = "Disk budget, e.g. 2G or 500M (K/M/G/T, binary): the run is refused before any work when the estimated peak (database + journal) exceeds it. Default: no limit.",
        };
        var dryRunOption = new Option<bool>("--dry-run") { Description = "Print the plan (levels, calibration, estimated database and journal disk use) and stop before any work; nothing is written." };
        var jsonOption = new Option<bool>("--json") { Description = "Print the result as JSON on stdout: per linear and level its format, bytes, bits per weight, non-zeros and errors (with --dry-run: the plan)." };
        var o = new OutputOptions();
        var c = new CalibrationOptions();
        var command = new Command("levels", "Build a level database: every decoder-layer linear compressed at every bit width or sparsity (one calibration pass), "
            + "with per-layer sizes and errors, for a search over per-layer levels.")
        {
            model, output, kind, levels, method, groupSize, perChannel, sym, asym, damp, calibLevel, c.Calib, c.Samples, c.SeqLen, c.Seed,
            o.Force, o.Resume, maxDisk, o.MaxMemory, dryRunOption, jsonOption,
        };
        command.SetAction(parse => console.Guard(parse, () =>
        {
            var levelKind = parse.GetValue(kind) switch
            {
                "bits" => LevelKind.Bits,
                "sparsity" => LevelKind.Sparsity,
                "depth" => LevelKind.Depth,
                var k => throw new CliException($"--kind: unknown kind '{k}'; expected bits, sparsity or depth."),
            };
            if (levelKind == LevelKind.Depth)
            {
                if (parse.GetValue(levels) is { } given)
                    throw new CliException($"--levels {given}: a depth database's levels are always kept and dropped per sub-block; omit --levels.");
                if (parse.GetValue(method) is not null || parse.GetValue(groupSize) is not null || parse.GetValue(perChannel) || parse.GetValue(sym) || parse.GetValue(asym)
                    || parse.GetValue(calibLevel) is not null)
                    throw new CliException("--method, --group-size, --per-channel, --sym, --asym and --calib-level do not apply to --kind depth (nothing is compressed).");
                return DepthLevels.Run(console, parse, parse.GetValue(model)!, parse.GetValue(output)!, c, parse.GetValue(o.Force), parse.GetValue(o.Resume),
                    parse.GetValue(dryRunOption), parse.GetValue(jsonOption));
            }
            if (parse.GetValue(levels) is null) throw new CliException($"--levels is required for --kind {parse.GetValue(kind)}: e.g. --levels 2,3,4,5,6.");
            bool bits = levelKind == LevelKind.Bits;
            string methodName = parse.GetValue(method) ?? (bits ? "gptq" : "sparsegpt");
            if (!bits && (parse.GetValue(sym) || parse.GetValue(asym) || parse.GetValue(groupSize) is not null || parse.GetValue(perChannel)))
                throw new CliException("--group-size, --per-channel, --sym and --asym apply to --kind bits only.");
            if (parse.GetValue(sym) && parse.GetValue(asym)) throw new CliException("--sym and --asym exclude each other; pass one.");
            if (parse.GetValue(perChannel) && parse.GetValue(groupSize) is not null) throw new CliException("--per-channel and --group-size exclude each other; pass one.");
            var options = new LevelDatabaseOptions
            {
                Kind = levelKind,
                Levels = ParseLevels(parse.GetValue(levels)!),
                QuantMethod = bits ? methodName switch
                {
                    "gptq" => QuantMethod.Gptq,
                    "rtn" => QuantMethod.Rtn,
                    _ => throw new CliException($"--method {methodName}: bit levels are built with gptq or rtn."),
                } : QuantMethod.Gptq,
                PruneMethod = bits ? PruneMethod.SparseGpt : methodName switch
                {
                    "sparsegpt" => PruneMethod.SparseGpt,
                    "wanda" => PruneMethod.Wanda,
                    "magnitude" => PruneMethod.Magnitude,
                    _ => throw new CliException($"--method {methodName}: sparsity levels are built with sparsegpt, wanda or magnitude."),
                },
                GroupSize = parse.GetValue(perChannel) ? null : parse.GetValue(groupSize) ?? 128,
                Symmetric = parse.GetValue(sym),
                DampPercent = parse.GetValue(damp),
                CalibrationLevel = parse.GetValue(calibLevel) is { } cl ? ParseLevel(cl, "--calib-level") : null,
            };
            try
            {
                options.Validate();
            }
            catch (ArgumentException e)
            {
                throw new CliException($"--levels {parse.GetValue(levels)}: {e.Message}");
            }
            long? diskBudget = null;
            if (parse.GetValue(maxDisk) is { } diskText)
                diskBudget = ByteSize.TryParse(diskText, out long b) ? b : throw new CliException($"--max-disk: '{diskText}' is not a size; use e.g. 2G, 500M or a number of bytes.");
            return Run(console, parse, parse.GetValue(model)!, parse.GetValue(output)!, options, c, parse.GetValue(o.Force), parse.GetValue(o.Resume),
                parse.GetValue(dryRunOption), parse.GetValue(jsonOption), diskBudget, JournaledRun.ParseMemory(parse.GetValue(o.MaxMemory)));
        }));
        return command;
    }

    private static double[] ParseLevels(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var result = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++) result[i] = ParseLevel(parts[i], "--levels");
        return result;
    }

    private static double ParseLevel(string text, string option) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v)
            ? v : throw new CliException($"{option}: '{text}' is not a number; give levels such as 2,3,4 or 0.3,0.5,0.7.");

    private static int Run(CliConsole console, ParseResult parse, string modelPath, string outputPath, LevelDatabaseOptions options, CalibrationOptions c,
        bool force, bool resume, bool dryRun, bool json, long? maxDisk, long? maxMemory)
    {
        if (options.NeedsCalibration && parse.GetValue(c.Calib) is null)
            throw new CliException($"--method {options.MethodName} is data-aware and needs calibration text: pass --calib FILE"
                                   + (options.Kind == LevelKind.Bits ? ", or use --method rtn." : ", or use --method magnitude."));
        c.Check(parse);
        var (outputExists, journalExists) = JournaledRun.CheckOutput(modelPath, outputPath, force, resume, dryRun);
        string manifestPath = Path.Combine(outputPath, LevelDatabase.ManifestName);
        if (resume && !journalExists && File.Exists(manifestPath) && !dryRun)
        {
            using var done = LevelDatabase.Open(outputPath);
            console.Log($"{outputPath}: already complete (no journal left); nothing to resume");
            return Print(console, done, outputPath, null, json);
        }
        if (ModelSource.IsGguf(modelPath)) throw new CliException($"{modelPath}: levels reads safetensors checkpoints, not GGUF; pass the model directory.");
        if (QuantizedCheckpoint.TryLoad(modelPath) is not null || SparseCheckpoint.TryLoad(modelPath) is not null)
            throw new CliException($"{modelPath}: is an llmpress quantize or prune output; build the level database from the original model.");
        using var model = ModelSource.OpenModel(modelPath);
        int? length = c.Length(parse, model);
        int? samples = length is null ? null : parse.GetValue(c.Samples);
        var estimate = LevelDatabaseBuilder.Estimate(model, options, samples, length);
        string levelsText = string.Join(",", options.OrderedLevels.Select(LevelDatabaseOptions.Text));
        if (dryRun)
        {
            JournaledRun.WarnDryRun(console, outputPath, outputExists, journalExists, force, resume);
            if (maxDisk is long budget && estimate.TotalBytes > budget)
                console.Log($"warning: the estimated peak disk use {Format.Bytes(estimate.TotalBytes)} exceeds --max-disk {Format.Bytes(budget)}; the real run would be refused.");
            return PrintPlan(console, modelPath, outputPath, options, model.Layers.Count, samples, length, estimate, json);
        }
        if (maxDisk is long limit && estimate.TotalBytes > limit)
            throw new CliException($"--max-disk {Format.Bytes(limit)}: the run needs an estimated {Format.Bytes(estimate.TotalBytes)} "
                                   + $"(database {Format.Bytes(estimate.DatabaseBytes)}, journal {Format.Bytes(estimate.JournalBytes)} while running); "
                                   + "raise --max-disk, give fewer levels or fewer calibration tokens.");
        if (force && outputExists && Directory.Exists(outputPath))
        {
            // Replace a finished database: its manifest first (so a kill leaves no database that looks complete), then its files.
            File.Delete(manifestPath);
            foreach (var file in Directory.EnumerateFiles(outputPath, "layer-*.safetensors")) File.Delete(file);
        }
        var calibration = c.Load(parse, model, modelPath);
        var fingerprint = LevelDatabaseBuilder.Fingerprint(model, options, calibration);
        var journal = JournaledRun.OpenJournal(console, outputPath, fingerprint, resume, journalExists, model.Layers.Count);
        var database = JournaledRun.Execute(console, journal, outputPath, outputExists, model.Layers.Count,
            $"levels {options.KindName} {levelsText} ({options.MethodName}, {model.Layers.Count} layers)", maxMemory,
            (settings, done) => LevelDatabaseBuilder.Build(model, options, calibration, outputPath, done, settings));
        using (database) return Print(console, database, outputPath, estimate, json);
    }

    private static int PrintPlan(CliConsole console, string modelPath, string outputPath, LevelDatabaseOptions options, int layers, int? samples, int? length,
        LevelDatabaseEstimate estimate, bool json)
    {
        string levelsText = string.Join(", ", options.OrderedLevels.Select(LevelDatabaseOptions.Text));
        string calibration = length is null ? "none" : $"{samples} × {length} tokens";
        if (json)
        {
            console.WriteJson(new
            {
                model = modelPath, output = outputPath, kind = options.KindName, levels = options.OrderedLevels, method = options.MethodName,
                calibration_level = options.OrderedLevels[options.CalibrationIndex], calibration, layers,
                estimated_database_bytes = estimate.DatabaseBytes, estimated_journal_bytes = estimate.JournalBytes, estimated_peak_bytes = estimate.TotalBytes,
            });
            return 0;
        }
        console.WriteTable($"levels plan for {Path.GetFileName(Path.GetFullPath(modelPath))} (dry run: nothing written)",
        [
            ("levels", $"{options.KindName} {levelsText} ({options.MethodName})"),
            ("calibration level", LevelDatabaseOptions.Text(options.OrderedLevels[options.CalibrationIndex])),
            ("calibration", calibration),
            ("decoder layers", layers.ToString(CultureInfo.InvariantCulture)),
            ("database (estimate)", Format.Bytes(estimate.DatabaseBytes)),
            ("journal while running (estimate)", Format.Bytes(estimate.JournalBytes)),
            ("peak disk (estimate)", Format.Bytes(estimate.TotalBytes)),
            ("output", outputPath),
        ]);
        return 0;
    }

    private static int Print(CliConsole console, LevelDatabase database, string outputPath, LevelDatabaseEstimate? estimate, bool json)
    {
        var m = database.Manifest;
        if (json)
        {
            console.WriteJson(new
            {
                directory = outputPath, kind = m.Kind, levels = m.Levels, method = m.Method, calibration_level = m.Levels[m.CalibrationLevel],
                calibration = m.Calibration, model = m.Model, total_bytes = m.TotalBytes, estimated_database_bytes = estimate?.DatabaseBytes,
                wall_seconds = m.WallSeconds,
                linears = database.Linears.Select(l => new
                {
                    name = l.Name, rows = l.Rows, cols = l.Cols,
                    levels = l.Levels.Select((e, j) => new
                    {
                        level = m.Levels[j], format = e.Format, bytes = e.Bytes, bits_per_weight = e.BitsPerWeight, nonzeros = e.NonZeros,
                        weight_error = e.WeightError, output_error = e.OutputError,
                    }),
                }),
            });
            return 0;
        }
        var rows = new List<(string, string)>();
        foreach (var l in database.Linears)
            rows.Add((l.Name, string.Join("  ", l.Levels.Select((e, j) =>
                $"{LevelDatabaseOptions.Text(m.Levels[j])}: {(e.OutputError is { } oe ? Format.Number(oe, "0.00e+00") : Format.Number(e.WeightError, "0.00e+00") + "w")} {Format.Bytes(e.Bytes)}"))));
        rows.Add(("errors", "relative output error per level (with a trailing w: relative weight error, built without calibration)"));
        rows.Add(("calibration", $"{m.Calibration}; level {LevelDatabaseOptions.Text(m.Levels[m.CalibrationLevel])} propagated"));
        rows.Add(("disk", $"{Format.Bytes(m.TotalBytes)} in {m.Layers.Count} layer files" + (estimate is null ? "" : $" (estimated {Format.Bytes(estimate.DatabaseBytes)})")));
        rows.Add(("time", $"{Format.Number(m.WallSeconds, "0.00")} s"));
        rows.Add(("written", outputPath));
        console.WriteTable($"levels {m.Kind} {string.Join(",", m.Levels.Select(LevelDatabaseOptions.Text))} ({m.Method}) of {m.Model}", rows);
        return 0;
    }
}
