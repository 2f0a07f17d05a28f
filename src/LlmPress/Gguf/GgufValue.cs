using System.Globalization;

namespace LlmPress.Gguf;

/// <summary>
/// One GGUF metadata value: a scalar (boxed byte, sbyte, ushort, short, uint, int, float, bool, ulong, long, double),
/// a string, or an array of one element type (a typed .NET array: uint[], string[], float[], ...). Nested arrays are not
/// supported (llama.cpp writes none).
/// </summary>
public sealed class GgufValue
{
    private GgufValue(GgufValueType type, object value, GgufValueType elementType = default)
    {
        Type = type;
        Value = value;
        ElementType = elementType;
    }

    /// <summary>The value's type (<see cref="GgufValueType.Array"/> for arrays).</summary>
    public GgufValueType Type { get; }

    /// <summary>For arrays, the type of every element.</summary>
    public GgufValueType ElementType { get; }

    /// <summary>The boxed scalar, the string, or the typed array.</summary>
    public object Value { get; }

    public static GgufValue UInt32(uint value) => new(GgufValueType.UInt32, value);
    public static GgufValue Int32(int value) => new(GgufValueType.Int32, value);
    public static GgufValue UInt64(ulong value) => new(GgufValueType.UInt64, value);
    public static GgufValue Float32(float value) => new(GgufValueType.Float32, value);
    public static GgufValue Bool(bool value) => new(GgufValueType.Bool, value);
    public static GgufValue String(string value) => new(GgufValueType.String, value ?? throw new ArgumentNullException(nameof(value)));
    public static GgufValue Strings(string[] values) => new(GgufValueType.Array, values, GgufValueType.String);
    public static GgufValue Float32s(float[] values) => new(GgufValueType.Array, values, GgufValueType.Float32);
    public static GgufValue Int32s(int[] values) => new(GgufValueType.Array, values, GgufValueType.Int32);

    /// <summary>Wraps a value read from a file; <paramref name="value"/> must match <paramref name="type"/>.</summary>
    internal static GgufValue FromFile(GgufValueType type, object value, GgufValueType elementType = default) => new(type, value, elementType);

    /// <summary>Number of elements of an array (1 for a scalar or string).</summary>
    public int Count => Value is Array a ? a.Length : 1;

    /// <summary>The value as a string, when it is one.</summary>
    public string? AsString() => Value as string;

    /// <summary>An integer scalar of any width as a long (null for non-integers or a UInt64 above long.MaxValue).</summary>
    public long? AsInteger() => Value switch
    {
        byte v => v,
        sbyte v => v,
        ushort v => v,
        short v => v,
        uint v => v,
        int v => v,
        ulong v => v <= long.MaxValue ? (long)v : null,
        long v => v,
        _ => null,
    };

    /// <summary>A float or integer scalar as a double.</summary>
    public double? AsDouble() => Value switch
    {
        float v => v,
        double v => v,
        _ => AsInteger(),
    };

    /// <summary>Short human-readable form: scalars as they are, strings quoted and cut, arrays as "[type × n]".</summary>
    public override string ToString() => Value switch
    {
        string s => "\"" + (s.Length > 60 ? s[..60] + "…" : s).Replace("\n", "\\n", StringComparison.Ordinal) + "\"",
        Array a => $"[{ElementType.ToString().ToLowerInvariant()} × {a.Length}]",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => Value.ToString() ?? "",
    };
}
