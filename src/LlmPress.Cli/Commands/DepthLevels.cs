using System.CommandLine;
using System.Globalization;
using LlmPress.IO;
using LlmPress.Quantization.Pipeline;
using LlmPress.Search;
using LlmPress.Sparsity;

namespace LlmPress.Cli.Commands;

/// <summary>
/// `llmpress levels &lt;model&gt; -o DB --kind depth --calib FILE`: the depth database — levels.json with the model's hash
/// and, per attention and MLP sub-block, what dropping it alone does on the calibration windows (KL to the dense model,
/// perplexity, relative residual update). Nothing is compressed, so it takes seconds and needs no journal.
/// </summary>
internal static class DepthLevels
{
    public static int Run(CliConsole console, ParseResult parse, string modelPath, string outputPath, CalibrationOptions c, bool force, bool resume, bool dryRun, bool json)
    {
        if (parse.GetValue(c.Calib) is null)
            throw new CliException("--kind depth measures each sub-block's effect on calibration text: pass --calib FILE.");
        c.Check(parse);
        string manifestPath = Path.Combine(outputPath, LevelDatabase.ManifestName);
        if (resume && !dryRun)
        {
            if (!DepthDatabase.IsDepth(outputPath))
                throw new CliException($"--resume: a depth database is built in one step, so there is nothing to resume in {outputPath}; pass --force to rebuild it.");
            console.Log($"{outputPath}: already complete; nothing to resume");
            return Print(console, DepthDatabase.Open(outputPath), outputPath, json);
        }
        var (outputExists, _) = JournaledRun.CheckOutput(modelPath, outputPath, force, resume, dryRun);
        if (ModelSource.IsGguf(modelPath)) throw new CliException($"{modelPath}: levels reads safetensors checkpoints, not GGUF; pass the model directory.");
        if (QuantizedCheckpoint.TryLoad(modelPath) is not null || SparseCheckpoint.TryLoad(modelPath) is not null)
            throw new CliException($"{modelPath}: is an llmpress quantize or prune output; build the level database from the original model.");
        using var model = ModelSource.OpenModel(modelPath);
        if (model.Config.DroppedBlocks.Count > 0)
            throw new CliException($"{modelPath}: is already depth-pruned ({model.Config.DroppedBlocks.Count} dropped sub-blocks); build the level database from the original model.");
        int length = c.Length(parse, model)!.Value, samples = parse.GetValue(c.Samples);
        int units = DepthUnits.Count(model.Layers.Count);
        if (dryRun)
        {
            JournaledRun.WarnDryRun(console, outputPath, outputExists, false, force, resume);
            if (json)
            {
                console.WriteJson(new { model = modelPath, output = outputPath, kind = DepthDatabase.KindName, layers = model.Layers.Count, units, calibration = $"{samples} × {length} tokens",
                    forward_passes = (long)samples * (units + 1) });
                return 0;
            }
            console.WriteTable($"levels plan for {Path.GetFileName(Path.GetFullPath(modelPath))} (dry run: nothing written)",
            [
                ("levels", "depth: each attention and MLP sub-block kept or dropped"),
                ("units", $"{units} ({model.Layers.Count} layers × 2)"),
                ("calibration", $"{samples} × {length} tokens"),
                ("forward passes", $"{samples} × {units + 1} (dense, then each unit dropped alone)"),
                ("database", "levels.json only (a few KB)"),
                ("output", outputPath),
            ]);
            return 0;
        }
        if (force && outputExists && Directory.Exists(outputPath))
        {
            // Replace a finished database of any kind: its manifest first (so a kill leaves no database that looks complete), then its files.
            File.Delete(manifestPath);
            foreach (var file in Directory.EnumerateFiles(outputPath, "layer-*.safetensors")) File.Delete(file);
        }
        var calibration = c.Load(parse, model, modelPath)!;
        var database = console.WithProgress("single-drop measurements", calibration.SampleCount,
            report => DepthDatabase.Build(model, calibration, outputPath, (done, _) => report(done)));
        return Print(console, database, outputPath, json);
    }

    private static int Print(CliConsole console, DepthDatabase database, string outputPath, bool json)
    {
        var m = database.Manifest;
        if (json)
        {
            console.WriteJson(new
            {
                directory = outputPath, kind = m.Kind, levels = new[] { "dropped", "kept" }, calibration = m.Calibration, model = m.Model, decoder_layers = m.DecoderLayers,
                base_perplexity = m.BasePerplexity, wall_seconds = m.WallSeconds,
                units = m.Units.Select(u => new { name = u.Name, layer = u.Layer, block = u.Block, relative_update = u.RelativeUpdate, drop_kl = u.DropKl, drop_perplexity = u.DropPerplexity }),
            });
            return 0;
        }
        var rows = new List<(string, string)>();
        foreach (var u in m.Units)
            rows.Add((u.Name, $"dropped alone: KL {Format.Number(u.DropKl, "0.00000")}, perplexity {Format.Number(u.DropPerplexity, "0.###")}; "
                              + $"‖Δh‖²/‖h‖² {Format.Number(u.RelativeUpdate, "0.00e+00")}"));
        rows.Add(("base perplexity", Format.Number(m.BasePerplexity, "0.###")));
        rows.Add(("calibration", m.Calibration));
        rows.Add(("time", $"{Format.Number(m.WallSeconds, "0.00")} s"));
        rows.Add(("written", Path.Combine(outputPath, LevelDatabase.ManifestName)));
        console.WriteTable($"levels depth ({m.Units.Count} sub-blocks) of {m.Model}", rows);
        return 0;
    }
}
