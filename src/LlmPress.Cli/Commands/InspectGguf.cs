using LlmPress.Gguf;

namespace LlmPress.Cli.Commands;

/// <summary>`llmpress inspect x.gguf`: the GGUF's metadata (arrays summarized), tensors and the model they describe.</summary>
internal static class InspectGguf
{
    public static int Run(CliConsole console, string path, bool json)
    {
        using var file = GgufFile.Open(path);
        var config = file.Metadata.ContainsKey("general.architecture") ? TryConfig(file, out string? problem) : null;
        var types = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var t in file.Tensors) types[GgmlTypeInfo.Name(t.Type)] = types.GetValueOrDefault(GgmlTypeInfo.Name(t.Type)) + t.ElementCount;
        long parameters = types.Values.Sum();
        if (json)
        {
            console.WriteJson(new Dictionary<string, object?>
            {
                ["path"] = file.Path,
                ["version"] = file.Version,
                ["alignment"] = file.Alignment,
                ["size_on_disk_bytes"] = file.Length,
                ["parameters"] = parameters,
                ["types"] = types,
                ["metadata"] = file.MetadataKeys.ToDictionary(k => k, k => file.Metadata[k].Value is Array a
                    ? (object)new Dictionary<string, object> { ["array_of"] = file.Metadata[k].ElementType.ToString().ToLowerInvariant(), ["length"] = a.Length }
                    : file.Metadata[k].Value),
                ["tensors"] = file.Tensors.Select(t => new Dictionary<string, object>
                {
                    ["name"] = t.Name, ["type"] = GgmlTypeInfo.Name(t.Type), ["shape"] = t.Shape, ["bytes"] = t.ByteLength,
                }).ToArray(),
            });
            return 0;
        }
        var rows = new List<(string, string)>
        {
            ("format", $"GGUF v{file.Version}, alignment {file.Alignment}, {Format.Bytes(file.Length)}"),
        };
        if (config is not null)
            rows.Add(("model", $"{config.ModelType}: {config.LayerCount} layers, hidden {config.HiddenSize}, MLP {config.IntermediateSize}, " +
                $"{config.HeadCount} heads ({config.KvHeadCount} kv, head_dim {config.HeadDim}), vocab {config.VocabSize}{(config.TieWordEmbeddings ? " (tied)" : "")}"));
        rows.Add(("parameters", $"{Format.Count(parameters)}: {string.Join(", ", types.Select(kv => $"{kv.Key} {Format.Count(kv.Value)}"))}"));
        foreach (string key in file.MetadataKeys) rows.Add((key, file.Metadata[key].ToString()));
        foreach (var t in file.Tensors) rows.Add((t.Name, $"{GgmlTypeInfo.Name(t.Type)} {t.ShapeText} ({Format.Bytes(t.ByteLength)})"));
        console.WriteTable(file.Path, rows);
        return 0;
    }

    private static Models.ModelConfig? TryConfig(GgufFile file, out string? problem)
    {
        try
        {
            problem = null;
            return GgufModelMetadata.ReadConfig(file);
        }
        catch (InvalidDataException e)
        {
            problem = e.Message;
            return null;
        }
    }
}
