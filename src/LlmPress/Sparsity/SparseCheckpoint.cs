using System.Text.Json;
using LlmPress.IO;
using LlmPress.Numerics;

namespace LlmPress.Sparsity;

/// <summary>
/// Reads the sparsity_config an LlmPress prune run adds to config.json, and rebuilds the linears stored in the bitmask
/// layout (<see cref="SparseBitmask"/>) as dense weights in their stored dtype. Dense pruned linears need nothing (they
/// are ordinary "X.weight" tensors); jointly quantized ones are read through the quantization_config.
/// </summary>
public sealed class SparseCheckpoint
{
    /// <summary>The config.json key.</summary>
    public const string ConfigKey = "sparsity_config";

    /// <summary>sparsity_config.pruned_by written by LlmPress.</summary>
    public const string PrunedBy = "llmpress";

    private readonly HashSet<string> _bitmaskLayers;

    private SparseCheckpoint(string configFile, HashSet<string> bitmaskLayers)
    {
        ConfigFile = configFile;
        _bitmaskLayers = bitmaskLayers;
    }

    /// <summary>The config.json this was read from.</summary>
    public string ConfigFile { get; }

    /// <summary>Modules stored in the bitmask layout.</summary>
    public IReadOnlyCollection<string> BitmaskLayers => _bitmaskLayers;

    /// <summary>True when <paramref name="module"/> is stored in the bitmask layout.</summary>
    public bool IsBitmask(string module) => _bitmaskLayers.Contains(module);

    /// <summary>Reads &lt;directory&gt;/config.json; null when it has no sparsity_config written by LlmPress.</summary>
    /// <exception cref="InvalidDataException">A malformed sparsity_config (the message names the file and field).</exception>
    public static SparseCheckpoint? TryLoad(string directory)
    {
        string file = Path.Combine(directory, "config.json");
        if (!File.Exists(file)) return null;
        using var doc = JsonDocument.Parse(File.ReadAllBytes(file), new JsonDocumentOptions { AllowTrailingCommas = true });
        if (doc.RootElement.ValueKind != JsonValueKind.Object
            || !doc.RootElement.TryGetProperty(ConfigKey, out var config) || config.ValueKind != JsonValueKind.Object
            || !config.TryGetProperty("pruned_by", out var by) || by.ValueKind != JsonValueKind.String || by.GetString() != PrunedBy)
            return null;
        var layers = new HashSet<string>(StringComparer.Ordinal);
        if (config.TryGetProperty("bitmask_layers", out var list))
        {
            if (list.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{file}: {ConfigKey}.bitmask_layers is not an array.");
            foreach (var n in list.EnumerateArray())
            {
                if (n.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(n.GetString()))
                    throw new InvalidDataException($"{file}: {ConfigKey}.bitmask_layers holds a non-string or empty entry.");
                layers.Add(n.GetString()!);
            }
        }
        return new SparseCheckpoint(file, layers);
    }

    /// <summary>The dense weight [rows, cols] of a bitmask-layout module, in its stored dtype.</summary>
    /// <exception cref="InvalidDataException">Missing or malformed tensors (the message names the checkpoint and tensor).</exception>
    public WeightView LoadWeight(TensorStore store, string module, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (!IsBitmask(module)) throw new ArgumentException($"{module} is not a bitmask-layout layer of {ConfigFile}.", nameof(module));
        TensorInfo Get(string suffix) => store.TryGetInfo($"{module}.{suffix}", out var info) ? info
            : throw new InvalidDataException($"{store.Path}: {module}.{suffix} is missing ({ConfigFile} lists {module} as stored in the bitmask layout).");
        var compressed = Get(SparseBitmask.CompressedSuffix);
        var bitmask = Get(SparseBitmask.BitmaskSuffix);
        var shape = Get(SparseBitmask.ShapeSuffix);
        if (bitmask.DType != DType.U8) throw new InvalidDataException($"{store.Path}: {module}.{SparseBitmask.BitmaskSuffix} is {bitmask.DType}, expected U8.");
        if (shape.DType != DType.I64) throw new InvalidDataException($"{store.Path}: {module}.{SparseBitmask.ShapeSuffix} is {shape.DType}, expected I64.");
        var dense = SparseBitmask.Decode(store.GetData(compressed.Name).Span, compressed.DType, compressed.Shape, store.GetData(bitmask.Name).Span,
            bitmask.Shape, store.GetData(shape.Name).Span, rows, cols, $"{store.Path}: {module}");
        return new WeightView(compressed.DType, rows, cols, dense);
    }
}
