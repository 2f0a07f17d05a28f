using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using LlmPress.Calibration;
using LlmPress.Models;

namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// What makes two quantize (or prune) runs produce the same output: LlmPress version and build, model (config, tensor table and a sample
/// of every tensor's bytes), method, format and options, and the exact calibration tokens. A journal is resumed only
/// by a run with an equal fingerprint. Deliberately left out: paths (a moved model or a relative path still resumes),
/// thread count (results do not depend on it) and --max-memory (spilled and in-RAM runs are bit-identical).
/// </summary>
public sealed class RunFingerprint
{
    /// <summary>Bytes hashed from the start and from the end of every tensor (cheap even for a 70B checkpoint).</summary>
    public const int SampledBytes = 4096;

    private readonly SortedDictionary<string, string> _fields;

    /// <summary>A fingerprint from its fields (as read back from a journal manifest).</summary>
    public RunFingerprint(IEnumerable<KeyValuePair<string, string>> fields)
    {
        ArgumentNullException.ThrowIfNull(fields);
        _fields = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in fields) _fields[k] = v;
    }

    /// <summary>Field name → value, sorted by name.</summary>
    public IReadOnlyDictionary<string, string> Fields => _fields;

    /// <summary>The fingerprint of quantizing <paramref name="model"/> with <paramref name="options"/> on <paramref name="calibration"/>.</summary>
    public static RunFingerprint Create(LlamaModel model, QuantizeOptions options, CalibrationData? calibration)
    {
        ArgumentNullException.ThrowIfNull(options);
        return Create(model, QuantizationFields(options), calibration);
    }

    /// <summary>
    /// The fingerprint of compressing <paramref name="model"/> on <paramref name="calibration"/> with the settings
    /// <paramref name="settings"/> (name → value; every setting that changes the result must be in it).
    /// </summary>
    public static RunFingerprint Create(LlamaModel model, IReadOnlyDictionary<string, string> settings, CalibrationData? calibration)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(settings);
        var c = model.Config;
        var fields = new Dictionary<string, string>
        {
            ["llmpress_version"] = typeof(RunFingerprint).Assembly.GetName().Version?.ToString() ?? "unknown",
            // The library build (deterministic builds give the same id for the same code): a journal is not resumed by
            // a different LlmPress.Core, whose numerics could differ.
            ["llmpress_build"] = typeof(RunFingerprint).Assembly.ManifestModule.ModuleVersionId.ToString("N"),
            ["model"] = $"{c.ModelType}, {c.LayerCount} layers, hidden {c.HiddenSize}, intermediate {c.IntermediateSize}, vocab {c.VocabSize}",
            ["model_sha256"] = ModelHash(model),
            ["calibration"] = calibration is null ? "none"
                : $"{calibration.SampleCount} × {calibration.SequenceLength} tokens, seed {calibration.Seed}",
            ["calibration_sha256"] = calibration is null ? "none" : CalibrationHash(calibration),
        };
        foreach (var (k, v) in settings) fields.Add(k, v);
        return new RunFingerprint(fields);
    }

    /// <summary>
    /// The settings of a quantize run that change its journaled layers (method, format and options). The lm_head's
    /// format is not among them: the head is quantized after the last layer and never journaled.
    /// </summary>
    public static Dictionary<string, string> QuantizationFields(QuantizeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new Dictionary<string, string>
        {
            ["method"] = QuantizationPipeline.MethodName(options.Method),
            ["format"] = options.EffectiveFormat.Name,
            ["act_order"] = options.EffectiveActOrder ? "true" : "false",
            ["scale_search"] = options.EffectiveScaleSearch.ToString(),
            ["keep_layers"] = string.Join(" | ", options.KeepLayers),
            ["shared_nvfp4_global_scale"] = options.ShareNvfp4GlobalScale ? "true" : "false",
            ["damp_percent"] = options.DampPercent.ToString("R", CultureInfo.InvariantCulture),
        };
    }

    /// <summary>
    /// The fields that differ, as "name: journal A, this run B" (empty when equal). <paramref name="this"/> is the
    /// journal's fingerprint.
    /// </summary>
    public IReadOnlyList<string> Differences(RunFingerprint run)
    {
        ArgumentNullException.ThrowIfNull(run);
        var differences = new List<string>();
        foreach (var key in _fields.Keys.Union(run._fields.Keys).Order(StringComparer.Ordinal))
        {
            string mine = _fields.GetValueOrDefault(key, "(none)"), theirs = run._fields.GetValueOrDefault(key, "(none)");
            if (mine != theirs) differences.Add($"{key}: journal {Shorten(mine)}, this run {Shorten(theirs)}");
        }
        return differences;
    }

    private static string Shorten(string value) => value.Length == 64 && value.All(char.IsAsciiHexDigit) ? value[..12] + "…" : value;

    /// <summary>
    /// SHA-256 (hex) of the model's content as the fingerprint's "model_sha256" field hashes it: config, then every
    /// tensor's name, dtype, shape and its first and last <see cref="SampledBytes"/>.
    /// </summary>
    public static string ModelContentHash(LlamaModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return ModelHash(model);
    }

    // Config, then every tensor's name, dtype, shape and its first and last SampledBytes.
    private static string ModelHash(LlamaModel model)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes(model.Config.ToString()));
        if (model.Store is { } store)
            foreach (var info in store.Tensors)
            {
                hash.AppendData(Encoding.UTF8.GetBytes($"\n{info.Name} {info.DType} {info.ShapeText}\n"));
                var data = store.GetData(info.Name).Span;
                int head = (int)Math.Min(data.Length, SampledBytes);
                hash.AppendData(data[..head]);
                hash.AppendData(data[Math.Max(head, data.Length - SampledBytes)..]);
            }
        else
            foreach (var layer in model.Layers)
                foreach (var linear in layer.Linears)
                    hash.AppendData(Encoding.UTF8.GetBytes($"\n{linear.Name} {linear.OutFeatures}×{linear.InFeatures}"));
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static string CalibrationHash(CalibrationData calibration)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var sample in calibration.Samples)
            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(sample.AsSpan()));
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
