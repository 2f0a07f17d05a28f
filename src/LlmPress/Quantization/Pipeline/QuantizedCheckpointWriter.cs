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
        return WriteDirectory(outputDirectory, overwrite, directory => WriteInto(sourceDirectory, store, result, options, directory));
    }

    /// <summary>
    /// Runs <paramref name="writeInto"/> on a fresh temporary sibling of <paramref name="outputDirectory"/> and renames
    /// it into place when it returns (replacing an existing directory only when <paramref name="overwrite"/>); on failure
    /// the temporary directory is deleted and nothing changes.
    /// </summary>
    /// <exception cref="IOException">The output directory exists and <paramref name="overwrite"/> is false.</exception>
    internal static T WriteDirectory<T>(string outputDirectory, bool overwrite, Func<string, T> writeInto)
    {
        string target = Path.GetFullPath(outputDirectory.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        if ((Directory.Exists(target) || File.Exists(target)) && !overwrite)
            throw new IOException($"{outputDirectory}: output already exists; choose another -o directory or pass --force to replace it.");
        string parent = Path.GetDirectoryName(target) ?? ".";
        Directory.CreateDirectory(parent);
        string temp = Path.Combine(parent, $".{Path.GetFileName(target)}.tmp-{Guid.NewGuid().ToString("N")[..12]}");
        Directory.CreateDirectory(temp);
        try
        {
            var report = writeInto(temp);
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
        var replaced = new Dictionary<string, IReadOnlyList<TensorToWrite>>(StringComparer.Ordinal);
        var added = new List<TensorToWrite>();
        // A quantized head of a tied model has no lm_head.weight to replace: its tensors are added beside the embedding
        // (kept as stored) and the config is written untied, which loaders read as the same model.
        bool untie = false;
        foreach (var l in result.Layers)
        {
            var tensors = l.Weight.Tensors.Select(t => t.ToTensorToWrite(l.Name + ".weight")).ToList();
            if (l.Name == Models.ModelConfig.LmHeadModule && !store.Contains(Models.TensorNames.LmHead))
            {
                added.AddRange(tensors);
                untie = true;
            }
            else replaced[l.Name + ".weight"] = tensors;
        }
        var (before, after) = WriteTensors(store, directory, replaced, added);

        var root = ReadConfig(sourceDirectory);
        if (untie) root["tie_word_embeddings"] = false;
        root["quantization_config"] = QuantizationConfig(options, [.. result.Layers.Select(l => (l.Name, l.Weight.Format))]);
        var report = result.Report with { TotalBytesBefore = before, TotalBytesAfter = after };
        Finish(sourceDirectory, directory, root, report);
        return report;
    }

    /// <summary>
    /// Writes the store's tensors into <paramref name="directory"/> (model.safetensors, sharded past
    /// <see cref="MaxShardBytes"/>): every tensor as stored, except that each key of <paramref name="replaced"/> is
    /// replaced by its tensors, and <paramref name="added"/> written too. Returns the bytes of all tensors before and after.
    /// </summary>
    /// <exception cref="InvalidDataException">A replaced tensor is not in the store.</exception>
    internal static (long Before, long After) WriteTensors(TensorStore store, string directory, IReadOnlyDictionary<string, IReadOnlyList<TensorToWrite>> replaced,
        IReadOnlyList<TensorToWrite>? added = null)
    {
        var tensors = new List<TensorToWrite>();
        long before = 0, after = 0;
        foreach (var info in store.Tensors)
        {
            before += info.ByteLength;
            if (replaced.ContainsKey(info.Name)) continue;
            tensors.Add(new TensorToWrite(info.Name, info.DType, info.Shape, store.GetData(info.Name)));
            after += info.ByteLength;
        }
        foreach (var (name, replacement) in replaced)
        {
            if (!store.Contains(name))
                throw new InvalidDataException($"{store.Path}: compressed layer {name[..^".weight".Length]} has no tensor {name} in the source checkpoint.");
            foreach (var t in replacement)
            {
                tensors.Add(t);
                after += t.Data.Length;
            }
        }
        foreach (var t in added ?? [])
        {
            tensors.Add(t);
            after += t.Data.Length;
        }
        SafeTensorsWriter.WriteSharded(directory, tensors, MaxShardBytes,
            new Dictionary<string, string> { ["format"] = "pt", ["quantized_by"] = QuantizedCheckpoint.QuantMethodName });
        return (before, after);
    }

    /// <summary>The source directory's config.json as a JSON object.</summary>
    /// <exception cref="InvalidDataException">It is not valid JSON or not an object (the message names the file).</exception>
    internal static JsonObject ReadConfig(string sourceDirectory)
    {
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
        return root;
    }

    /// <summary>config.json's quantization_config for <paramref name="layers"/> (module name, format) quantized with <paramref name="options"/>.</summary>
    internal static JsonObject QuantizationConfig(QuantizeOptions options, IReadOnlyList<(string Name, QuantFormat Format)> layers)
    {
        var format = options.EffectiveFormat;
        var layerFormats = new JsonObject();
        foreach (var l in layers) layerFormats[l.Name] = l.Format.Name;
        bool rotates = layers.Any(l => l.Format.RotationBlockSize is not null);
        return new JsonObject
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
            ["quantized_layers"] = new JsonArray([.. layers.Select(l => (JsonNode)JsonValue.Create(l.Name))]),
            ["layer_formats"] = layerFormats,
        };
    }

    /// <summary>Writes config.json, the copied tokenizer files, report.json and report.md into <paramref name="directory"/>.</summary>
    internal static void Finish(string sourceDirectory, string directory, JsonObject config, QuantizationReport report)
    {
        AtomicFile.WriteAllText(Path.Combine(directory, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        foreach (var name in CopiedFiles)
        {
            string source = Path.Combine(sourceDirectory, name);
            if (File.Exists(source)) File.Copy(source, Path.Combine(directory, name));
        }
        AtomicFile.WriteAllText(Path.Combine(directory, "report.json"), QuantizationReportWriter.ToJsonText(report));
        AtomicFile.WriteAllText(Path.Combine(directory, "report.md"), QuantizationReportWriter.ToMarkdown(report));
    }
}
