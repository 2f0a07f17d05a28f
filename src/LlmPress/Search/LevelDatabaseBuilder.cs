using System.Diagnostics;
using System.Text.Json;
using LlmPress.Calibration;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Search;

/// <summary>What a level database will take on disk, estimated before any work.</summary>
/// <param name="DatabaseBytes">The finished database: every linear at every level (plus file headers).</param>
/// <param name="JournalBytes">The peak of the run's journal beside it: the calibration level of every layer, and the
/// calibration hidden states (two copies while a layer is recorded); removed when the database is complete.</param>
public sealed record LevelDatabaseEstimate(long DatabaseBytes, long JournalBytes)
{
    /// <summary>Peak disk use of the run.</summary>
    public long TotalBytes => DatabaseBytes + JournalBytes;
}

/// <summary>
/// Builds a <see cref="LevelDatabase"/>: <see cref="LayerwisePipeline"/> with a <see cref="LevelsStep"/>, one decoder
/// layer at a time, true-sequential, with the model compressed at the calibration level propagating to later layers;
/// each layer's levels go to one file as soon as the layer is done, and the pipeline's journal makes the run
/// resumable bit-identically. levels.json is written last; then the journal is removed.
/// </summary>
public static class LevelDatabaseBuilder
{
    // Safetensors header allowance per layer file (names and offsets of 7 linears × levels × 3 tensors, metadata).
    private const long HeaderBytesPerFile = 64 * 1024;

    /// <summary>The fingerprint of building <paramref name="options"/>' database of <paramref name="model"/> on <paramref name="calibration"/> (its journal's).</summary>
    public static RunFingerprint Fingerprint(LlamaModel model, LevelDatabaseOptions options, CalibrationData? calibration)
    {
        ArgumentNullException.ThrowIfNull(options);
        return RunFingerprint.Create(model, options.FingerprintFields(), calibration);
    }

    /// <summary>Disk use of a build with <paramref name="samples"/> × <paramref name="sequenceLength"/> calibration tokens (null: none).</summary>
    public static LevelDatabaseEstimate Estimate(LlamaModel model, LevelDatabaseOptions options, int? samples, int? sequenceLength)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var levels = options.OrderedLevels;
        int calibration = options.CalibrationIndex;
        long database = 0, journal = 0;
        foreach (var layer in model.Layers)
        {
            database += HeaderBytesPerFile;
            journal += HeaderBytesPerFile;
            foreach (var linear in layer.Linears)
            {
                int rows = linear.OutFeatures, cols = linear.InFeatures;
                for (int j = 0; j < levels.Length; j++)
                {
                    long bytes = options.Kind == LevelKind.Bits
                        ? (long)Math.Ceiling(options.FormatFor(levels[j]).BitsPerWeight(cols) * rows * cols / 8)
                        : (long)rows * cols * DTypeInfo.SizeOf(linear.Weight.Type);
                    database += bytes;
                    if (j == calibration) journal += bytes;
                }
            }
        }
        if (samples is int s && sequenceLength is int n) journal += 2L * s * n * model.Config.HiddenSize * sizeof(float);
        return new LevelDatabaseEstimate(database, journal);
    }

    /// <summary>Builds the database of <paramref name="model"/> in <paramref name="directory"/> (created if needed) and opens it.</summary>
    /// <param name="model">The uncompressed model; its layers are modified during the run and restored afterwards.</param>
    /// <param name="options">Levels and method.</param>
    /// <param name="calibration">Calibration windows; required for gptq, sparsegpt and wanda.</param>
    /// <param name="directory">The database directory.</param>
    /// <param name="layerDone">Called with the number of decoder layers finished so far.</param>
    /// <param name="settings">Journal (in <paramref name="directory"/>, to resume; removed on success), memory budget, cancellation.</param>
    /// <exception cref="ArgumentException">Bad options or missing calibration.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the journal and the finished layers' files stay for a resume.</exception>
    public static LevelDatabase Build(LlamaModel model, LevelDatabaseOptions options, CalibrationData? calibration, string directory,
        Action<int>? layerDone = null, QuantizationRunSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(directory);
        options.Validate();
        if (options.NeedsCalibration && calibration is null)
            throw new ArgumentException($"Method {options.MethodName} is data-aware and needs calibration text (--calib FILE).");
        var clock = Stopwatch.StartNew();
        System.IO.Directory.CreateDirectory(directory);
        LayerwisePipeline.Run(model, new LevelsStep(options, directory), calibration, layerDone, settings);

        var layers = new List<LayerFileEntry>();
        long total = 0;
        for (int l = 0; l < model.Layers.Count; l++)
        {
            string name = LevelsStep.FileName(l), path = Path.Combine(directory, name);
            LinearLevels[]? linears;
            try
            {
                using var file = SafeTensorsFile.Open(path);
                linears = file.Metadata.TryGetValue(LevelsStep.MetadataKey, out var json)
                    ? JsonSerializer.Deserialize<LinearLevels[]>(json, LevelDatabaseManifest.Json) : null;
            }
            catch (Exception e) when (e is JsonException or InvalidDataException or FileNotFoundException)
            {
                throw new InvalidDataException($"{path}: unreadable level file ({e.Message}); pass --force to start over.", e);
            }
            if (linears is null || linears.Length != model.Layers[l].Linears.Count)
                throw new InvalidDataException($"{path}: the level file does not list the layer's linears; pass --force to start over.");
            long bytes = new FileInfo(path).Length;
            total += bytes;
            layers.Add(new LayerFileEntry(name, bytes, LevelDatabase.Sha256(path), linears));
        }
        var c = model.Config;
        var manifest = new LevelDatabaseManifest
        {
            FormatVersion = LevelDatabaseManifest.CurrentVersion,
            Kind = options.KindName,
            Levels = options.OrderedLevels,
            Method = options.MethodName,
            Options = options.FingerprintFields(),
            CalibrationLevel = options.CalibrationIndex,
            Calibration = calibration is null ? "none"
                : $"{calibration.SampleCount} × {calibration.SequenceLength} tokens, seed {calibration.Seed} ({Path.GetFileName(calibration.Source)})",
            Model = $"{c.ModelType}, {c.LayerCount} layers, hidden {c.HiddenSize}, intermediate {c.IntermediateSize}, vocab {c.VocabSize}",
            ModelSha256 = RunFingerprint.ModelContentHash(model),
            TotalBytes = total,
            WallSeconds = clock.Elapsed.TotalSeconds,
            Layers = layers,
        };
        AtomicFile.WriteAllText(Path.Combine(directory, LevelDatabase.ManifestName), JsonSerializer.Serialize(manifest, LevelDatabaseManifest.Json));
        if (settings?.Journal is { } journal && System.IO.Directory.Exists(journal.Directory))
            System.IO.Directory.Delete(journal.Directory, recursive: true);
        return LevelDatabase.Open(directory);
    }
}
