using System.Text.Json;
using System.Text.Json.Nodes;
using LlmPress.Quantization;

namespace LlmPress.Export;

/// <summary>
/// One compressed-tensors weight scheme: the "weights" QuantizationArgs of a config group and the compression format
/// that stores it. Three are written, each matching what vLLM's compressed-tensors config recognises:
/// <list type="bullet">
/// <item>"pack-quantized", type int, 4 or 8 bits, strategy "group" (group_size g) or "channel", symmetric or not
/// (CompressedTensorsWNA16: uint4b8/uint8b128 symmetric, uint4/uint8 with zero points);</item>
/// <item>"mxfp4-pack-quantized", type float, 4 bits, strategy "group", group_size 32, symmetric (W4A16 MXFP4);</item>
/// <item>"nvfp4-pack-quantized", type float, 4 bits, strategy "tensor_group", group_size 16, symmetric (W4A16 NVFP4).</item>
/// </list>
/// Weight-only, static (dynamic false), no activation quantization.
/// </summary>
/// <param name="Format">Compression format name.</param>
/// <param name="Type">"int" or "float".</param>
/// <param name="Bits">num_bits.</param>
/// <param name="Symmetric">symmetric.</param>
/// <param name="Strategy">"group", "channel" or "tensor_group".</param>
/// <param name="GroupSize">group_size (null for "channel").</param>
public sealed record CompressedTensorsScheme(string Format, string Type, int Bits, bool Symmetric, string Strategy, int? GroupSize)
{
    /// <summary>Format of INT4/INT8 weights packed into int32.</summary>
    public const string PackQuantized = "pack-quantized";
    /// <summary>Format of MXFP4 weights (E2M1 nibbles, E8M0 scales).</summary>
    public const string Mxfp4PackQuantized = "mxfp4-pack-quantized";
    /// <summary>Format of NVFP4 weights (E2M1 nibbles, E4M3 scales, FP32 global scale).</summary>
    public const string Nvfp4PackQuantized = "nvfp4-pack-quantized";

    /// <summary>
    /// The scheme that stores <paramref name="format"/> for a [rows, cols] weight exactly, or null with the reason it cannot.
    /// </summary>
    public static CompressedTensorsScheme? For(QuantFormat format, int rows, int cols, out string reason)
    {
        ArgumentNullException.ThrowIfNull(format);
        reason = "";
        if (format.Kind == QuantKind.Higgs)
        {
            reason = "HIGGS codes index a vector grid, which no compressed-tensors format (or vLLM scheme) represents";
            return null;
        }
        if (format.RotationBlockSize is int b)
        {
            reason = $"the weights are stored in a Hadamard-rotated basis (blocks of {b}) and need the same rotation applied online to the " +
                "activations; vLLM's compressed-tensors weight schemes multiply by the stored weights as they are, so the layer would compute wrong outputs";
            return null;
        }
        switch (format.Kind)
        {
            case QuantKind.Int:
                if (format.Bits is not (4 or 8))
                {
                    reason = $"pack-quantized holds INT4 and INT8 only (vLLM's WNA16 kernels); INT{format.Bits} has no compressed-tensors layout";
                    return null;
                }
                int g = format.EffectiveGroupSize(cols);
                if (g >= cols) return new(PackQuantized, "int", format.Bits, format.Symmetric, "channel", null);
                if (cols % g != 0)
                {
                    reason = $"groups of {g} do not divide its {cols} input columns (compressed-tensors needs whole groups; the last LlmPress group is short)";
                    return null;
                }
                return new(PackQuantized, "int", format.Bits, format.Symmetric, "group", g);
            case QuantKind.Mxfp4:
                if (cols % QuantFormat.Mxfp4GroupSize != 0)
                {
                    reason = $"its {cols} input columns are not whole 32-element MXFP4 blocks";
                    return null;
                }
                return new(Mxfp4PackQuantized, "float", 4, true, "group", QuantFormat.Mxfp4GroupSize);
            default:
                if (cols % QuantFormat.Nvfp4GroupSize != 0)
                {
                    reason = $"its {cols} input columns are not whole 16-element NVFP4 blocks";
                    return null;
                }
                return new(Nvfp4PackQuantized, "float", 4, true, "tensor_group", QuantFormat.Nvfp4GroupSize);
        }
    }

    /// <summary>Values per int32 word of pack-quantized (0 for the FP4 formats, which pack two per byte).</summary>
    public int PackFactor => Format == PackQuantized ? CompressedTensorsPacking.PackFactor(Bits) : 0;

    /// <summary>Scale groups per row of a weight with <paramref name="cols"/> input columns.</summary>
    public int GroupCount(int cols) => GroupSize is int g ? cols / g : 1;

    /// <summary>The config group's "weights" object (QuantizationArgs).</summary>
    public JsonObject ToWeightsJson() => new()
    {
        ["num_bits"] = Bits,
        ["type"] = Type,
        ["symmetric"] = Symmetric,
        ["group_size"] = GroupSize,
        ["strategy"] = Strategy,
        ["dynamic"] = false,
        ["actorder"] = null, // groups are contiguous column ranges (no g_idx), also after GPTQ act-order (static groups)
    };

    /// <summary>Reads a config group's "weights" back (the fields this exporter writes), for the given compression format.</summary>
    /// <exception cref="InvalidDataException">Missing or mistyped fields (the message names <paramref name="where"/>).</exception>
    public static CompressedTensorsScheme Parse(string format, JsonElement weights, string where)
    {
        if (weights.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{where}: \"weights\" is not an object.");
        int bits = weights.TryGetProperty("num_bits", out var nb) && nb.ValueKind == JsonValueKind.Number ? nb.GetInt32() : throw Missing("num_bits");
        string type = weights.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : throw Missing("type");
        bool symmetric = weights.TryGetProperty("symmetric", out var s) && s.ValueKind is JsonValueKind.True or JsonValueKind.False ? s.GetBoolean() : throw Missing("symmetric");
        string strategy = weights.TryGetProperty("strategy", out var st) && st.ValueKind == JsonValueKind.String ? st.GetString()! : throw Missing("strategy");
        int? group = weights.TryGetProperty("group_size", out var gs) && gs.ValueKind == JsonValueKind.Number ? gs.GetInt32() : null;
        return new CompressedTensorsScheme(format, type, bits, symmetric, strategy, group);

        InvalidDataException Missing(string field) => new($"{where}: weights.{field} is missing or has the wrong type.");
    }

    /// <summary>Short description, e.g. "pack-quantized int4 asym group 128".</summary>
    public override string ToString() =>
        $"{Format} {Type}{Bits} {(Symmetric ? "sym" : "asym")} {Strategy}{(GroupSize is int g ? $" {g}" : "")}";
}
