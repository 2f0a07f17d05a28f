using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Search;

/// <summary>What <see cref="DepthCheckpointWriter"/> wrote.</summary>
/// <param name="DecoderLayers">num_hidden_layers of the written model.</param>
/// <param name="RemovedLayers">Source layers removed entirely (both sub-blocks dropped), source numbering.</param>
/// <param name="ZeroedBlocks">Sub-blocks kept as exact zeros in the written model (its numbering).</param>
/// <param name="BytesBefore">Tensor bytes of the source.</param>
/// <param name="BytesAfter">Tensor bytes written.</param>
public sealed record DepthCheckpoint(int DecoderLayers, IReadOnlyList<int> RemovedLayers, IReadOnlyList<DroppedBlock> ZeroedBlocks, long BytesBefore, long BytesAfter);

/// <summary>
/// Writes a depth-pruned model as a standard checkpoint any Llama engine loads: decoder layers whose attention and MLP
/// are both dropped are removed (later layers renumbered, num_hidden_layers lowered); a layer with only one sub-block
/// dropped keeps its tensors with that sub-block's output projection (o_proj, with its bias; down_proj) set to exact
/// zeros, so the sub-block adds exactly 0 to the residual everywhere, and config.json lists it under
/// "llmpress_dropped_blocks" so LlmPress skips its compute (<see cref="ModelConfig.DroppedBlocks"/>). Every other tensor
/// is copied as stored. Written to a temporary directory renamed into place, with the tokenizer files.
/// </summary>
public static partial class DepthCheckpointWriter
{
    /// <summary>config.json field recording where the model came from (informational).</summary>
    public const string ProvenanceKey = "llmpress_depth_pruning";

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)$", RegexOptions.CultureInvariant)]
    private static partial Regex LayerTensor();

    /// <summary>Writes the checkpoint.</summary>
    /// <param name="sourceDirectory">The dense model's directory (config.json, tokenizer files).</param>
    /// <param name="store">Its weights.</param>
    /// <param name="layers">Its decoder layers.</param>
    /// <param name="levels">Per unit (<see cref="DepthUnits"/> order): dropped (0) or kept (1).</param>
    /// <param name="outputDirectory">Where the checkpoint goes.</param>
    /// <param name="overwrite">Replace an existing directory.</param>
    /// <exception cref="ArgumentException">Not one level 0/1 per unit.</exception>
    /// <exception cref="IOException">The output exists and <paramref name="overwrite"/> is false.</exception>
    public static DepthCheckpoint Write(string sourceDirectory, TensorStore store, int layers, IReadOnlyList<int> levels, string outputDirectory, bool overwrite)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(levels);
        if (levels.Count != DepthUnits.Count(layers))
            throw new ArgumentException($"A depth configuration has one level per sub-block ({DepthUnits.Count(layers)}), not {levels.Count}.", nameof(levels));
        foreach (int level in levels)
            if (level is not (DepthUnits.Dropped or DepthUnits.Kept)) throw new ArgumentException($"Depth levels are 0 (dropped) or 1 (kept), not {level}.", nameof(levels));

        // Source layer → written layer (−1: removed). A model with every sub-block dropped keeps its last layer, zeroed,
        // since a Llama checkpoint needs at least one layer.
        var target = new int[layers];
        var removed = new List<int>();
        int next = 0;
        for (int l = 0; l < layers; l++)
        {
            bool gone = levels[2 * l] == DepthUnits.Dropped && levels[2 * l + 1] == DepthUnits.Dropped;
            if (gone && !(l == layers - 1 && next == 0))
            {
                target[l] = -1;
                removed.Add(l);
            }
            else target[l] = next++;
        }
        var zeroed = new List<DroppedBlock>();
        for (int l = 0; l < layers; l++)
        {
            if (target[l] < 0) continue;
            if (levels[2 * l] == DepthUnits.Dropped) zeroed.Add(new DroppedBlock(target[l], DecoderBlock.SelfAttention));
            if (levels[2 * l + 1] == DepthUnits.Dropped) zeroed.Add(new DroppedBlock(target[l], DecoderBlock.Mlp));
        }

        return QuantizedCheckpointWriter.WriteDirectory(outputDirectory, overwrite, directory =>
        {
            var tensors = new List<TensorToWrite>();
            long before = 0, after = 0;
            foreach (var info in store.Tensors)
            {
                before += info.ByteLength;
                string name = info.Name;
                var data = store.GetData(name);
                var match = LayerTensor().Match(name);
                if (match.Success && int.TryParse(match.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out int l) && l < layers)
                {
                    if (target[l] < 0) continue;
                    string rest = match.Groups[2].Value;
                    name = $"model.layers.{target[l]}.{rest}";
                    bool attentionOut = rest is "self_attn.o_proj.weight" or "self_attn.o_proj.bias";
                    if ((attentionOut && levels[2 * l] == DepthUnits.Dropped) || (rest == "mlp.down_proj.weight" && levels[2 * l + 1] == DepthUnits.Dropped))
                        data = new byte[info.ByteLength]; // all-zero bytes are +0.0 in F32, F16 and BF16
                }
                tensors.Add(new TensorToWrite(name, info.DType, info.Shape, data));
                after += info.ByteLength;
            }
            SafeTensorsWriter.WriteSharded(directory, tensors, QuantizedCheckpointWriter.MaxShardBytes, new Dictionary<string, string> { ["format"] = "pt" });

            var config = QuantizedCheckpointWriter.ReadConfig(sourceDirectory);
            config["num_hidden_layers"] = next;
            // The per-layer list of newer configs follows the removal.
            if (config["layer_types"] is JsonArray types && types.Count == layers)
                config["layer_types"] = new JsonArray([.. types.Where((_, i) => target[i] >= 0).Select(n => n?.DeepClone())]);
            config[DroppedBlock.ConfigKey] = new JsonArray([.. zeroed.Select(b => (JsonNode)new JsonObject { ["layer"] = b.Layer, ["block"] = b.BlockName })]);
            config[ProvenanceKey] = new JsonObject
            {
                ["source_layers"] = layers,
                ["removed_layers"] = new JsonArray([.. removed.Select(i => (JsonNode)JsonValue.Create(i))]),
                ["dropped_units"] = new JsonArray([.. Enumerable.Range(0, levels.Count).Where(u => levels[u] == DepthUnits.Dropped)
                    .Select(u => (JsonNode)JsonValue.Create(DepthUnits.Name(u)))]),
            };
            AtomicFile.WriteAllText(Path.Combine(directory, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            foreach (var file in QuantizedCheckpointWriter.CopiedFiles)
            {
                string source = Path.Combine(sourceDirectory, file);
                if (File.Exists(source)) File.Copy(source, Path.Combine(directory, file));
            }
            return new DepthCheckpoint(next, removed, zeroed, before, after);
        });
    }
}
