using System.Text.Json;

namespace LlmPress.Models;

/// <summary>Typed access to a config.json object, with errors that name the file and the field.</summary>
internal readonly struct ConfigReader(JsonElement root, string file, string prefix = "")
{
    public JsonElement Root => root;
    public string File => file;

    public InvalidDataException Error(string field, string problem)
        => new(field.Length == 0 ? $"{file}: {problem}." : $"{file}: field '{field}' {problem}.");

    private bool TryGet(string name, out JsonElement value)
        => root.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    public string RequiredString(string name)
        => OptionalString(name) ?? throw Error(prefix + name, "is missing");

    public string? OptionalString(string name)
    {
        if (!TryGet(name, out var v)) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw Error(prefix + name, $"must be a string, not {v.ValueKind}");
    }

    public int PositiveInt(string name)
        => OptionalPositiveInt(name) ?? throw Error(prefix + name, "is missing");

    public int? OptionalPositiveInt(string name)
    {
        int? v = OptionalInt(name);
        if (v is <= 0) throw Error(prefix + name, $"must be positive, not {v}");
        return v;
    }

    public int? OptionalInt(string name)
    {
        if (!TryGet(name, out var v)) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)) return i;
        // Some exporters write integral values as floats (e.g. 100000.0).
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return (int)d;
        throw Error(prefix + name, $"must be an integer, not {v.GetRawText()}");
    }

    public double PositiveDouble(string name)
    {
        double v = OptionalDouble(name) ?? throw Error(prefix + name, "is missing");
        return v > 0 ? v : throw Error(prefix + name, $"must be positive, not {v}");
    }

    public double? OptionalDouble(string name)
    {
        if (!TryGet(name, out var v)) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && double.IsFinite(d)) return d;
        throw Error(prefix + name, $"must be a number, not {v.GetRawText()}");
    }

    public bool? OptionalBool(string name)
    {
        if (!TryGet(name, out var v)) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error(prefix + name, $"must be true or false, not {v.GetRawText()}"),
        };
    }

    public IReadOnlyList<int> IntOrIntList(string name)
    {
        if (!TryGet(name, out var v)) return [];
        if (v.ValueKind != JsonValueKind.Array) return [OptionalInt(name)!.Value];
        var list = new List<int>();
        foreach (var e in v.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int i))
                throw Error(prefix + name, $"must hold integers, not {e.GetRawText()}");
            list.Add(i);
        }
        return list;
    }
}
