using System.Text.Json;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// Reads the quantization_config an LlmPress quantize run adds to config.json, and rebuilds the quantized layers'
/// weights from their packed tensors ("X.weight.qweight", "X.weight.scales", ...). For now every weight is dequantized
/// to FP32 at load unless the packed kernels take it; rotating formats stay in their rotated basis and the layer rotates its inputs online.
/// </summary>
public sealed class QuantizedCheckpoint
{
    /// <summary>quantization_config.quant_method written by LlmPress.</summary>
    public const string QuantMethodName = "llmpress";

    private readonly Dictionary<string, QuantFormat> _layers;

    private QuantizedCheckpoint(string configFile, Dictionary<string, QuantFormat> layers)
    {
        ConfigFile = configFile;
        _layers = layers;
    }

    /// <summary>The config.json this was read from.</summary>
    public string ConfigFile { get; }

    /// <summary>Quantized module names (without ".weight") and their formats.</summary>
    public IReadOnlyDictionary<string, QuantFormat> Layers => _layers;

    public bool IsQuantized(string module) => _layers.ContainsKey(module);

    /// <summary>
    /// Reads &lt;directory&gt;/config.json; null when it has no quantization_config with quant_method "llmpress".
    /// </summary>
    /// <exception cref="InvalidDataException">The quantization_config is malformed (the message names file and field).</exception>
    public static QuantizedCheckpoint? TryLoad(string directory)
    {
        string file = Path.Combine(directory, "config.json");
        if (!File.Exists(file)) return null;
        using var doc = JsonDocument.Parse(File.ReadAllBytes(file), new JsonDocumentOptions { AllowTrailingCommas = true });
        if (doc.RootElement.ValueKind != JsonValueKind.Object
            || !doc.RootElement.TryGetProperty("quantization_config", out var q) || q.ValueKind != JsonValueKind.Object
            || !q.TryGetProperty("quant_method", out var method) || method.ValueKind != JsonValueKind.String
            || method.GetString() != QuantMethodName)
            return null;

        QuantFormat? defaultFormat = null;
        if (q.TryGetProperty("format", out var f))
            defaultFormat = ParseFormat(file, "quantization_config.format", f);
        var perLayer = q.TryGetProperty("layer_formats", out var lf) && lf.ValueKind == JsonValueKind.Object ? lf : default;
        if (!q.TryGetProperty("quantized_layers", out var names) || names.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{file}: quantization_config.quantized_layers is missing or not an array.");
        var layers = new Dictionary<string, QuantFormat>(StringComparer.Ordinal);
        foreach (var n in names.EnumerateArray())
        {
            if (n.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(n.GetString()))
                throw new InvalidDataException($"{file}: quantization_config.quantized_layers holds a non-string or empty entry.");
            string name = n.GetString()!;
            QuantFormat? format = perLayer.ValueKind == JsonValueKind.Object && perLayer.TryGetProperty(name, out var lfv)
                ? ParseFormat(file, $"quantization_config.layer_formats.{name}", lfv)
                : defaultFormat;
            layers[name] = format ?? throw new InvalidDataException($"{file}: no format for quantized layer {name} (quantization_config.format is missing).");
        }
        return new QuantizedCheckpoint(file, layers);
    }

    /// <summary>Rebuilds a quantized layer's packed weight from the store.</summary>
    /// <exception cref="InvalidDataException">Missing or malformed tensors (the message names the checkpoint and the tensor).</exception>
    public PackedWeight ReadPacked(TensorStore store, string module, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (!_layers.TryGetValue(module, out var format))
            throw new ArgumentException($"{module} is not a quantized layer of {ConfigFile}.", nameof(module));
        string prefix = module + ".weight.";
        var tensors = new List<PackedTensor>();
        foreach (var info in store.Tensors)
            if (info.Name.StartsWith(prefix, StringComparison.Ordinal))
                tensors.Add(new PackedTensor(info.Name[prefix.Length..], info.DType, info.Shape, store.GetData(info.Name).ToArray()));
        try
        {
            return PackedWeight.FromTensors(format, rows, cols, tensors);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{store.Path}: {module}.weight ({format.Name}, [{rows}, {cols}]): {e.Message}", e);
        }
    }

    /// <summary>
    /// The layer as it runs: INT4/INT8/MXFP4/NVFP4 straight from their codes (packed kernels), other formats dequantized
    /// to FP32 — [rows, cols], or for a rotating format (MR-GPTQ, HIGGS) [rows, padded cols] in the rotated basis with
    /// the matching online input rotation, as an engine runs it.
    /// </summary>
    public LinearLayer LoadLinear(TensorStore store, string module, int rows, int cols, float[]? bias)
    {
        var packed = ReadPacked(store, module, rows, cols);
        // INT4/INT8/MXFP4/NVFP4 run from their codes; other formats (INT2/3, HIGGS) are dequantized to FP32.
        if (KernelMatrix.TryCreate(packed) is { } matrix)
            return LinearLayer.FromQuantized(module, cols, matrix, packed.Format.RotationBlockSize, bias);
        if (packed.Format.RotationBlockSize is int b)
            return LinearLayer.Rotated(module, cols, WeightView.FromFloats(packed.DequantizeStored(), rows, packed.StoredColumns), b, bias);
        return new LinearLayer(module, WeightView.FromFloats(packed.Dequantize(), rows, cols), bias);
    }

    private static QuantFormat ParseFormat(string file, string field, JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.String && QuantFormat.TryParse(value.GetString(), out var format)) return format;
        throw new InvalidDataException($"{file}: {field} is {value.GetRawText()}, not a known format name (e.g. \"int4-asym-g128\", \"higgs-p2-n256\").");
    }
}
