namespace LlmPress.Gguf;

/// <summary>
/// The ggml tensor types LlmPress reads and writes, with their ids from ggml.h (enum ggml_type). The ids are part of
/// the GGUF file format: F32 0, F16 1, Q4_0 2, Q8_0 8, BF16 30, MXFP4 39.
/// </summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q8_0 = 8,
    BF16 = 30,
    MXFP4 = 39,
}

/// <summary>Block geometry of each <see cref="GgmlType"/> (ggml-common.h).</summary>
public static class GgmlTypeInfo
{
    /// <summary>Elements per block: 1 for F32/F16/BF16, 32 for Q4_0, Q8_0 and MXFP4.</summary>
    public static int BlockSize(GgmlType type) => type switch
    {
        GgmlType.Q4_0 or GgmlType.Q8_0 or GgmlType.MXFP4 => 32,
        _ => 1,
    };

    /// <summary>
    /// Bytes per block: F32 4, F16/BF16 2, Q4_0 18 (fp16 d + 16 nibble bytes), Q8_0 34 (fp16 d + 32 int8),
    /// MXFP4 17 (E8M0 e + 16 nibble bytes).
    /// </summary>
    public static int BlockBytes(GgmlType type) => type switch
    {
        GgmlType.F32 => 4,
        GgmlType.F16 or GgmlType.BF16 => 2,
        GgmlType.Q4_0 => 18,
        GgmlType.Q8_0 => 34,
        GgmlType.MXFP4 => 17,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Not a ggml type LlmPress supports."),
    };

    /// <summary>Whether <paramref name="id"/> is a type LlmPress supports.</summary>
    public static bool IsSupported(uint id) => id is 0 or 1 or 2 or 8 or 30 or 39;

    /// <summary>The name ggml prints ("f32", "q4_0", "mxfp4", ...), which is also what --type takes.</summary>
    public static string Name(GgmlType type) => type switch
    {
        GgmlType.F32 => "f32",
        GgmlType.F16 => "f16",
        GgmlType.BF16 => "bf16",
        GgmlType.Q4_0 => "q4_0",
        GgmlType.Q8_0 => "q8_0",
        GgmlType.MXFP4 => "mxfp4",
        _ => $"type {(uint)type}",
    };

    /// <summary>Parses a <see cref="Name"/> (case-insensitive).</summary>
    public static bool TryParse(string? text, out GgmlType type)
    {
        foreach (var t in (ReadOnlySpan<GgmlType>)[GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q4_0, GgmlType.Q8_0, GgmlType.MXFP4])
        {
            if (string.Equals(text, Name(t), StringComparison.OrdinalIgnoreCase))
            {
                type = t;
                return true;
            }
        }
        type = default;
        return false;
    }

    /// <summary>Bytes of a row of <paramref name="elements"/> elements; null when the row is not whole blocks.</summary>
    public static long? RowBytes(GgmlType type, long elements)
    {
        int block = BlockSize(type);
        if (elements % block != 0) return null;
        return elements / block * BlockBytes(type);
    }
}
