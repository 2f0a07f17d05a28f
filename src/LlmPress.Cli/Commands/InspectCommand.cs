using System.CommandLine;
using System.Globalization;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Cli.Commands;

/// <summary>`llmpress inspect &lt;model&gt;`: architecture, parameter count, dtypes, size on disk.</summary>
internal static class InspectCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new Argument<string>("model") { Description = "Model directory (Hugging Face layout: config.json + *.safetensors) or a .gguf file." };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON on stdout." };
        var command = new Command("inspect", "Show a model's architecture, parameter count, tensor dtypes and size on disk.") { model, json };
        command.SetAction(parse => console.Guard(parse, () => Run(console, parse.GetValue(model)!, parse.GetValue(json))));
        return command;
    }

    private static int Run(CliConsole console, string path, bool json)
    {
        if (ModelSource.IsGguf(path)) return InspectGguf.Run(console, path, json);
        using var m = ModelSource.OpenModel(path);
        var c = m.Config;
        var store = m.Store!;
        // A quantized checkpoint stores "X.weight.qweight", "X.weight.scales", ...: count X's rows × cols as its
        // parameters and the packed bytes as its storage, not the packed tensors' element counts.
        var quantized = QuantizedCheckpoint.TryLoad(path);
        var quantizedModules = new Dictionary<string, long>(StringComparer.Ordinal);
        if (quantized is not null)
            foreach (var linear in m.Layers.SelectMany(l => l.Linears).Append(m.LmHead))
                if (quantized.IsQuantized(linear.Name))
                    quantizedModules[linear.Name] = (long)linear.InFeatures * linear.OutFeatures;
        long parameters = quantizedModules.Values.Sum(), packedBytes = 0;
        var dtypes = new SortedDictionary<string, long>();
        foreach (var name in store.Names)
        {
            var info = store.GetInfo(name);
            int packedAt = name.IndexOf(".weight.", StringComparison.Ordinal);
            if (packedAt > 0 && quantizedModules.ContainsKey(name[..packedAt]))
            {
                packedBytes += info.ByteLength;
                continue;
            }
            parameters += info.ElementCount;
            string dt = info.DType.ToString();
            dtypes[dt] = dtypes.GetValueOrDefault(dt) + info.ElementCount;
        }
        long quantizedParameters = quantizedModules.Values.Sum();
        string? quantization = quantized is null ? null
            : $"{string.Join(", ", quantized.Layers.Values.Select(f => f.Name).Distinct())} on {quantizedModules.Count} linear layers, "
              + $"{Format.Number(8.0 * packedBytes / Math.Max(1, quantizedParameters), "0.00")} bits/weight";
        long diskBytes = store.Files.Sum(f => new FileInfo(f).Length);
        string rope = c.RopeScaling.Type switch
        {
            RopeScalingType.None => $"θ={c.RopeTheta:G}",
            RopeScalingType.Linear => $"θ={c.RopeTheta:G}, linear ×{c.RopeScaling.Factor:G}",
            _ => $"θ={c.RopeTheta:G}, llama3 ×{c.RopeScaling.Factor:G} (original {c.RopeScaling.OriginalMaxPositions})",
        };
        if (json)
        {
            console.WriteJson(new Dictionary<string, object?>
            {
                ["model_type"] = c.ModelType,
                ["layers"] = c.LayerCount,
                ["hidden_size"] = c.HiddenSize,
                ["intermediate_size"] = c.IntermediateSize,
                ["attention_heads"] = c.HeadCount,
                ["kv_heads"] = c.KvHeadCount,
                ["head_dim"] = c.HeadDim,
                ["vocab_size"] = c.VocabSize,
                ["max_positions"] = c.MaxPositions,
                ["rope_theta"] = c.RopeTheta,
                ["rope_scaling"] = c.RopeScaling.Type.ToString().ToLowerInvariant(),
                ["tied_embeddings"] = c.TieWordEmbeddings,
                ["parameters"] = parameters,
                ["quantization"] = quantization,
                ["dtypes"] = dtypes,
                ["size_on_disk_bytes"] = diskBytes,
                ["files"] = store.Files.Select(Path.GetFileName).ToArray(),
            });
            return 0;
        }
        console.WriteTable($"{Path.GetFullPath(path)}", [
            ("architecture", $"{c.ModelType} ({c.LayerCount} layers, hidden {c.HiddenSize}, MLP {c.IntermediateSize})"),
            ("attention", $"{c.HeadCount} heads, {c.KvHeadCount} kv heads, head_dim {c.HeadDim}{(c.QkvBias ? ", qkv bias" : "")}{(c.SlidingWindow is { } w ? $", sliding window {w}" : "")}"),
            ("vocabulary", $"{c.VocabSize}{(c.TieWordEmbeddings ? " (tied lm_head)" : "")}"),
            ("positions", $"{c.MaxPositions}, rope {rope}"),
            ("parameters", $"{Format.Count(parameters)} ({parameters.ToString("N0", CultureInfo.InvariantCulture)})"),
            ("dtypes", string.Join(", ", dtypes.Select(kv => $"{kv.Key} {Format.Count(kv.Value)}"))
                + (quantized is null ? "" : $", packed {Format.Count(quantizedParameters)}")),
            ("quantization", quantization ?? "none"),
            ("size on disk", $"{Format.Bytes(diskBytes)} in {store.Files.Count} file(s)"),
        ]);
        return 0;
    }
}
