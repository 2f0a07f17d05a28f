using System.Globalization;
using System.Text.Json;

namespace LlmPress.Sparsity;

/// <summary>
/// Per-layer sparsity overrides from a JSON file: an object mapping module names to a fraction of zeros or an N:M
/// pattern, e.g. {"model.layers.0.mlp.down_proj": 0.6, "model.layers.1.self_attn.q_proj": "2:4"} (strings such as
/// "0.6" and "60%" are accepted too). Dynamic sparsity searches write such files.
/// </summary>
public static class SparsityFile
{
    /// <summary>Reads the file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">Not a JSON object of name → pattern, or a bad pattern (the message names the file and the key).</exception>
    public static IReadOnlyDictionary<string, SparsityPattern> Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: sparsity file not found.", path);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: expected a JSON object mapping module names to sparsities, e.g. {{\"model.layers.0.mlp.down_proj\": 0.6}}.");
            var result = new Dictionary<string, SparsityPattern>(StringComparer.Ordinal);
            foreach (var entry in doc.RootElement.EnumerateObject())
            {
                string text = entry.Value.ValueKind switch
                {
                    JsonValueKind.Number => entry.Value.GetDouble().ToString("R", CultureInfo.InvariantCulture),
                    JsonValueKind.String => entry.Value.GetString()!,
                    _ => throw new InvalidDataException($"{path}: \"{entry.Name}\" is {entry.Value.GetRawText()}; give a fraction such as 0.5 or an N:M pattern such as \"2:4\"."),
                };
                try
                {
                    if (!result.TryAdd(entry.Name, SparsityPattern.Parse(text)))
                        throw new InvalidDataException($"{path}: \"{entry.Name}\" is given twice.");
                }
                catch (Exception e) when (e is FormatException or ArgumentOutOfRangeException)
                {
                    throw new InvalidDataException($"{path}: \"{entry.Name}\": {FirstLine(e.Message)}", e);
                }
            }
            return result;
        }
    }

    // ArgumentOutOfRangeException appends "(Parameter ...)\nActual value ..." lines.
    private static string FirstLine(string message) => message.Split('\n')[0].Replace(" (Parameter 'fraction')", "").Replace(" (Parameter 'n')", "").Replace(" (Parameter 'm')", "");
}
