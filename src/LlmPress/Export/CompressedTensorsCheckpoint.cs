using System.Text.Json;
using System.Text.RegularExpressions;
using LlmPress.IO;
using LlmPress.Numerics;

namespace LlmPress.Export;

/// <summary>
/// The quantization_config of a compressed-tensors checkpoint (written by <see cref="CompressedTensorsExporter"/> or by
/// llm-compressor) and the weights of its quantized linears, dequantized to FP32 by compressed-tensors' rules
/// (<see cref="CompressedTensorsCodec.Decode"/>). Supports the schemes of <see cref="CompressedTensorsScheme"/>; anything
/// else (FP8, sparse formats, activation-ordered groups with weight_g_idx) is refused with the module named.
/// </summary>
/// <remarks>
/// A linear's scheme is found as compressed-tensors does: "ignore" first, then the first config group with a matching
/// target, where a target matches a module by its exact name, by "re:&lt;pattern&gt;" (Python re.match: anchored at the
/// start), or by the class name "Linear" (every linear asked about here is one).
/// </remarks>
public sealed class CompressedTensorsCheckpoint
{
    private readonly List<(string[] Targets, CompressedTensorsScheme Scheme)> _groups;
    private readonly string[] _ignore;

    private CompressedTensorsCheckpoint(string configFile, string format, List<(string[], CompressedTensorsScheme)> groups, string[] ignore)
    {
        ConfigFile = configFile;
        Format = format;
        _groups = groups;
        _ignore = ignore;
    }

    /// <summary>The config.json this was read from.</summary>
    public string ConfigFile { get; }

    /// <summary>quantization_config.format ("pack-quantized", ..., "mixed-precision").</summary>
    public string Format { get; }

    /// <summary>quantization_config.ignore.</summary>
    public IReadOnlyList<string> Ignore => _ignore;

    /// <summary>
    /// Reads &lt;directory&gt;/config.json; null when it has no compressed quantization_config with quant_method
    /// "compressed-tensors" (a "dense" format or a status other than "compressed" stores plain weights).
    /// </summary>
    /// <exception cref="InvalidDataException">A malformed quantization_config (the message names file and field).</exception>
    public static CompressedTensorsCheckpoint? TryLoad(string directory)
    {
        string file = Path.Combine(directory, "config.json");
        if (!File.Exists(file)) return null;
        using var doc = JsonDocument.Parse(File.ReadAllBytes(file), new JsonDocumentOptions { AllowTrailingCommas = true });
        if (doc.RootElement.ValueKind != JsonValueKind.Object
            || !doc.RootElement.TryGetProperty("quantization_config", out var q) || q.ValueKind != JsonValueKind.Object
            || !q.TryGetProperty("quant_method", out var method) || method.ValueKind != JsonValueKind.String
            || method.GetString() != CompressedTensorsExporter.QuantMethod)
            return null;
        string format = q.TryGetProperty("format", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString()! : "dense";
        string status = q.TryGetProperty("quantization_status", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString()! : "compressed";
        if (format == "dense" || status != "compressed") return null;
        if (!q.TryGetProperty("config_groups", out var groups) || groups.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{file}: quantization_config.config_groups is missing or not an object.");
        var parsed = new List<(string[], CompressedTensorsScheme)>();
        foreach (var group in groups.EnumerateObject())
        {
            string where = $"{file}: quantization_config.config_groups.{group.Name}";
            if (group.Value.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{where} is not an object.");
            if (!group.Value.TryGetProperty("weights", out var weights) || weights.ValueKind == JsonValueKind.Null) continue; // activations only
            if (group.Value.TryGetProperty("input_activations", out var input) && input.ValueKind != JsonValueKind.Null)
                throw new InvalidDataException($"{where} quantizes activations; only weight-only schemes are supported.");
            string groupFormat = group.Value.TryGetProperty("format", out var gf) && gf.ValueKind == JsonValueKind.String ? gf.GetString()! : format;
            parsed.Add((Strings(group.Value, "targets", where), CompressedTensorsScheme.Parse(groupFormat, weights, where)));
        }
        string[] ignore = q.TryGetProperty("ignore", out var ig) && ig.ValueKind == JsonValueKind.Array ? Strings(q, "ignore", $"{file}: quantization_config") : [];
        return new CompressedTensorsCheckpoint(file, format, parsed, ignore);
    }

    /// <summary>The scheme of linear <paramref name="module"/>, or null when it is ignored or no group targets it (stored dense).</summary>
    public CompressedTensorsScheme? SchemeFor(string module)
    {
        ArgumentNullException.ThrowIfNull(module);
        foreach (var pattern in _ignore)
            if (Matches(pattern, module)) return null;
        foreach (var (targets, scheme) in _groups)
            foreach (var target in targets)
                if (Matches(target, module)) return scheme;
        return null;
    }

    /// <summary>A quantized linear's weight dequantized to FP32 [rows, cols].</summary>
    /// <exception cref="InvalidDataException">An unsupported scheme, activation-ordered groups, or missing or malformed tensors (the message names the module).</exception>
    public WeightView LoadWeight(TensorStore store, string module, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(store);
        var scheme = SchemeFor(module) ?? throw new ArgumentException($"{module} is not quantized in {ConfigFile}.", nameof(module));
        string problem = Supported(scheme);
        if (problem.Length > 0) throw new InvalidDataException($"{ConfigFile}: {module}: {scheme} is not supported: {problem}.");
        if (store.Contains($"{module}.weight_g_idx"))
            throw new InvalidDataException($"{store.Path}: {module} has weight_g_idx (activation-ordered groups), which is not supported.");
        return WeightView.FromFloats(CompressedTensorsCodec.Decode(store, module, scheme, rows, cols), rows, cols);
    }

    // What CompressedTensorsCodec can decode: the three schemes CompressedTensorsScheme.For produces.
    private static string Supported(CompressedTensorsScheme s) => s.Format switch
    {
        CompressedTensorsScheme.PackQuantized when s.Type != "int" || s.Bits is not (4 or 8) => "pack-quantized is read for INT4 and INT8",
        CompressedTensorsScheme.PackQuantized when s.Strategy is not ("group" or "channel") || (s.Strategy == "group") != s.GroupSize is not null =>
            "pack-quantized is read with strategy group (with a group_size) or channel",
        CompressedTensorsScheme.PackQuantized => "",
        CompressedTensorsScheme.Mxfp4PackQuantized when s.Type != "float" || s.Bits != 4 || s.GroupSize != 32 || !s.Symmetric => "MXFP4 is FP4 in symmetric groups of 32",
        CompressedTensorsScheme.Nvfp4PackQuantized when s.Type != "float" || s.Bits != 4 || s.GroupSize != 16 || !s.Symmetric => "NVFP4 is FP4 in symmetric groups of 16",
        CompressedTensorsScheme.Mxfp4PackQuantized or CompressedTensorsScheme.Nvfp4PackQuantized => "",
        _ => $"format '{s.Format}' is not one of {CompressedTensorsScheme.PackQuantized}, {CompressedTensorsScheme.Mxfp4PackQuantized}, {CompressedTensorsScheme.Nvfp4PackQuantized}",
    };

    private static bool Matches(string pattern, string module) =>
        pattern == module || pattern == "Linear"
        || (pattern.StartsWith("re:", StringComparison.Ordinal) && Regex.IsMatch(module, $"^(?:{pattern[3..]})", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)));

    private static string[] Strings(JsonElement parent, string field, string where)
    {
        if (!parent.TryGetProperty(field, out var array) || array.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{where}.{field} is missing or not an array.");
        var result = new List<string>();
        foreach (var e in array.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.String) throw new InvalidDataException($"{where}.{field} holds a non-string entry.");
            result.Add(e.GetString()!);
        }
        return [.. result];
    }
}
