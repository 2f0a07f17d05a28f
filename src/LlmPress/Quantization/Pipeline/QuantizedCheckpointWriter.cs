using System.Text.Json;
using System.Text.Json.Nodes;
using LlmPress.IO;

namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// Writes a quantized model directory in Hugging Face layout: config.json with an added quantization_config,
/// model.safetensors, sharded past <see cref="MaxShardBytes"/> (every non-quantized tensor as stored; each quantized "X.weight" replaced by its packed tensors
/// "X.weight.&lt;suffix&gt;"), the tokenizer files, report.json and report.md. Everything goes into a temporary sibling
/// directory that is renamed into place at the end, so a failure leaves nothing half-written.
/// </summary>
public static class QuantizedCheckpointWriter
{
    /// <summary>Files copied unchanged from the source directory when present.</summary>
    public static readonly IReadOnlyList<string> CopiedFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"];

    /// <summary>Shard limit of the weights (transformers' save_pretrained default, "5GB"); smaller models get one model.safetensors.</summary>
    public const long MaxShardBytes = 5_000_000_000;

    /// <summary>Writes the directory and returns the report with the byte totals filled in.</summary>
    /// <param name="sourceDirectory">The original model directory (config.json, tokenizer files).</param>
    /// <param name="store">The original weights.</param>
    /// <param name="result">The pipeline's output.</param>
    /// <param name="options">Method and format (recorded in quantization_config).</param>
    /// <param name="outputDirectory">Where the model goes.</param>
    /// <param name="overwrite">Replace an existing <paramref name="outputDirectory"/>; otherwise it is refused.</param>
    /// <exception cref="IOException">The output directory exists and <paramref name="overwrite"/> is false.</exception>
    public static QuantizationReport Write(string sourceDirectory, TensorStore store, QuantizationResult result, QuantizeOptions options,
        string outputDirectory, bool overwrite)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(options);
        string target = Path.GetFullPath(outputDirectory.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        if ((Directory.Exists(target) || File.Exists(target)) && !overwrite)
            throw new IOException($"{outputDirectory}: output already exists; choose another -o directory or pass --force to replace it.");
        string parent = Path.GetDirectoryName(target) ?? ".";
        Directory.CreateDirectory(parent);
        string temp = Path.Combine(parent, $".{Path.GetFileName(target)}.tmp-{Guid.NewGuid().ToString("N")[..12]}");
        Directory.CreateDirectory(temp);
        try
        {
            var report = WriteInto(sourceDirectory, store, result, options, temp);
            if (Directory.Exists(target) || File.Exists(target))
            {
                string old = temp + ".old";
                if (Directory.Exists(target)) Directory.Move(target, old); else File.Move(target, old);
                Directory.Move(temp, target);
                if (Directory.Exists(old)) Directory.Delete(old, recursive: true); else File.Delete(old);
            }
            else
            {
                Directory.Move(temp, target);
            }
            return report;
        }
        catch
        {
            try { if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    private static QuantizationReport WriteInto(string sourceDirectory, TensorStore store, QuantizationResult result, QuantizeOptions options, string directory)
    {
        var quantized = result.Layers.ToDictionary(l => l.Name + ".weight", StringComparer.Ordinal);
        var tensors = new List<TensorToWrite>();
        long before = 0, after = 0;
        foreach (var info in store.Tensors)
        {
            before += info.ByteLength;
            if (quantized.ContainsKey(info.Name)) continue;
            tensors.Add(new TensorToWrite(info.Name, info.DType, info.Shape, store.GetData(info.Name)));
            after += info.ByteLength;
        }
        foreach (var (name, layer) in quantized)
        {
            if (!store.Contains(name))
                throw new InvalidDataException($"{store.Path}: quantized layer {layer.Name} has no tensor {name} in the source checkpoint.");
            foreach (var t in layer.Weight.Tensors)
            {
                tensors.Add(t.ToTensorToWrite(name));
                after += t.Data.LongLength;
            }
        }
        SafeTensorsWriter.WriteSharded(directory, tensors, MaxShardBytes,
            new Dictionary<string, string> { ["format"] = "pt", ["quantized_by"] = QuantizedCheckpoint.QuantMethodName });

        // config.json with quantization_config.
        string configFile = Path.Combine(sourceDirectory, "config.json");
        JsonNode? config;
        try
        {
            config = JsonNode.Parse(File.ReadAllText(configFile), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{configFile}: not valid JSON ({e.Message}).", e);
        }
        if (config is not JsonObject root) throw new InvalidDataException($"{configFile}: the root is not a JSON object.");
        var format = options.EffectiveFormat;
        var layerFormats = new JsonObject();
        foreach (var l in result.Layers) layerFormats[l.Name] = l.Weight.Format.Name;
        bool rotates = result.Layers.Any(l => l.Weight.Format.RotationBlockSize is not null);
        root["quantization_config"] = new JsonObject
        {
            ["quant_method"] = QuantizedCheckpoint.QuantMethodName,
            ["method"] = QuantizationPipeline.MethodName(options.Method),
            ["format"] = format.Name,
            ["bits"] = format.Bits,
            ["group_size"] = format.GroupSize,
            ["sym"] = format.Symmetric,
            ["act_order"] = options.UsesGptq ? options.EffectiveActOrder : null,
            ["scale_search"] = format.Kind == QuantKind.Higgs ? null : options.EffectiveScaleSearch == ScaleSearch.Mse ? "mse" : "minmax",
            ["rotation_block_size"] = format.RotationBlockSize,
            // How to run the rotated layers: weights are stored as W' = pad(W)·diag(H_b/√b, …) (b from the layer's format
            // name, "-rotB" or HIGGS' default 1024), so each input row must be zero-padded and transformed the same way.
            ["rotation"] = rotates
                ? new JsonObject { ["type"] = "hadamard", ["normalized"] = true, ["applied_to"] = "input_activations_online" }
                : null,
            ["nvfp4_fused_global_scale"] = format.Kind == QuantKind.Nvfp4 ? options.ShareNvfp4GlobalScale : null,
            ["kept_layers"] = options.KeepLayers.Count == 0 ? null : new JsonArray([.. options.KeepLayers.Select(p => (JsonNode)JsonValue.Create(p))]),
            ["quantized_layers"] = new JsonArray([.. result.Layers.Select(l => (JsonNode)JsonValue.Create(l.Name))]),
            ["layer_formats"] = layerFormats,
        };
        AtomicFile.WriteAllText(Path.Combine(directory, "config.json"), root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        foreach (var name in CopiedFiles)
        {
            string source = Path.Combine(sourceDirectory, name);
            if (File.Exists(source)) File.Copy(source, Path.Combine(directory, name));
        }

        var report = result.Report with { TotalBytesBefore = before, TotalBytesAfter = after };
        AtomicFile.WriteAllText(Path.Combine(directory, "report.json"), QuantizationReportWriter.ToJsonText(report));
        AtomicFile.WriteAllText(Path.Combine(directory, "report.md"), QuantizationReportWriter.ToMarkdown(report));
        return report;
    }
}
