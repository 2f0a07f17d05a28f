using System.Text.Json.Nodes;
using LlmPress.IO;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Sparsity;

/// <summary>
/// Writes a pruned model directory in the quantized checkpoints' Hugging Face layout (<see cref="QuantizedCheckpointWriter"/>:
/// temporary directory renamed into place, tokenizer files, report.json/report.md): pruned linears dense with exact
/// zeros in the source dtype, or N:M ones in compressed-tensors' bitmask layout (<see cref="SparseBitmask"/>) when
/// <see cref="PruneOptions.StorageFor"/> says so; jointly quantized linears packed exactly like quantize's output.
/// config.json gains a sparsity_config (<see cref="SparseCheckpoint"/> reads it) and, for joint runs, quantize's
/// quantization_config.
/// </summary>
public static class PrunedCheckpointWriter
{
    /// <summary>Writes the directory and returns the report with the byte totals filled in.</summary>
    /// <exception cref="IOException">The output directory exists and <paramref name="overwrite"/> is false.</exception>
    public static QuantizationReport Write(string sourceDirectory, TensorStore store, PruningResult result, PruneOptions options,
        string outputDirectory, bool overwrite)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(options);
        return QuantizedCheckpointWriter.WriteDirectory(outputDirectory, overwrite, directory =>
        {
            var replaced = new Dictionary<string, IReadOnlyList<TensorToWrite>>(StringComparer.Ordinal);
            var bitmaskLayers = new List<string>();
            var packed = new List<(string, Quantization.QuantFormat)>();
            foreach (var l in result.Layers)
            {
                string name = l.Name + ".weight";
                if (!store.TryGetInfo(name, out var info))
                    throw new InvalidDataException($"{store.Path}: pruned layer {l.Name} has no tensor {name} in the source checkpoint.");
                if (l.Packed is { } p)
                {
                    replaced[name] = [.. p.Tensors.Select(t => t.ToTensorToWrite(name))];
                    packed.Add((l.Name, p.Format));
                    continue;
                }
                byte[] bytes = StoredValues.ToBytes(info.DType, l.Weight);
                if (options.StorageFor(l.Name, info.DType, l.Rows, l.Cols).Bitmask)
                {
                    replaced[name] = SparseBitmask.Encode(l.Name, bytes, info.DType, l.Rows, l.Cols, options.PatternFor(l.Name));
                    bitmaskLayers.Add(l.Name);
                }
                else
                    replaced[name] = [new TensorToWrite(name, info.DType, [l.Rows, l.Cols], bytes)];
            }
            var (before, after) = QuantizedCheckpointWriter.WriteTensors(store, directory, replaced);
            var report = result.Report with { TotalBytesBefore = before, TotalBytesAfter = after };

            var root = QuantizedCheckpointWriter.ReadConfig(sourceDirectory);
            root[SparseCheckpoint.ConfigKey] = SparsityConfig(result, options, bitmaskLayers, report);
            if (options.EffectiveQuantize is { } q) root["quantization_config"] = QuantizedCheckpointWriter.QuantizationConfig(q, packed);
            QuantizedCheckpointWriter.Finish(sourceDirectory, directory, root, report);
            return report;
        });
    }

    private static JsonObject SparsityConfig(PruningResult result, PruneOptions options, List<string> bitmaskLayers, QuantizationReport report)
    {
        var targets = new JsonObject();
        var pruned = new JsonObject();
        foreach (var l in result.Report.Layers)
        {
            targets[l.Name] = l.Sparsity;
            pruned[l.Name] = l.PrunedWeights;
        }
        return new JsonObject
        {
            ["pruned_by"] = SparseCheckpoint.PrunedBy,
            ["method"] = PruneOptions.MethodName(options.Method),
            // compressed-tensors' fields: the storage format of the sparse layers, the default structure, the overall sparsity.
            ["format"] = bitmaskLayers.Count > 0 ? SparseBitmask.FormatName : "dense",
            ["sparsity_structure"] = options.Sparsity.IsNOfM ? options.Sparsity.Name : "unstructured",
            ["global_sparsity"] = report.AchievedSparsity,
            ["sparsity"] = options.Sparsity.Name,
            ["kept_layers"] = options.KeepLayers.Count == 0 ? null : new JsonArray([.. options.KeepLayers.Select(p => (JsonNode)JsonValue.Create(p))]),
            ["jointly_quantized"] = options.Quantize is not null,
            // Pruned linears stored in the bitmask layout ("X.compressed", "X.bitmask", "X.shape" instead of "X.weight").
            ["bitmask_layers"] = new JsonArray([.. bitmaskLayers.Select(n => (JsonNode)JsonValue.Create(n))]),
            ["layer_sparsity"] = targets,
            ["pruned_weights"] = pruned,
        };
    }
}
