using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using LlmPress.Calibration;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Search;

namespace LlmPress.Cli.Commands;

/// <summary>
/// `llmpress search &lt;model&gt; --db DB (--target-bits B | --target-sparsity S) --method evopress|dp -o DIR`: chooses a
/// level per linear from a level database under a global budget — EvoPress (KL to the base model as fitness) or the
/// linearity-theorem DP — and writes the chosen configuration as a standard checkpoint with a search report.
/// </summary>
internal static partial class SearchCommand
{
    private const string StateFile = ".search/state.json";

    public static Command Create(CliConsole console)
    {
        var model = new Argument<string>("model") { Description = "Model directory: the uncompressed checkpoint the level database was built from." };
        var db = new Option<string>("--db") { Description = "Level database directory (from `llmpress levels`).", Required = true };
        var targetBits = new Option<double?>("--target-bits") { Description = "Average nominal bits per weight over the database's linears (bit-level databases), e.g. 3.0." };
        var targetSparsity = new Option<double?>("--target-sparsity") { Description = "Fraction of the linears' weights pruned (sparsity-level databases), e.g. 0.6." };
        var dropBlocks = new Option<int?>("--drop-blocks")
        {
            Description = "Depth databases (`levels --kind depth`): drop exactly K of the 2 × layers attention and MLP sub-blocks (0 to 2 × layers). "
                + "Layers losing both are removed from the checkpoint; a lone dropped sub-block is stored with a zero output projection.",
        };
        var method = new Option<string>("--method")
        {
            Description = "evopress (default): evolutionary search with KL divergence to the base model as fitness. "
                + "dp: linearity-theorem sensitivities (--dp-metric on the calibration windows) and an exact knapsack. "
                + "With --drop-blocks: evopress swaps a dropped and a kept sub-block (starting from dp's answer); dp drops the K sub-blocks whose single drop raises --dp-metric least.",
            DefaultValueFactory = _ => "evopress",
        };
        var output = new Option<string>("--output", "-o")
        {
            Description = "Checkpoint directory to write (must not exist unless --force or --resume). EvoPress keeps its state in DIR/.search/state.json after every generation.",
            Required = true,
        };
        var calib = new Option<string?>("--calib") { Description = "Calibration text (required): the windows of the fitness and of the sensitivities." };
        var samples = new Option<int>("--calib-samples") { Description = "Calibration windows (default 32).", DefaultValueFactory = _ => 32 };
        var seqLen = new Option<int>("--calib-seq-len") { Description = "Tokens per calibration window (default 256, capped at the model's max positions).", DefaultValueFactory = _ => 256 };
        var seed = new Option<int>("--seed") { Description = "Seed of the calibration windows, the search and the sensitivity noise (default 0).", DefaultValueFactory = _ => 0 };
        var generations = new Option<int>("--generations") { Description = "evopress: generations (default 50).", DefaultValueFactory = _ => 50 };
        var offspring = new Option<int>("--offspring") { Description = "evopress: offspring per generation (default 16).", DefaultValueFactory = _ => 16 };
        var topK = new Option<int?>("--top-k") { Description = "evopress: KL over the base model's top K tokens plus a rest bucket (default: the full vocabulary)." };
        var dpMetric = new Option<string>("--dp-metric")
        {
            Description = "dp: the metric whose sensitivities αₗ are measured on the calibration windows: kl (default; KL to the base model) or perplexity.",
            DefaultValueFactory = _ => "kl",
        };
        var dpSensitivity = new Option<string>("--dp-sensitivity")
        {
            Description = "dp: what error αₗ is measured with: database (default; each level of each linear installed alone — right for GPTQ/SparseGPT, "
                + "whose error avoids the directions the inputs excite) or gaussian (isotropic noise of the same size, as HIGGS does for rotated grids).",
            DefaultValueFactory = _ => "database",
        };
        var eval = new Option<string?>("--eval") { Description = "Text on which the result's KL and perplexity against the base model are measured (default: the calibration windows)." };
        var evalWindows = new Option<int>("--eval-windows") { Description = "Non-overlapping --calib-seq-len windows of --eval text measured (default 32).", DefaultValueFactory = _ => 32 };
        var resume = new Option<bool>("--resume") { Description = "evopress: continue from DIR/.search/state.json (same settings; --generations may grow). Bit-identical to an uninterrupted run." };
        var force = new Option<bool>("--force") { Description = "Replace an existing output directory and discard its saved search state." };
        var sweep = new Option<string?>("--sweep")
        {
            Description = "Comma-separated targets (average bits, or sparsities for a sparsity database), e.g. 2.5,3,3.5: runs dp and evopress at each and "
                + "measures every uniform level too, writing DIR/sweep.json and the quality-vs-size plot instead of a checkpoint (--target-* not needed).",
        };
        var plot = new Option<string?>("--plot") { Description = "With --sweep: SVG file of KL to the base model against average bits (or sparsity) per series (default DIR/sweep.svg)." };
        var json = new Option<bool>("--json") { Description = "Print the search report (as in search.json) as JSON on stdout." };
        var command = new Command("search", "Choose a compression level per linear from a level database under a global budget (EvoPress or DP), "
            + "or with a depth database which K attention/MLP sub-blocks to drop, and write it as a checkpoint.")
        {
            model, db, targetBits, targetSparsity, dropBlocks, method, output, calib, samples, seqLen, seed, generations, offspring, topK, dpMetric, dpSensitivity, eval, evalWindows, resume, force, sweep, plot, json,
        };
        command.SetAction(parse => console.Guard(parse, () =>
        {
            var settings = new SearchSettings(parse.GetValue(model)!, parse.GetValue(db)!, parse.GetValue(output)!, parse.GetValue(method)!,
                parse.GetValue(targetBits), parse.GetValue(targetSparsity), parse.GetValue(calib), parse.GetValue(samples), parse.GetValue(seqLen), parse.GetValue(seed),
                parse.GetValue(generations), parse.GetValue(offspring), parse.GetValue(topK), parse.GetValue(dpMetric)!, parse.GetValue(dpSensitivity)!, parse.GetValue(eval), parse.GetValue(evalWindows),
                parse.GetValue(resume), parse.GetValue(force), parse.GetValue(sweep), parse.GetValue(plot), parse.GetValue(json), parse.GetValue(dropBlocks));
            // Depth databases and --drop-blocks have their own path (SearchDepth.cs).
            return settings.DropBlocks is not null || DepthDatabase.IsDepth(settings.Db) ? RunDepth(console, settings) : Run(console, settings);
        }));
        return command;
    }

    private sealed record SearchSettings(string Model, string Db, string Output, string Method, double? TargetBits, double? TargetSparsity, string? Calib,
        int Samples, int SeqLen, int Seed, int Generations, int Offspring, int? TopK, string DpMetric, string DpSensitivity, string? Eval, int EvalWindows, bool Resume, bool Force, string? Sweep, string? Plot, bool Json,
        int? DropBlocks = null);

    private static int Run(CliConsole console, SearchSettings s)
    {
        if (s.DpSensitivity is not ("database" or "gaussian")) throw new CliException($"--dp-sensitivity {s.DpSensitivity}: expected database or gaussian.");
        if (s.Sweep is not null && (s.TargetBits is not null || s.TargetSparsity is not null || s.Resume))
            throw new CliException("--sweep gives the targets itself; drop --target-bits, --target-sparsity and --resume.");
        if (s.Plot is not null && s.Sweep is null) throw new CliException("--plot draws a --sweep; pass --sweep TARGETS.");
        if (s.Sweep is null && (s.TargetBits is null) == (s.TargetSparsity is null)) throw new CliException("Give exactly one of --target-bits and --target-sparsity.");
        CheckSharedSettings(s);
        if (!Directory.Exists(s.Db)) throw new CliException($"{s.Db}: level database not found.");
        string statePath = PrepareOutput(s);

        var clock = Stopwatch.StartNew();
        using var model = ModelSource.OpenModel(s.Model);
        using var database = LevelDatabase.Open(s.Db);
        database.CheckModel(model);
        var sweepTargets = s.Sweep is null ? null : ParseTargets(s.Sweep);
        var kind = sweepTargets is not null ? database.Kind : s.TargetBits is null ? LevelKind.Sparsity : LevelKind.Bits;
        double target = s.TargetBits ?? s.TargetSparsity ?? double.NaN;
        foreach (double t in sweepTargets ?? [target]) SearchBudget.For(database, kind, t); // every target checked before any work
        double budget = sweepTargets is null ? SearchBudget.For(database, kind, target) : double.NaN;

        var calibration = LoadCalibration(s, model);
        var windows = calibration.Samples;
        if (sweepTargets is not null) return RunSweep(console, s, model, database, kind, sweepTargets, windows, clock);

        int[] chosen;
        IReadOnlyList<double> curve = [];
        double? predictedMetric = null, startFitness = null, finalFitness = null;
        if (s.Method == "evopress")
        {
            // The reference distributions come from the uncompressed model, before any configuration is applied.
            var fitness = new KlDivergenceFitness(model, windows, s.TopK);
            var options = EvoOptions(s, windows.Count);
            string fingerprint = Fingerprint(database, kind, budget, calibration, s);
            var saved = LoadSavedState(console, s, statePath, fingerprint);
            var start = SearchBudget.UniformAt(database, budget);
            var state = EvoPressSearch.Run(database.Space, budget, (levels, w) =>
            {
                database.Apply(model, levels.ToArray());
                return fitness.Evaluate(model, w);
            }, windows.Count, options, start, saved, SaveAndShow(console, s, statePath, fingerprint));
            chosen = state.Parent;
            // History[0] scores the start on the first stage's windows only; every later entry is on all windows (the
            // last stage's), so score a given start on all of them too for a comparable curve.
            var history = state.History.ToArray();
            if (start is not null)
            {
                database.Apply(model, start);
                history[0] = fitness.Evaluate(model, Enumerable.Range(0, windows.Count).ToArray());
            }
            database.Restore(model);
            curve = history;
            startFitness = history[0];
            finalFitness = state.ParentFitness;
            // Keep the state for a later --resume with more generations (the checkpoint write replaces the directory).
            WriteResult(console, s, model, database, chosen, kind, target, budget, windows, curve, startFitness, finalFitness, null, null, null, clock,
                () => EvoPressStateFile.Save(statePath, fingerprint, state));
            return 0;
        }

        // The DP's metric on the calibration windows: KL to the base model (default; measured on stories260K it tracks the
        // per-layer errors more additively than perplexity, whose DP answer lost to uniform int3) or perplexity.
        Func<LlamaModel, double> metric;
        if (s.DpMetric == "kl")
        {
            var reference = new KlDivergenceFitness(model, windows, s.TopK);
            var every = Enumerable.Range(0, windows.Count).ToArray();
            metric = m => reference.Evaluate(m, every);
        }
        else
            metric = m => WindowPerplexity.Evaluate(m, windows);
        var dp = console.WithProgress("sensitivities", database.Linears.Count,
            report => DpAllocation.Run(model, database, budget, metric, Source(s), s.Seed, (done, _) => report(done)));
        chosen = dp.Levels;
        predictedMetric = dp.Predicted;
        database.Apply(model, chosen);
        double measuredMetric = metric(model);
        database.Restore(model);
        WriteResult(console, s, model, database, chosen, kind, target, budget, windows, curve, null, null, dp, predictedMetric, measuredMetric, clock, null);
        return 0;
    }

    private static void WriteResult(CliConsole console, SearchSettings s, LlamaModel model, LevelDatabase database, int[] chosen, LevelKind kind, double target,
        double budget, IReadOnlyList<int[]> calibWindows, IReadOnlyList<double> curve, double? startFitness, double? finalFitness, DpAllocationResult? dp,
        double? predictedMetric, double? measuredMetric, Stopwatch clock, Action? afterWrite)
    {
        // Measurement windows: --eval text (non-overlapping windows) or the calibration windows; reference from the base model.
        var windows = MeasurementWindows(s, model, calibWindows, out string measuredOn);
        var all = Enumerable.Range(0, windows.Count).ToArray();
        var reference = new KlDivergenceFitness(model, windows);
        double basePerplexity = WindowPerplexity.Evaluate(model, windows);
        database.Apply(model, chosen);
        double kl = reference.Evaluate(model, all), perplexity = WindowPerplexity.Evaluate(model, windows);
        (double Level, double Kl, double Perplexity)? uniformAt = null;
        if (SearchBudget.UniformAt(database, budget) is { } u)
        {
            database.Apply(model, u);
            uniformAt = (database.Levels[u[0]], reference.Evaluate(model, all), WindowPerplexity.Evaluate(model, windows));
        }
        object? uniform = uniformAt is { } ua ? new { level = ua.Level, kl = ua.Kl, perplexity = ua.Perplexity } : null;
        database.Restore(model);

        var report = SearchCheckpointWriter.Write(s.Model, model.Store!, database, chosen, s.Output, overwrite: true, clock.Elapsed.TotalSeconds);
        afterWrite?.Invoke();
        double weights = SearchBudget.TotalWeights(database);
        double cost = database.Space.TotalCost(chosen);
        long bytes = 0;
        for (int i = 0; i < chosen.Length; i++) bytes += database.StorageBytes(i, chosen[i]);
        var layers = database.Linears.Select((l, i) => new
        {
            name = l.Name, level = database.Levels[chosen[i]], format = l.Levels[chosen[i]].Format, weight_error = l.Levels[chosen[i]].WeightError,
            output_error = l.Levels[chosen[i]].OutputError, bytes = l.Levels[chosen[i]].Bytes, alpha = dp?.Sensitivity.Alpha[i],
        }).ToArray();
        bool bits = kind == LevelKind.Bits;
        var result = new Dictionary<string, object?>
        {
            ["model"] = s.Model, ["database"] = s.Db, ["output"] = s.Output, ["method"] = s.Method, ["kind"] = bits ? "bits" : "sparsity",
            ["target"] = target, ["budget"] = budget, ["cost"] = cost,
            ["average_bits_nominal"] = bits ? cost / weights : null,
            ["average_bits_actual"] = bytes * 8.0 / weights,
            ["sparsity"] = bits ? null : 1 - cost / weights,
            ["compressed_bytes"] = bytes,
            ["checkpoint_bytes"] = report.TotalBytesAfter,
            ["fitness_start"] = startFitness, ["fitness_final"] = finalFitness, ["curve"] = curve,
            ["dp_metric"] = dp is null ? null : s.DpMetric,
            ["dp_sensitivity"] = dp is null ? null : s.DpSensitivity,
            ["dp_base_metric_calibration"] = dp?.Sensitivity.BaseMetric,
            ["dp_predicted_metric_calibration"] = predictedMetric,
            ["dp_predicted_corrected_metric_calibration"] = dp?.PredictedCorrected,
            ["dp_cross_layer_ratios"] = dp?.Correction?.Ratios,
            ["dp_measured_metric_calibration"] = measuredMetric,
            ["measured"] = new { on = measuredOn, kl, perplexity, base_perplexity = basePerplexity },
            ["uniform"] = uniform,
            ["seconds"] = clock.Elapsed.TotalSeconds,
            ["layers"] = layers,
        };
        string jsonText = JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true });
        AtomicFile.WriteAllText(Path.Combine(s.Output, "search.json"), jsonText);
        var md = new StringBuilder();
        md.AppendLine(CultureInfo.InvariantCulture, $"# search {s.Method}: {(bits ? $"{target:0.###} bits" : $"sparsity {target:0.###}")}").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"- average bits: nominal {(bits ? (cost / weights).ToString("0.####", CultureInfo.InvariantCulture) : "-")}, actual {bytes * 8.0 / weights:0.####}");
        md.AppendLine(CultureInfo.InvariantCulture, $"- measured on {measuredOn}: KL {kl:0.00000}, perplexity {perplexity:0.###} (base {basePerplexity:0.###})");
        if (uniformAt is { } um) md.AppendLine(CultureInfo.InvariantCulture, $"- uniform {um.Level:0.###} at the same cost: KL {um.Kl:0.00000}, perplexity {um.Perplexity:0.###}");
        if (predictedMetric is { } pp) md.AppendLine(CultureInfo.InvariantCulture, $"- dp {s.DpMetric} on the calibration windows: predicted {pp:0.#####} (first order), {dp!.PredictedCorrected:0.#####} (with the cross-layer correction), measured {measuredMetric:0.#####} (base {dp.Sensitivity.BaseMetric:0.#####})");
        if (curve.Count > 0) md.AppendLine(CultureInfo.InvariantCulture, $"- EvoPress best fitness per generation: {string.Join(", ", curve.Select(c => c.ToString("0.00000", CultureInfo.InvariantCulture)))}");
        md.AppendLine().AppendLine("| linear | level | format | weight error | output error | bytes |").AppendLine("|---|---|---|---|---|---|");
        foreach (var l in layers)
            md.AppendLine(CultureInfo.InvariantCulture, $"| {l.name} | {l.level:0.####} | {l.format} | {l.weight_error:0.000e+00} | {(l.output_error is { } oe ? oe.ToString("0.000e+00", CultureInfo.InvariantCulture) : "-")} | {l.bytes} |");
        AtomicFile.WriteAllText(Path.Combine(s.Output, "search.md"), md.ToString());

        if (s.Json)
        {
            console.WriteJson(result);
            return;
        }
        var rows = new List<(string, string)>();
        foreach (var l in layers) rows.Add((l.name, $"{l.level:0.####}  {l.format}  t² {l.weight_error:0.00e+00}  {Format.Bytes(l.bytes)}"));
        rows.Add(("average bits", bits ? $"nominal {cost / weights:0.###}, actual {bytes * 8.0 / weights:0.###}" : $"actual {bytes * 8.0 / weights:0.###}"));
        if (!bits) rows.Add(("sparsity", $"{1 - cost / weights:0.####}"));
        rows.Add(("measured", $"KL {kl:0.00000}, perplexity {perplexity:0.###} (base {basePerplexity:0.###}) on {measuredOn}"));
        if (uniformAt is { } un) rows.Add(($"uniform {un.Level:0.###}", $"KL {un.Kl:0.00000}, perplexity {un.Perplexity:0.###}"));
        if (predictedMetric is { } p)
            rows.Add(($"dp {s.DpMetric} (calibration)", $"predicted {p:0.#####} first order, {dp!.PredictedCorrected:0.#####} corrected; measured {measuredMetric:0.#####}; base {dp.Sensitivity.BaseMetric:0.#####}"));
        if (curve.Count > 0) rows.Add(("evopress curve", string.Join(" ", curve.Select(c => c.ToString("0.0000", CultureInfo.InvariantCulture)))));
        rows.Add(("time", $"{clock.Elapsed.TotalSeconds:0.0} s"));
        rows.Add(("written", s.Output));
        console.WriteTable($"search {s.Method} {(bits ? $"--target-bits {target}" : $"--target-sparsity {target}")}", rows);
    }

    private static double[] ParseTargets(string text) =>
        [.. text.Split(',', StringSplitOptions.TrimEntries).Select(t => double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v)
            ? v : throw new CliException($"--sweep: '{t}' is not a number; give targets such as 2.5,3,3.5."))];

    // dp and evopress at every target plus every uniform level, KL to the base model on the measurement windows, and the plot.
    private static int RunSweep(CliConsole console, SearchSettings s, LlamaModel model, LevelDatabase database, LevelKind kind, double[] targets,
        IReadOnlyList<int[]> windows, Stopwatch clock)
    {
        bool bits = kind == LevelKind.Bits;
        double weights = SearchBudget.TotalWeights(database);
        var measureOn = MeasurementWindows(s, model, windows, out string measuredOn);
        var every = Enumerable.Range(0, measureOn.Count).ToArray();
        var reference = new KlDivergenceFitness(model, measureOn);
        var fitness = new KlDivergenceFitness(model, windows, s.TopK);
        var calibrationWindows = Enumerable.Range(0, windows.Count).ToArray();
        Func<LlamaModel, double> metric = s.DpMetric == "kl" ? m => fitness.Evaluate(m, calibrationWindows) : m => WindowPerplexity.Evaluate(m, windows);
        var full = console.WithProgress("sensitivities", database.Linears.Count,
            report => DpAllocation.Run(model, database, database.Space.CostRange().Max, metric, Source(s), s.Seed, (done, _) => report(done)));

        var points = new List<(string Series, double Target, double X, double Kl, double Perplexity, DpAllocationResult? Dp, double? CalibrationMetric)>();
        void Measure(string series, double t, int[] levels, DpAllocationResult? dp = null)
        {
            database.Apply(model, levels);
            double cost = database.Space.TotalCost(levels);
            double? calibration = dp is null ? null : metric(model);
            points.Add((series, t, bits ? cost / weights : 1 - cost / weights, reference.Evaluate(model, every), WindowPerplexity.Evaluate(model, measureOn), dp, calibration));
            database.Restore(model);
        }
        for (int j = 0; j < database.Levels.Count; j++) Measure("uniform", database.Levels[j], Enumerable.Repeat(j, database.Linears.Count).ToArray());
        foreach (double t in targets)
        {
            double budget = SearchBudget.For(database, kind, t);
            var dp = DpAllocation.Solve(database, full.Sensitivity, budget, full.Correction);
            Measure("dp", t, dp.Levels, dp);
            var options = EvoOptions(s, windows.Count);
            var state = EvoPressSearch.Run(database.Space, budget, (levels, w) =>
            {
                database.Apply(model, levels.ToArray());
                return fitness.Evaluate(model, w);
            }, windows.Count, options, SearchBudget.UniformAt(database, budget));
            database.Restore(model);
            Measure("evopress", t, state.Parent);
            if (console.ErrorIsTerminal) console.Log($"target {t}: done");
        }

        string xLabel = bits ? "average bits per weight (nominal)" : "sparsity";
        var svg = new LlmPress.Evaluation.SvgPlot { Title = $"KL to the base model vs {xLabel} ({measuredOn})", XLabel = xLabel, YLabel = "KL divergence (nats/token)", LogY = true };
        foreach (string series in new[] { "uniform", "dp", "evopress" })
            svg.Add(series, points.Where(p => p.Series == series).OrderBy(p => p.X).Select(p => (p.X, p.Kl)));
        Directory.CreateDirectory(s.Output);
        string plotPath = s.Plot ?? Path.Combine(s.Output, "sweep.svg");
        AtomicFile.WriteAllText(plotPath, svg.ToSvg());
        var result = new
        {
            model = s.Model, database = s.Db, kind = bits ? "bits" : "sparsity", measured_on = measuredOn, plot = plotPath, seconds = clock.Elapsed.TotalSeconds,
            dp_metric = s.DpMetric,
            points = points.Select(p => new
            {
                series = p.Series, target = p.Target, x = p.X, kl = p.Kl, perplexity = p.Perplexity,
                dp_predicted_metric_calibration = p.Dp?.Predicted, dp_predicted_corrected_metric_calibration = p.Dp?.PredictedCorrected,
                dp_measured_metric_calibration = p.CalibrationMetric,
            }),
        };
        AtomicFile.WriteAllText(Path.Combine(s.Output, "sweep.json"), JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
        if (s.Json)
        {
            console.WriteJson(result);
            return 0;
        }
        console.WriteTable($"search sweep ({measuredOn})", [.. points.Select(p => ($"{p.Series} {p.Target:0.###}",
            $"{(bits ? "bits" : "sparsity")} {p.X:0.###}  KL {p.Kl:0.00000}  perplexity {p.Perplexity:0.###}"
            + (p.Dp is { } d ? $"  (calibration {s.DpMetric}: predicted {d.Predicted:0.#####} first order, {d.PredictedCorrected:0.#####} corrected, measured {p.CalibrationMetric:0.#####})" : ""))),
            ("plot", plotPath), ("time", $"{clock.Elapsed.TotalSeconds:0.0} s")]);
        return 0;
    }

    private static SensitivitySource Source(SearchSettings s) => s.DpSensitivity == "gaussian" ? SensitivitySource.Gaussian : SensitivitySource.Database;

    // --eval text in non-overlapping windows of the calibration length, or the calibration windows themselves.
    private static IReadOnlyList<int[]> MeasurementWindows(SearchSettings s, LlamaModel model, IReadOnlyList<int[]> calibWindows, out string measuredOn)
    {
        measuredOn = "calibration windows";
        if (s.Eval is null) return calibWindows;
        var tokenizer = ModelSource.OpenTokenizer(s.Model);
        int? bos = model.Config.BosTokenId ?? tokenizer.BosTokenId;
        int[] encoded = tokenizer.Encode(File.ReadAllText(s.Eval));
        int[] tokens = bos is { } b ? [b, .. encoded] : encoded;
        int length = calibWindows[0].Length;
        int count = Math.Min(s.EvalWindows, tokens.Length / length);
        if (count == 0) throw new CliException($"{s.Eval}: the text yields {tokens.Length} tokens, fewer than one window of {length}.");
        var list = new List<int[]>();
        for (int w = 0; w < count; w++) list.Add(tokens[(w * length)..((w + 1) * length)]);
        measuredOn = $"{s.Eval} ({count} × {length} tokens)";
        return list;
    }

    // Everything that changes the search's trajectory (not --generations: a resumed run may go further).
    private static string Fingerprint(LevelDatabase database, LevelKind kind, double budget, CalibrationData calibration, SearchSettings s)
    {
        var text = new StringBuilder();
        text.Append(database.Manifest.ModelSha256).Append('|');
        foreach (var layer in database.Manifest.Layers) text.Append(layer.Sha256).Append(',');
        text.Append(CultureInfo.InvariantCulture, $"|{kind}|{budget:R}");
        return HashWithRunSettings(text, calibration, s);
    }

    // Appends what every search's trajectory depends on — the calibration windows, seed, offspring, top-K — and hashes.
    private static string HashWithRunSettings(StringBuilder text, CalibrationData calibration, SearchSettings s)
    {
        text.Append(CultureInfo.InvariantCulture, $"|{calibration.Source}|{calibration.SampleCount}|{calibration.SequenceLength}|{s.Seed}|{s.Offspring}|{s.TopK}");
        foreach (var w in calibration.Samples) text.Append(w.Length).Append(':').Append(w[0]).Append(':').Append(w[^1]).Append(';');
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    // The checks bits, sparsity and depth searches share, before any model is opened.
    private static void CheckSharedSettings(SearchSettings s)
    {
        if (s.Method is not ("evopress" or "dp")) throw new CliException($"--method {s.Method}: expected evopress or dp.");
        if (s.DpMetric is not ("kl" or "perplexity")) throw new CliException($"--dp-metric {s.DpMetric}: expected kl or perplexity.");
        if (s.Calib is null) throw new CliException("search needs calibration text: pass --calib FILE.");
        if (!File.Exists(s.Calib)) throw new CliException($"{s.Calib}: calibration file not found.");
        if (s.Eval is not null && !File.Exists(s.Eval)) throw new CliException($"{s.Eval}: evaluation file not found.");
        if (s.Samples < 1) throw new CliException($"--calib-samples must be at least 1, not {s.Samples}.");
        if (s.SeqLen < 2) throw new CliException($"--calib-seq-len must be at least 2, not {s.SeqLen}.");
        if (s.EvalWindows < 1) throw new CliException($"--eval-windows must be at least 1, not {s.EvalWindows}.");
        if (s.Generations < 0 || s.Offspring < 1) throw new CliException("--generations must be ≥ 0 and --offspring ≥ 1.");
        if (s.TopK is < 1) throw new CliException($"--top-k must be at least 1, not {s.TopK}.");
        if (s.Resume && s.Force) throw new CliException("--resume and --force exclude each other; pass one.");
        if (s.Resume && s.Method != "evopress") throw new CliException("--resume continues an evopress search; dp has no state to resume.");
    }

    // Refuses an existing output unless --force or --resume; with --force drops its saved search state. Returns the state's path.
    private static string PrepareOutput(SearchSettings s)
    {
        bool exists = Directory.Exists(s.Output) || File.Exists(s.Output);
        if (exists && !s.Force && !s.Resume) throw new CliException($"{s.Output}: output already exists; choose another -o directory, pass --force to replace it or --resume to continue its search.");
        string statePath = Path.Combine(s.Output, StateFile);
        if (s.Force && File.Exists(statePath)) File.Delete(statePath);
        return statePath;
    }

    private static CalibrationData LoadCalibration(SearchSettings s, LlamaModel model)
    {
        var tokenizer = ModelSource.OpenTokenizer(s.Model);
        int? bos = model.Config.BosTokenId ?? tokenizer.BosTokenId;
        int length = Math.Min(s.SeqLen, model.Config.MaxPositions);
        return CalibrationData.FromText(tokenizer, File.ReadAllText(s.Calib!), bos, s.Samples, length, s.Seed, s.Calib!);
    }

    // The last stage scores every calibration window: the parent is then compared on the same windows each generation,
    // so the curve is monotone and comparable across generations (EvoPress' growing token counts, capped).
    private static EvoPressOptions EvoOptions(SearchSettings s, int windowCount) => new()
    {
        Generations = s.Generations, Offspring = s.Offspring, Seed = s.Seed, WindowsPerStage = [Math.Min(4, windowCount), windowCount],
    };

    private static EvoPressState? LoadSavedState(CliConsole console, SearchSettings s, string statePath, string fingerprint)
    {
        var saved = s.Resume ? EvoPressStateFile.Load(statePath, fingerprint) : null;
        if (saved is not null) console.Log($"resuming the search at generation {saved.Generation}");
        return saved;
    }

    // After every generation: the state saved for --resume, and on a terminal the best KL so far.
    private static Action<EvoPressState> SaveAndShow(CliConsole console, SearchSettings s, string statePath, string fingerprint) => state =>
    {
        EvoPressStateFile.Save(statePath, fingerprint, state);
        if (console.ErrorIsTerminal)
            console.Log($"generation {state.Generation}/{s.Generations}  best KL {state.ParentFitness:0.00000}  {Bar(state.Generation, s.Generations)}");
    };

    private static string Bar(int done, int total)
    {
        int width = 20, filled = total == 0 ? width : Math.Min(width, done * width / total);
        return "[" + new string('#', filled) + new string('.', width - filled) + "]";
    }
}
