using System.Text.Json;

namespace LlmPress.IO;

/// <summary>
/// The shard index of a sharded checkpoint (model.safetensors.index.json, as written by Hugging Face save_pretrained):
/// <code>{"metadata": {"total_size": 12345}, "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors", ...}}</code>
/// Only "weight_map" is required. "total_size" is informational and not checked: Hugging Face computes it in ways that
/// vary between versions (e.g. with or without tied weights).
/// </summary>
internal static class SafeTensorsIndex
{
    public const string FileName = "model.safetensors.index.json";

    /// <summary>A weight_map entry: tensor name → absolute shard path.</summary>
    public readonly record struct Entry(string Name, string ShardPath);

    /// <summary>Reads and validates the index; shard paths are resolved against the index's directory.</summary>
    public static List<Entry> Read(string indexPath)
    {
        byte[] bytes = File.ReadAllBytes(indexPath);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            IOThrow.InvalidDataException_IndexNotJson(indexPath, e);
            throw; // unreachable
        }
        using (document)
        {
            try
            {
                return ReadWeightMap(indexPath, document.RootElement);
            }
            catch (InvalidOperationException e)
            {
                IOThrow.InvalidDataException_IndexNotJson(indexPath, e);
                throw; // unreachable
            }
        }
    }

    private static List<Entry> ReadWeightMap(string indexPath, JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("weight_map", out var weightMap)
            || weightMap.ValueKind != JsonValueKind.Object)
        {
            IOThrow.InvalidDataException_IndexNoWeightMap(indexPath);
            return null;
        }

        string directory = Path.GetDirectoryName(indexPath)!;
        string directoryPrefix = Path.TrimEndingDirectorySeparator(directory) + Path.DirectorySeparatorChar;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var entries = new List<Entry>();
        foreach (var property in weightMap.EnumerateObject())
        {
            string name = property.Name;
            if (!seen.Add(name)) IOThrow.InvalidDataException_IndexDuplicate(indexPath, name);
            if (property.Value.ValueKind != JsonValueKind.String)
                IOThrow.InvalidDataException_IndexEntryNotString(indexPath, name, property.Value.ValueKind);
            string shard = property.Value.GetString()!;
            // Shards must live in the checkpoint folder: no rooted paths, nothing that climbs out with "..".
            string shardPath = shard.Length == 0 || Path.IsPathRooted(shard) || shard.Contains('\0')
                ? ""
                : Path.GetFullPath(Path.Combine(directory, shard));
            if (!shardPath.StartsWith(directoryPrefix, StringComparison.Ordinal))
                IOThrow.InvalidDataException_IndexBadShardName(indexPath, name, shard);
            entries.Add(new Entry(name, shardPath));
        }
        return entries;
    }
}
