using System.Diagnostics;
using System.Text.Json;
using LlmPress.Calibration;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Search;

/// <summary>One depth unit's entry in a <see cref="DepthDatabase"/>: what dropping it alone does on the calibration windows.</summary>
/// <param name="Name">"model.layers.3.self_attn" or "model.layers.3.mlp".</param>
/// <param name="Layer">Decoder layer.</param>
/// <param name="Block">"self_attn" or "mlp".</param>
/// <param name="RelativeUpdate">‖Δh‖²/‖h‖² of its residual update in the dense model.</param>
/// <param name="DropKl">KL(dense ‖ this unit dropped) per token.</param>
/// <param name="DropPerplexity">Perplexity with this unit dropped.</param>
public sealed record DepthUnitEntry(string Name, int Layer, string Block, double RelativeUpdate, double DropKl, double DropPerplexity);

/// <summary>levels.json of a depth database (kind "depth"): the model it belongs to and its units' single-drop statistics.</summary>
public sealed record DepthDatabaseManifest
{
    /// <summary>Layout version.</summary>
    public int FormatVersion { get; init; }

    /// <summary>Always "depth".</summary>
    public string Kind { get; init; } = "";

    /// <summary>Level values in cost order: 0 = dropped, 1 = kept.</summary>
    public IReadOnlyList<double> Levels { get; init; } = [];

    /// <summary>"128 × 256 tokens, seed 0 (file)".</summary>
    public string Calibration { get; init; } = "";

    /// <summary>The model's shape.</summary>
    public string Model { get; init; } = "";

    /// <summary>The model's content hash (<see cref="RunFingerprint.ModelContentHash"/>).</summary>
    public string ModelSha256 { get; init; } = "";

    /// <summary>Decoder layers of the model (units = 2 × this).</summary>
    public int DecoderLayers { get; init; }

    /// <summary>The dense model's perplexity on the calibration windows.</summary>
    public double BasePerplexity { get; init; }

    /// <summary>Wall time of the build.</summary>
    public double WallSeconds { get; init; }

    /// <summary>Per unit, in <see cref="DepthUnits"/> order.</summary>
    public IReadOnlyList<DepthUnitEntry> Units { get; init; } = [];
}

/// <summary>
/// The level database of depth pruning (`llmpress levels --kind depth`): nothing is compressed — a unit's levels are
/// its own weights or nothing — so the database is just levels.json with kind "depth": the model's hash (a search checks
/// it) and per unit its single-drop statistics on the calibration windows (<see cref="DepthSensitivity"/>), for the
/// report and for inspection; a search measures on its own calibration windows.
/// </summary>
public sealed class DepthDatabase
{
    /// <summary>The manifest's kind.</summary>
    public const string KindName = "depth";

    private DepthDatabase(string directory, DepthDatabaseManifest manifest)
    {
        Directory = directory;
        Manifest = manifest;
    }

    /// <summary>The database directory.</summary>
    public string Directory { get; }

    /// <summary>The manifest.</summary>
    public DepthDatabaseManifest Manifest { get; }

    /// <summary>Units (2 per decoder layer).</summary>
    public int UnitCount => Manifest.Units.Count;

    /// <summary>True when <paramref name="directory"/> holds a levels.json of kind "depth".</summary>
    public static bool IsDepth(string directory)
    {
        string path = Path.Combine(directory, LevelDatabase.ManifestName);
        if (!File.Exists(path)) return false;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("kind", out var kind)
                && kind.ValueKind == JsonValueKind.String && kind.GetString() == KindName;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Measures every unit of <paramref name="model"/> on <paramref name="calibration"/> and writes levels.json (atomically) in <paramref name="directory"/>.</summary>
    /// <exception cref="ArgumentException">No calibration windows.</exception>
    public static DepthDatabase Build(LlamaModel model, CalibrationData calibration, string directory, Action<int, int>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(calibration);
        ArgumentNullException.ThrowIfNull(directory);
        var clock = Stopwatch.StartNew();
        var measured = DepthSensitivity.Measure(model, calibration.Samples, progress, cancel);
        var units = new DepthUnitEntry[measured.DropKl.Length];
        for (int u = 0; u < units.Length; u++)
            units[u] = new DepthUnitEntry(DepthUnits.Name(u), DepthUnits.LayerOf(u), DroppedBlock.BlockText(DepthUnits.BlockOf(u)),
                measured.RelativeUpdate[u], measured.DropKl[u], measured.DropPerplexity[u]);
        var c = model.Config;
        var manifest = new DepthDatabaseManifest
        {
            FormatVersion = LevelDatabaseManifest.CurrentVersion,
            Kind = KindName,
            Levels = [DepthUnits.Dropped, DepthUnits.Kept],
            Calibration = $"{calibration.SampleCount} × {calibration.SequenceLength} tokens, seed {calibration.Seed} ({Path.GetFileName(calibration.Source)})",
            Model = $"{c.ModelType}, {c.LayerCount} layers, hidden {c.HiddenSize}, intermediate {c.IntermediateSize}, vocab {c.VocabSize}",
            ModelSha256 = RunFingerprint.ModelContentHash(model),
            DecoderLayers = c.LayerCount,
            BasePerplexity = measured.BasePerplexity,
            WallSeconds = clock.Elapsed.TotalSeconds,
            Units = units,
        };
        System.IO.Directory.CreateDirectory(directory);
        AtomicFile.WriteAllText(Path.Combine(directory, LevelDatabase.ManifestName), JsonSerializer.Serialize(manifest, LevelDatabaseManifest.Json));
        return new DepthDatabase(directory, manifest);
    }

    /// <summary>Opens the depth database in <paramref name="directory"/>.</summary>
    /// <exception cref="InvalidDataException">No levels.json, not of kind depth, or inconsistent (the message names the file).</exception>
    public static DepthDatabase Open(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string path = Path.Combine(directory, LevelDatabase.ManifestName);
        if (!File.Exists(path)) throw new InvalidDataException($"{directory}: not a level database (no {LevelDatabase.ManifestName}).");
        DepthDatabaseManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<DepthDatabaseManifest>(File.ReadAllBytes(path), LevelDatabaseManifest.Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a valid depth database manifest ({e.Message})", e);
        }
        if (manifest is null || manifest.Kind != KindName) throw new InvalidDataException($"{path}: not a depth database (kind '{manifest?.Kind}').");
        if (manifest.FormatVersion != LevelDatabaseManifest.CurrentVersion)
            throw new InvalidDataException($"{path}: level database version {manifest.FormatVersion}, this LlmPress reads {LevelDatabaseManifest.CurrentVersion}.");
        if (manifest.DecoderLayers < 1 || manifest.Units is null || manifest.Units.Count != DepthUnits.Count(manifest.DecoderLayers))
            throw new InvalidDataException($"{path}: the manifest lists {manifest.Units?.Count ?? 0} units for {manifest.DecoderLayers} decoder layers (2 per layer expected).");
        return new DepthDatabase(directory, manifest);
    }

    /// <summary>Checks that <paramref name="model"/> is the model the database was built from.</summary>
    /// <exception cref="InvalidDataException">"database built from another model", with what differs.</exception>
    public void CheckModel(LlamaModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Layers.Count != Manifest.DecoderLayers)
            throw new InvalidDataException($"{Directory}: database built from another model ({Manifest.DecoderLayers} decoder layers, this model {model.Layers.Count}).");
        string hash = RunFingerprint.ModelContentHash(model);
        if (hash != Manifest.ModelSha256)
            throw new InvalidDataException($"{Directory}: database built from another model (model hash {Short(Manifest.ModelSha256)}, this model {Short(hash)}; "
                                           + $"{Manifest.Model}); rebuild it with `llmpress levels --kind depth` on this model.");
    }

    private static string Short(string hash) => hash.Length > 12 ? hash[..12] + "…" : hash;
}
