using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using LlmPress.Calibration;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Search;

namespace LlmPress.Cli.Commands;

/// <summary>
/// `llmpress search &lt;model&gt; --db DEPTH_DB --drop-blocks K --method evopress|dp -o DIR`: which K of the attention and
/// MLP sub-blocks to drop (<see cref="DepthSearch"/>), written as a standard checkpoint (<see cref="DepthCheckpointWriter"/>)
/// with search.json/search.md: the dropped units, every unit's single-drop KL and perplexity, predicted vs measured, the
/// EvoPress curve, and the naive baselines (the last K units; the K with the smallest single-drop KL).
/// </summary>
internal static partial class SearchCommand
{
    private static int RunDepth(CliConsole console, SearchSettings s)
    {
        if (!Directory.Exists(s.Db)) throw new CliException($"{s.Db}: level database not found.");
        if (!DepthDatabase.IsDepth(s.Db))
            throw new CliException($"--drop-blocks: {s.Db} is not a depth database; build one with `llmpress levels <model> -o DB --kind depth --calib FILE` "
                                   + "(a bit or sparsity database is searched with --target-bits or --target-sparsity).");
        if (s.TargetBits is not null || s.TargetSparsity is not null)
            throw new CliException($"{(s.TargetBits is not null ? "--target-bits" : "--target-sparsity")}: {s.Db} is a depth database; give --drop-blocks K (sub-blocks to drop) instead.");
        if (s.Sweep is not null || s.Plot is not null) throw new CliException("--sweep and --plot are for bit and sparsity databases; run --drop-blocks K once per K.");
        if (s.DropBlocks is not int k) throw new CliException($"{s.Db} is a depth database: give --drop-blocks K, the number of attention/MLP sub-blocks to drop.");
        CheckSharedSettings(s);
        string statePath = PrepareOutput(s);

        var clock = Stopwatch.StartNew();
        var database = DepthDatabase.Open(s.Db);
        using var model = ModelSource.OpenModel(s.Model);
        database.CheckModel(model);
        int layers = model.Layers.Count, units = DepthUnits.Count(layers);
        DepthUnits.Budget(layers, k); // K in 0..units, before any work

        var calibration = LoadCalibration(s, model);
        var windows = calibration.Samples;
        var every = Enumerable.Range(0, windows.Count).ToArray();

        // Every unit dropped alone on the calibration windows: the dp's sensitivities, EvoPress' start, the report.
        var single = console.WithProgress("single-drop measurements", windows.Count, report => DepthSensitivity.Measure(model, windows, (done, _) => report(done)));
        var bySmallestKl = DepthSearch.DropSmallest(single.DropKl, k);

        int[] chosen;
        IReadOnlyList<double> curve = [];
        double? startFitness = null, finalFitness = null, predicted = null, measuredMetric = null, baseMetric = null;
        EvoPressState? finalState = null;
        string? fingerprint = null;
        if (s.Method == "evopress")
        {
            var fitness = new KlDivergenceFitness(model, windows, s.TopK);
            var options = EvoOptions(s, windows.Count);
            fingerprint = DepthFingerprint(database, k, calibration, s);
            var saved = LoadSavedState(console, s, statePath, fingerprint);
            EvoPressState state;
            try
            {
                state = DepthSearch.Evolve(layers, k, (levels, w) =>
                {
                    DepthUnits.Apply(model, levels);
                    return fitness.Evaluate(model, w);
                }, windows.Count, bySmallestKl, options, saved, SaveAndShow(console, s, statePath, fingerprint));
            }
            finally
            {
                DepthUnits.Restore(model);
            }
            chosen = state.Parent;
            // History[0] scores the start on the first stage's windows; later entries use every window: rescore the start alike.
            var history = state.History.ToArray();
            DepthUnits.Apply(model, bySmallestKl);
            history[0] = fitness.Evaluate(model, every);
            DepthUnits.Restore(model);
            curve = history;
            startFitness = history[0];
            finalFitness = state.ParentFitness;
            finalState = state;
        }
        else
        {
            // dp: the metric's increase when each unit alone is dropped; the K smallest (the exact knapsack for unit costs).
            bool kl = s.DpMetric == "kl";
            baseMetric = kl ? 0 : single.BasePerplexity;
            var increase = kl ? single.DropKl : [.. single.DropPerplexity.Select(p => p - single.BasePerplexity)];
            chosen = DepthSearch.DropSmallest(increase, k);
            predicted = DepthSearch.Predict(baseMetric.Value, increase, chosen);
            // Measured on the same windows as the single drops (full-vocabulary KL, as they are); the reference is the dense model.
            var denseReference = kl ? new KlDivergenceFitness(model, windows) : null;
            DepthUnits.Apply(model, chosen);
            measuredMetric = denseReference is not null ? denseReference.Evaluate(model, every) : WindowPerplexity.Evaluate(model, windows);
            DepthUnits.Restore(model);
        }

        // Measurement (--eval text or the calibration windows) of the result and the naive baselines, against the dense model.
        var measureOn = MeasurementWindows(s, model, windows, out string measuredOn);
        var all = Enumerable.Range(0, measureOn.Count).ToArray();
        var reference = new KlDivergenceFitness(model, measureOn);
        double basePerplexity = WindowPerplexity.Evaluate(model, measureOn);
        (double Kl, double Perplexity) Measure(int[] levels)
        {
            DepthUnits.Apply(model, levels);
            try { return (reference.Evaluate(model, all), WindowPerplexity.Evaluate(model, measureOn)); }
            finally { DepthUnits.Restore(model); }
        }
        var result = Measure(chosen);
        var last = DepthSearch.DropLast(units, k);
        var lastK = Measure(last);
        var smallest = Measure(bySmallestKl);

        var written = DepthCheckpointWriter.Write(s.Model, model.Store!, layers, chosen, s.Output, overwrite: true);
        if (finalState is not null) EvoPressStateFile.Save(statePath, fingerprint!, finalState); // for a later --resume with more generations

        var dropped = Enumerable.Range(0, units).Where(u => chosen[u] == DepthUnits.Dropped).ToArray();
        var report = new Dictionary<string, object?>
        {
            ["model"] = s.Model, ["database"] = s.Db, ["output"] = s.Output, ["method"] = s.Method, ["kind"] = "depth",
            ["drop_blocks"] = k, ["units"] = units,
            ["dropped"] = dropped.Select(u => new { unit = u, name = DepthUnits.Name(u), layer = DepthUnits.LayerOf(u), block = DroppedBlock.BlockText(DepthUnits.BlockOf(u)) }).ToArray(),
            ["decoder_layers_written"] = written.DecoderLayers,
            ["removed_layers"] = written.RemovedLayers,
            ["zeroed_blocks"] = written.ZeroedBlocks.Select(b => new { layer = b.Layer, block = b.BlockName }).ToArray(),
            ["checkpoint_bytes"] = written.BytesAfter, ["source_bytes"] = written.BytesBefore,
            ["fitness_start"] = startFitness, ["fitness_final"] = finalFitness, ["curve"] = curve,
            ["dp_metric"] = s.Method == "dp" ? s.DpMetric : null,
            ["dp_base_metric_calibration"] = baseMetric,
            ["dp_predicted_metric_calibration"] = predicted,
            ["dp_measured_metric_calibration"] = measuredMetric,
            ["measured"] = new { on = measuredOn, kl = result.Kl, perplexity = result.Perplexity, base_perplexity = basePerplexity },
            ["baselines"] = new
            {
                drop_last = new { dropped = Names(last), kl = lastK.Kl, perplexity = lastK.Perplexity },
                drop_smallest_single_kl = new { dropped = Names(bySmallestKl), kl = smallest.Kl, perplexity = smallest.Perplexity },
            },
            ["seconds"] = clock.Elapsed.TotalSeconds,
            ["single_drop"] = Enumerable.Range(0, units).Select(u => new
            {
                name = DepthUnits.Name(u), dropped = chosen[u] == DepthUnits.Dropped, kl = single.DropKl[u], perplexity = single.DropPerplexity[u],
                relative_update = single.RelativeUpdate[u],
            }).ToArray(),
            ["single_drop_base_perplexity_calibration"] = single.BasePerplexity,
        };
        AtomicFile.WriteAllText(Path.Combine(s.Output, "search.json"), JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        var md = new StringBuilder();
        var ci = CultureInfo.InvariantCulture;
        md.AppendLine(ci, $"# search {s.Method}: drop {k} of {units} sub-blocks").AppendLine();
        md.AppendLine(ci, $"- dropped: {string.Join(", ", dropped.Select(DepthUnits.Name))}");
        md.AppendLine(ci, $"- written: {written.DecoderLayers} decoder layers (removed {(written.RemovedLayers.Count == 0 ? "none" : string.Join(", ", written.RemovedLayers))}); "
                          + $"zeroed sub-blocks: {(written.ZeroedBlocks.Count == 0 ? "none" : string.Join(", ", written.ZeroedBlocks.Select(b => $"{b.Layer}.{b.BlockName}")))}");
        md.AppendLine(ci, $"- measured on {measuredOn}: KL {result.Kl:0.00000}, perplexity {result.Perplexity:0.###} (base {basePerplexity:0.###})");
        md.AppendLine(ci, $"- baseline drop the last {k}: KL {lastK.Kl:0.00000}, perplexity {lastK.Perplexity:0.###}");
        md.AppendLine(ci, $"- baseline drop the {k} with the smallest single-drop KL: KL {smallest.Kl:0.00000}, perplexity {smallest.Perplexity:0.###}");
        if (predicted is { } pr) md.AppendLine(ci, $"- dp {s.DpMetric} on the calibration windows: predicted {pr:0.#####}, measured {measuredMetric:0.#####} (base {baseMetric:0.#####})");
        if (curve.Count > 0) md.AppendLine(ci, $"- EvoPress best fitness per generation: {string.Join(", ", curve.Select(c => c.ToString("0.00000", ci)))}");
        md.AppendLine().AppendLine("| sub-block | dropped | single-drop KL | single-drop perplexity | ‖Δh‖²/‖h‖² |").AppendLine("|---|---|---|---|---|");
        for (int u = 0; u < units; u++)
            md.AppendLine(ci, $"| {DepthUnits.Name(u)} | {(chosen[u] == DepthUnits.Dropped ? "yes" : "")} | {single.DropKl[u]:0.00000} | {single.DropPerplexity[u]:0.###} | {single.RelativeUpdate[u]:0.000e+00} |");
        AtomicFile.WriteAllText(Path.Combine(s.Output, "search.md"), md.ToString());

        if (s.Json)
        {
            console.WriteJson(report);
            return 0;
        }
        var rows = new List<(string, string)>
        {
            ("dropped", string.Join(", ", dropped.Select(DepthUnits.Name))),
            ("written", $"{s.Output}: {written.DecoderLayers} decoder layers, {Format.Bytes(written.BytesAfter)} (source {Format.Bytes(written.BytesBefore)})"),
            ("measured", $"KL {result.Kl:0.00000}, perplexity {result.Perplexity:0.###} (base {basePerplexity:0.###}) on {measuredOn}"),
            ($"drop last {k}", $"KL {lastK.Kl:0.00000}, perplexity {lastK.Perplexity:0.###}"),
            ($"smallest single-drop KL", $"KL {smallest.Kl:0.00000}, perplexity {smallest.Perplexity:0.###}"),
        };
        if (predicted is { } p) rows.Add(($"dp {s.DpMetric} (calibration)", $"predicted {p:0.#####}, measured {measuredMetric:0.#####}, base {baseMetric:0.#####}"));
        if (curve.Count > 0) rows.Add(("evopress curve", string.Join(" ", curve.Select(c => c.ToString("0.0000", ci)))));
        rows.Add(("time", $"{clock.Elapsed.TotalSeconds:0.0} s"));
        console.WriteTable($"search {s.Method} --drop-blocks {k}", rows);
        return 0;

        string[] Names(int[] levels) => [.. Enumerable.Range(0, units).Where(u => levels[u] == DepthUnits.Dropped).Select(DepthUnits.Name)];
    }

    // Everything that changes a depth search's trajectory (not --generations: a resumed run may go further).
    private static string DepthFingerprint(DepthDatabase database, int dropBlocks, CalibrationData calibration, SearchSettings s)
    {
        var text = new StringBuilder();
        text.Append(database.Manifest.ModelSha256).Append("|depth|").Append(dropBlocks);
        return HashWithRunSettings(text, calibration, s);
    }
}
