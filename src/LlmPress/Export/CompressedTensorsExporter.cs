using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Export;

/// <summary>
/// Exports an `llmpress quantize` output to the compressed-tensors layout vLLM loads (as llm-compressor writes it):
/// model.safetensors with each quantized linear's "&lt;module&gt;.weight_*" tensors (<see cref="CompressedTensorsCodec"/>),
/// every other tensor copied as stored, and config.json whose quantization_config has quant_method "compressed-tensors",
/// one config group per <see cref="CompressedTensorsScheme"/>, and "ignore" listing lm_head (unless quantized) and every
/// linear left dense.
/// </summary>
/// <remarks>
/// Codes and scales are copied, never re-quantized, so each layer dequantizes to exactly what the quantizer produced.
/// Layers compressed-tensors cannot hold (INT2/INT3, HIGGS, formats with an online Hadamard rotation, groups that do not
/// divide the columns) are refused with the reason, or with <see cref="CompressedTensorsExportOptions.DenseFallback"/>
/// written as dequantized FP32 weights and ignored. Layers vLLM fuses (q/k/v, gate/up) must share a scheme, and for
/// NVFP4 a global scale, since vLLM keeps one per fused layer.
/// Everything is written into a temporary sibling directory, read back and checked (<see cref="CompressedTensorsExportOptions.Verify"/>),
/// then renamed into place; a failure leaves nothing at the output path.
/// </remarks>
public static class CompressedTensorsExporter
{
    /// <summary>quantization_config.quant_method of the output.</summary>
    public const string QuantMethod = "compressed-tensors";

    // Weights are read again where needed rather than kept: the packed model need not sit in memory twice.
    private sealed record LayerPlan(string Module, int Rows, int Cols, QuantFormat Format, CompressedTensorsScheme? Scheme, float GlobalScale, string Detail);

    /// <summary>Exports <paramref name="modelDirectory"/> (an `llmpress quantize` output) into <paramref name="outputDirectory"/>.</summary>
    /// <param name="progress">Called with (done, total) as layers are encoded and verified.</param>
    /// <exception cref="InvalidDataException">Not a quantized checkpoint, a layer that cannot be written (the message names it and says why), or a failed verification.</exception>
    /// <exception cref="IOException">The output exists and <see cref="CompressedTensorsExportOptions.Overwrite"/> is false.</exception>
    public static CompressedTensorsExportReport Export(string modelDirectory, string outputDirectory, CompressedTensorsExportOptions options,
        Action<int, int>? progress = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelDirectory);
        ArgumentException.ThrowIfNullOrEmpty(outputDirectory);
        ArgumentNullException.ThrowIfNull(options);
        var clock = Stopwatch.StartNew();
        if (!Directory.Exists(modelDirectory)) throw new DirectoryNotFoundException($"{modelDirectory}: model directory not found.");
        var quantized = QuantizedCheckpoint.TryLoad(modelDirectory) ?? throw new InvalidDataException(
            $"{modelDirectory}: not an `llmpress quantize` output (config.json has no quantization_config with quant_method \"{QuantizedCheckpoint.QuantMethodName}\"); " +
            "--compressed-tensors exports quantized layers, so quantize the model first.");
        var config = ModelConfig.Load(modelDirectory);
        string target = Path.GetFullPath(outputDirectory.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        if ((Directory.Exists(target) || File.Exists(target)) && !options.Overwrite)
            throw new IOException($"{outputDirectory}: output already exists; choose another directory or pass --force to replace it.");
        if (Path.GetFullPath(modelDirectory).TrimEnd(Path.DirectorySeparatorChar) == target)
            throw new IOException($"{outputDirectory}: is the model directory itself; choose another output directory.");
        using var store = TensorStore.Open(modelDirectory);

        var plans = PlanLayers(config, store, quantized, options);
        int total = plans.Count * (options.Verify ? 2 : 1), done = 0;
        var tensors = new List<TensorToWrite>();
        int copied = 0;
        foreach (var info in store.Tensors)
        {
            int cut = info.Name.LastIndexOf(".weight.", StringComparison.Ordinal);
            if (cut > 0 && quantized.IsQuantized(info.Name[..cut])) continue; // LlmPress's packed tensors, replaced below
            tensors.Add(new TensorToWrite(info.Name, info.DType, info.Shape, store.GetData(info.Name)));
            copied++;
        }
        foreach (var plan in plans)
        {
            var weight = quantized.ReadPacked(store, plan.Module, plan.Rows, plan.Cols);
            if (plan.Scheme is not null) tensors.AddRange(CompressedTensorsCodec.Encode(plan.Module, weight, plan.Scheme));
            else tensors.Add(DenseTensor(plan, weight));
            progress?.Invoke(++done, total);
        }

        var ignore = IgnoreList(store, quantized, plans);
        var (quantizationConfig, format) = QuantizationConfig(plans, ignore);
        var warnings = Warnings(config, plans);

        string parent = Path.GetDirectoryName(target) ?? ".";
        Directory.CreateDirectory(parent);
        string temp = Path.Combine(parent, $".{Path.GetFileName(target)}.tmp-{Guid.NewGuid().ToString("N")[..12]}");
        try
        {
            Directory.CreateDirectory(temp);
            SafeTensorsWriter.WriteSharded(temp, tensors, QuantizedCheckpointWriter.MaxShardBytes,
                new Dictionary<string, string> { ["format"] = "pt", ["exported_by"] = "llmpress" });
            WriteConfig(modelDirectory, temp, quantizationConfig);
            foreach (var name in QuantizedCheckpointWriter.CopiedFiles)
            {
                string source = Path.Combine(modelDirectory, name);
                if (File.Exists(source)) File.Copy(source, Path.Combine(temp, name));
            }
            if (options.Verify) Verify(temp, store, quantized, plans, tensors.Count, () => progress?.Invoke(++done, total));
            long bytes = 0;
            foreach (var file in Directory.EnumerateFiles(temp, "*.safetensors")) bytes += new FileInfo(file).Length;
            MoveIntoPlace(temp, target);
            return new CompressedTensorsExportReport(target, bytes, format,
                plans.ConvertAll(p => new CompressedTensorsLayerReport(p.Module, p.Format.Name, p.Scheme, p.Detail)),
                copied, ignore, warnings, options.Verify, clock.Elapsed.TotalSeconds);
        }
        catch
        {
            try { if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    private static List<LayerPlan> PlanLayers(ModelConfig config, TensorStore store, QuantizedCheckpoint quantized, CompressedTensorsExportOptions options)
    {
        var plans = new List<LayerPlan>();
        foreach (var (module, format) in quantized.Layers)
        {
            var (rows, cols) = config.LinearShape(module);
            var weight = quantized.ReadPacked(store, module, rows, cols);
            var scheme = CompressedTensorsScheme.For(format, rows, cols, out string reason);
            if (scheme is null && !options.DenseFallback)
                throw new InvalidDataException(
                    $"{module}: {format.Name} [{rows}, {cols}] cannot be written as compressed-tensors: {reason}. " +
                    "Pass --dense-fallback to write such layers as dequantized FP32 weights (listed in quantization_config.ignore).");
            plans.Add(new LayerPlan(module, rows, cols, format, scheme, weight.GlobalScale,
                scheme is not null ? $"{format.Name} → {scheme} (codes and scales copied)" : $"{format.Name} → dense F32, dequantized{(format.RotationBlockSize is not null ? " (rotation undone)" : "")}: {reason}"));
        }
        CheckFusedLayers(config, plans);
        return plans;
    }

    // vLLM loads q/k/v as one qkv_proj and gate/up as one gate_up_proj: one scheme for all shards, and for NVFP4 one
    // global scale (it keeps weight_global_scale.max()), so shards with different g would be dequantized wrongly.
    private static void CheckFusedLayers(ModelConfig config, List<LayerPlan> plans)
    {
        var byModule = plans.ToDictionary(p => p.Module, StringComparer.Ordinal);
        for (int l = 0; l < config.LayerCount; l++)
        {
            string[][] fused = [[TensorNames.QueryProj(l), TensorNames.KeyProj(l), TensorNames.ValueProj(l)], [TensorNames.GateProj(l), TensorNames.UpProj(l)]];
            foreach (var group in fused)
            {
                var members = group.Where(byModule.ContainsKey).Select(m => byModule[m]).ToList();
                if (members.Count == 0) continue;
                string names = string.Join(", ", group);
                if (members.Count != group.Length)
                    throw new InvalidDataException($"{names}: vLLM runs these as one fused layer, but only {string.Join(", ", members.Select(m => m.Module))} is quantized; a fused layer needs one scheme.");
                if (members.Any(m => m.Scheme != members[0].Scheme))
                    throw new InvalidDataException(
                        $"{names}: vLLM runs these as one fused layer, which needs one scheme, but they would be written as {string.Join(" / ", members.Select(m => m.Scheme?.ToString() ?? "dense"))}.");
                if (members[0].Scheme?.Format == CompressedTensorsScheme.Nvfp4PackQuantized)
                {
                    var scales = members.Select(m => m.GlobalScale).ToList();
                    if (scales.Any(g => BitConverter.SingleToInt32Bits(g) != BitConverter.SingleToInt32Bits(scales[0])))
                        throw new InvalidDataException(
                            $"{names}: vLLM fuses these into one layer with a single NVFP4 global scale (the largest), but theirs differ " +
                            $"({string.Join(", ", scales.Select(g => g.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}), so vLLM would dequantize some of them wrongly; " +
                            "fused layers must be quantized with one shared global scale (as llm-compressor does), which `llmpress quantize` does not do yet.");
                }
            }
        }
    }

    private static TensorToWrite DenseTensor(LayerPlan plan, PackedWeight weight)
    {
        float[] values = weight.Dequantize();
        return new TensorToWrite(TensorNames.Weight(plan.Module), Numerics.DType.F32, [plan.Rows, plan.Cols], MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
    }

    // lm_head unless quantized (llm-compressor's default, harmless when tied), linears the quantizer left in float, and
    // dense fallbacks.
    private static List<string> IgnoreList(TensorStore store, QuantizedCheckpoint quantized, List<LayerPlan> plans)
    {
        var ignore = new List<string>();
        if (!quantized.IsQuantized(ModelConfig.LmHeadModule)) ignore.Add(ModelConfig.LmHeadModule);
        foreach (var info in store.Tensors)
        {
            if (!info.Name.EndsWith("_proj.weight", StringComparison.Ordinal) || info.Shape.Length != 2) continue;
            string module = info.Name[..^".weight".Length];
            if (!quantized.IsQuantized(module) && !ignore.Contains(module)) ignore.Add(module);
        }
        foreach (var plan in plans)
            if (plan.Scheme is null) ignore.Add(plan.Module);
        return ignore;
    }

    private static (JsonObject Config, string Format) QuantizationConfig(List<LayerPlan> plans, List<string> ignore)
    {
        var schemes = new List<CompressedTensorsScheme>();
        foreach (var plan in plans)
            if (plan.Scheme is not null && !schemes.Contains(plan.Scheme)) schemes.Add(plan.Scheme);
        string format = schemes.Count == 0 ? "dense"
            : schemes.TrueForAll(s => s.Format == schemes[0].Format) ? schemes[0].Format : "mixed-precision";
        var groups = new JsonObject();
        for (int i = 0; i < schemes.Count; i++)
        {
            var scheme = schemes[i];
            // One scheme: every Linear not ignored (llm-compressor's usual form). Several: each lists its modules by name.
            JsonArray targets = schemes.Count == 1
                ? ["Linear"]
                : new JsonArray([.. plans.Where(p => p.Scheme == scheme).Select(p => (JsonNode)JsonValue.Create(p.Module))]);
            var group = new JsonObject
            {
                ["targets"] = targets,
                ["weights"] = scheme.ToWeightsJson(),
                ["input_activations"] = null,
                ["output_activations"] = null,
            };
            if (format == "mixed-precision") group["format"] = scheme.Format;
            groups[$"group_{i}"] = group;
        }
        var config = new JsonObject
        {
            ["quant_method"] = QuantMethod,
            ["format"] = format,
            ["quantization_status"] = "compressed",
            ["config_groups"] = groups,
            ["ignore"] = new JsonArray([.. ignore.Select(n => (JsonNode)JsonValue.Create(n))]),
            ["kv_cache_scheme"] = null,
            ["sparsity_config"] = new JsonObject(),
        };
        return (config, format);
    }

    private static List<string> Warnings(ModelConfig config, List<LayerPlan> plans)
    {
        var warnings = new List<string>();
        bool intLayers = plans.Exists(p => p.Scheme?.Format == CompressedTensorsScheme.PackQuantized);
        if (intLayers && config.TorchDtype == "bfloat16")
            warnings.Add("weight_scale is FP16 (the quantizer's exact scales); vLLM casts scales to the serving dtype, so serve with --dtype float16 to keep them exact (bfloat16 rounds them).");
        foreach (var g in plans.Where(p => p.Scheme is { Format: CompressedTensorsScheme.PackQuantized, GroupSize: int size } && size is not (32 or 64 or 128))
                     .Select(p => p.Scheme!.GroupSize).Distinct())
            warnings.Add($"group_size {g}: vLLM's Marlin kernels take groups of 32, 64 or 128 (or per channel); other group sizes need another kernel (Machete, Exllama) or may not load.");
        var padded = plans.Where(p => p.Scheme is { Format: CompressedTensorsScheme.PackQuantized, Symmetric: false } && p.Rows % p.Scheme.PackFactor != 0).ToList();
        if (padded.Count > 0)
            warnings.Add($"{padded.Count} asymmetric layer(s) ({padded[0].Module}, ...) have output rows that are not a multiple of {padded[0].Scheme!.PackFactor} " +
                $"({padded[0].Rows}): their packed zero points are padded as pack_to_int32 does, but vLLM's loader expects out / {padded[0].Scheme!.PackFactor} rows and rejects them.");
        if (plans.Exists(p => p.Module == ModelConfig.LmHeadModule && p.Scheme is not null))
            warnings.Add("lm_head is quantized (quantize --lm-head): vLLM reads a compressed-tensors lm_head only since its fix for ParallelLMHead "
                + "(vllm-project/vllm#37291, 2026); older versions stop with \"no parameter lm_head.weight_packed\", and SGLang before sgl-project/sglang#28130 loads it "
                + "without error but serves garbage. Quantize with --lm-head keep for engines without it.");
        int dense = plans.Count(p => p.Scheme is null);
        if (dense > 0)
            warnings.Add($"{dense} quantized layer(s) written dense as FP32 (--dense-fallback); vLLM runs them unquantized.");
        return warnings;
    }

    private static void WriteConfig(string modelDirectory, string directory, JsonObject quantizationConfig)
    {
        string configFile = Path.Combine(modelDirectory, "config.json");
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(configFile), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{configFile}: not valid JSON ({e.Message}).", e);
        }
        if (root is not JsonObject obj) throw new InvalidDataException($"{configFile}: the root is not a JSON object.");
        // Replaces LlmPress's own. With every layer dense (--dense-fallback) there is nothing quantized: a plain float checkpoint.
        if (quantizationConfig["format"]!.GetValue<string>() == "dense") obj.Remove("quantization_config");
        else obj["quantization_config"] = quantizationConfig;
        AtomicFile.WriteAllText(Path.Combine(directory, "config.json"), obj.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static void MoveIntoPlace(string temp, string target)
    {
        if (!Directory.Exists(target) && !File.Exists(target))
        {
            Directory.Move(temp, target);
            return;
        }
        string old = temp + ".old";
        if (Directory.Exists(target)) Directory.Move(target, old); else File.Move(target, old);
        Directory.Move(temp, target);
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true); else File.Delete(old);
    }

    /// <summary>
    /// Reads the written directory back as a compressed-tensors loader would: the quantization_config's groups and ignore
    /// list resolve every quantized layer to the planned scheme, each layer decoded by compressed-tensors' rules
    /// (<see cref="CompressedTensorsCodec.Decode"/>) equals the source's <see cref="PackedWeight.Dequantize()"/> bit for
    /// bit (dense fallbacks too), every copied tensor is byte-identical to the source, and nothing else is present.
    /// </summary>
    private static void Verify(string directory, TensorStore source, QuantizedCheckpoint quantized, List<LayerPlan> plans, int tensorCount, Action step)
    {
        string Fail(string what) => $"{directory}: verification failed: {what}";
        // The config as a loader reads it (CompressedTensorsCheckpoint resolves ignore and targets as compressed-tensors does).
        var checkpoint = CompressedTensorsCheckpoint.TryLoad(directory);
        if (checkpoint is null && plans.Exists(p => p.Scheme is not null))
            throw new InvalidDataException(Fail("config.json has no compressed compressed-tensors quantization_config."));
        var ignore = checkpoint?.Ignore.ToHashSet(StringComparer.Ordinal) ?? [];

        using var written = TensorStore.Open(directory);
        // Exactly the expected names: the copied tensors and each layer's scheme tensors (or its dense weight), nothing else.
        var expectedNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var info in source.Tensors)
        {
            int cut = info.Name.LastIndexOf(".weight.", StringComparison.Ordinal);
            if (!(cut > 0 && quantized.IsQuantized(info.Name[..cut]))) expectedNames.Add(info.Name);
        }
        foreach (var plan in plans)
        {
            if (plan.Scheme is null) expectedNames.Add(TensorNames.Weight(plan.Module));
            else expectedNames.UnionWith(CompressedTensorsCodec.TensorNames(plan.Module, plan.Scheme));
        }
        if (written.Tensors.Count != tensorCount || !expectedNames.SetEquals(written.Names))
            throw new InvalidDataException(Fail($"{written.Tensors.Count} tensors read back ({tensorCount} written), not the {expectedNames.Count} the layout expects."));
        foreach (var info in source.Tensors)
        {
            int cut = info.Name.LastIndexOf(".weight.", StringComparison.Ordinal);
            if (cut > 0 && quantized.IsQuantized(info.Name[..cut])) continue;
            if (!written.TryGetInfo(info.Name, out var back) || back.DType != info.DType || !back.Shape.AsSpan().SequenceEqual(info.Shape)
                || !written.GetData(info.Name).Span.SequenceEqual(source.GetData(info.Name).Span))
                throw new InvalidDataException(Fail($"tensor {info.Name} is not read back byte-identical to the source."));
            if (info.Name.EndsWith("_proj.weight", StringComparison.Ordinal) && !ignore.Contains(info.Name[..^".weight".Length]))
                throw new InvalidDataException(Fail($"{info.Name} is a float linear but not in quantization_config.ignore."));
        }
        foreach (var plan in plans)
        {
            var scheme = checkpoint?.SchemeFor(plan.Module);
            if (scheme != plan.Scheme || (checkpoint is not null && (plan.Scheme is null) != ignore.Contains(plan.Module)))
                throw new InvalidDataException(Fail($"{plan.Module} resolves to {scheme?.ToString() ?? "no scheme"} in quantization_config, planned {plan.Scheme?.ToString() ?? "dense (ignored)"}."));
            float[] values = scheme is not null
                ? checkpoint!.LoadWeight(written, plan.Module, plan.Rows, plan.Cols).ToFloatArray()
                : written.ReadFloats(TensorNames.Weight(plan.Module), plan.Rows, plan.Cols);
            float[] expected = quantized.ReadPacked(source, plan.Module, plan.Rows, plan.Cols).Dequantize();
            // Bit patterns, so −0 ≠ +0 and NaN payloads count; the vectorized comparison first, the element only on failure.
            if (!MemoryMarshal.AsBytes(values.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(expected.AsSpan())))
            {
                int i = MemoryMarshal.AsBytes(values.AsSpan()).CommonPrefixLength(MemoryMarshal.AsBytes(expected.AsSpan())) / sizeof(float);
                throw new InvalidDataException(Fail(
                    $"{plan.Module} element [{i / plan.Cols}, {i % plan.Cols}] dequantizes to {values[i]:R}, the quantizer produced {expected[i]:R}."));
            }
            step();
        }
    }
}
