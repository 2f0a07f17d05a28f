using System.Globalization;
using LlmPress.IO;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;
using LlmPress.Sparsity;

namespace LlmPress.Search;

/// <summary>
/// Assembles a configuration chosen from a <see cref="LevelDatabase"/> into a standard LlmPress checkpoint, through the
/// writers `quantize` and `prune` use (atomic directory, tokenizer files, report.json/report.md): bit levels as packed
/// per-layer INT formats (quantization_config.layer_formats says which), sparsity levels as dense weights with exact
/// zeros (sparsity_config per layer).
/// </summary>
public static class SearchCheckpointWriter
{
    /// <summary>Writes the checkpoint and returns its report (byte totals filled in).</summary>
    /// <param name="sourceDirectory">The uncompressed model's directory (config.json, tokenizer files).</param>
    /// <param name="store">Its weights.</param>
    /// <param name="database">The level database built from it.</param>
    /// <param name="levels">Level per linear (database order).</param>
    /// <param name="outputDirectory">Where the checkpoint goes.</param>
    /// <param name="overwrite">Replace an existing directory.</param>
    /// <param name="wallSeconds">Recorded in the report.</param>
    /// <exception cref="ArgumentException">Not one valid level per linear.</exception>
    public static QuantizationReport Write(string sourceDirectory, TensorStore store, LevelDatabase database, IReadOnlyList<int> levels,
        string outputDirectory, bool overwrite, double wallSeconds = 0)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(levels);
        database.Space.TotalCost(levels.ToArray()); // checks count and range
        var m = database.Manifest;
        var reports = new List<LayerReport>();
        var compressed = new List<CompressedLinear>();
        for (int i = 0; i < database.Linears.Count; i++)
        {
            var entry = database.Linears[i];
            int j = levels[i];
            var level = entry.Levels[j];
            long before = store.TryGetInfo(entry.Name + ".weight", out var info) ? info.ByteLength : 0;
            compressed.Add(database.Load(i, j));
            bool sparse = database.Kind == LevelKind.Sparsity;
            reports.Add(new LayerReport(entry.Name, entry.Rows, entry.Cols, level.Format, level.BitsPerWeight, level.WeightError, level.OutputError, 0,
                before, level.Bytes, sparse ? LevelText(database.Levels[j]) : null, sparse ? (long)entry.Rows * entry.Cols - level.NonZeros : null));
        }
        string method = $"search ({m.Method} level database)";
        if (database.Kind == LevelKind.Bits)
        {
            var options = QuantizeOptionsOf(database);
            var report = new QuantizationReport { Method = method, Format = "mixed int " + string.Join(",", database.Levels.Select(LevelText)), Layers = reports, WallSeconds = wallSeconds };
            var result = new QuantizationResult([.. compressed.Select(c => new QuantizedLayer(c.Name, c.Packed
                ?? throw new InvalidDataException($"{database.Directory}: {c.Name} is stored dense in a bit-level database.")))], report);
            return QuantizedCheckpointWriter.Write(sourceDirectory, store, result, options, outputDirectory, overwrite);
        }
        var perLayer = new Dictionary<string, SparsityPattern>(StringComparer.Ordinal);
        for (int i = 0; i < levels.Count; i++) perLayer[database.Linears[i].Name] = SparsityPattern.Unstructured(database.Levels[levels[i]]);
        var pruneOptions = new PruneOptions
        {
            Method = m.Method switch { "wanda" => PruneMethod.Wanda, "magnitude" => PruneMethod.Magnitude, _ => PruneMethod.SparseGpt },
            Sparsity = SparsityPattern.Unstructured(database.Levels[m.CalibrationLevel]),
            LayerSparsity = perLayer,
            Layout = SparseLayout.Dense,
        };
        var pruneReport = new QuantizationReport
        {
            Method = method, Format = "dense", Sparsity = "mixed " + string.Join(",", database.Levels.Select(LevelText)), Layers = reports, WallSeconds = wallSeconds,
        };
        return PrunedCheckpointWriter.Write(sourceDirectory, store, new PruningResult(compressed, pruneReport, []), pruneOptions, outputDirectory, overwrite);
    }

    // The database's quantize settings (the calibration level's format stands for the header; layer_formats has each layer's).
    private static QuantizeOptions QuantizeOptionsOf(LevelDatabase database)
    {
        var m = database.Manifest;
        int? group = m.Options.TryGetValue("group_size", out var g) && int.TryParse(g, NumberStyles.Integer, CultureInfo.InvariantCulture, out int gs) ? gs : null;
        bool symmetric = m.Options.TryGetValue("symmetric", out var s) && s == "true";
        return new QuantizeOptions
        {
            Method = m.Method == "rtn" ? QuantMethod.Rtn : QuantMethod.Gptq,
            Format = QuantFormat.Int((int)database.Levels[m.CalibrationLevel], group, symmetric),
        };
    }

    private static string LevelText(double level) => level.ToString("0.####", CultureInfo.InvariantCulture);
}
