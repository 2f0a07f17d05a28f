using System.Diagnostics;
using System.Runtime.InteropServices;
using LlmPress.Gguf;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Export;

/// <summary>
/// Exports a Hugging Face–layout checkpoint (any float dtype) or an `llmpress quantize` output to one GGUF v3 file that
/// llama.cpp loads as is: llama / qwen2 architecture metadata, the tokenizer (<see cref="GgufTokenizerMetadata"/>),
/// llama.cpp tensor names, and q/k rows in llama.cpp's RoPE order.
/// </summary>
/// <remarks>
/// Quantized layers whose grid is a GGUF type are written exactly (codes and scales copied, nibbles reordered):
/// int4-sym-g32 → Q4_0 (s·(q − 8) is Q4_0's d·(q − 8)), int8-sym-g32 → Q8_0 (s·(q − 128) = d·q', q' = q − 128), and
/// mxfp4 → MXFP4 (same E8M0 exponent and E2M1 codes), all without rotation and with whole 32-column groups.
/// Others (asymmetric or other group sizes, NVFP4, HIGGS, anything rotated) have no GGUF equivalent: they are
/// dequantized in the original basis (rotation undone) and converted to <see cref="GgufExportOptions.Type"/>, and the
/// report says so; <see cref="GgufExportOptions.RequireExact"/> refuses them instead.
/// A matrix whose column count is not a multiple of 32 cannot hold a block type: it falls back to F16 (float
/// checkpoints, as llama.cpp's converter does) or F32 (dequantized layers, which stay exact).
/// The file is written under a temporary name, verified (<see cref="GgufExportOptions.Verify"/>), then renamed.
/// </remarks>
public static class GgufExporter
{
    private sealed record Plan(GgufTensorReport Report, Func<byte[]> Encode, Action<GgufFile, GgufTensorInfo>? CheckValues);
    // CheckValues: null only for rope_freqs (computed here, nothing to compare with but the bytes).

    /// <summary>Exports <paramref name="modelDirectory"/> to <paramref name="outputPath"/>.</summary>
    /// <param name="progress">Called after each tensor written, with (done, total).</param>
    /// <exception cref="InvalidDataException">Unsupported model or tokenizer, a layer that cannot be written exactly under RequireExact, or a failed verification (nothing is left at the output path).</exception>
    public static GgufExportReport Export(string modelDirectory, string outputPath, GgufExportOptions options, Action<int, int>? progress = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelDirectory);
        ArgumentException.ThrowIfNullOrEmpty(outputPath);
        ArgumentNullException.ThrowIfNull(options);
        var clock = Stopwatch.StartNew();
        if (!Directory.Exists(modelDirectory)) throw new DirectoryNotFoundException($"{modelDirectory}: model directory not found.");
        var config = ModelConfig.Load(modelDirectory);
        using var store = TensorStore.Open(modelDirectory);
        var quantized = QuantizedCheckpoint.TryLoad(modelDirectory);
        var warnings = new List<string>();
        string arch = GgufModelMetadata.Architecture(config);
        if (config.SlidingWindow is int window && window < config.MaxPositions)
            warnings.Add($"sliding_window {window} is not representable in llama.cpp's llama architecture; the GGUF uses full attention.");

        var sparse = Sparsity.SparseCheckpoint.TryLoad(modelDirectory);
        var plans = BuildPlans(config, store, quantized, sparse, options, warnings);

        string tokenizerFile = options.TokenizerPath ?? Path.Combine(modelDirectory, "tokenizer.json");
        var metadata = GgufModelMetadata.Create(config, Path.GetFileName(Path.GetFullPath(modelDirectory).TrimEnd(Path.DirectorySeparatorChar)), FileType(plans));
        if (File.Exists(tokenizerFile)) metadata.AddRange(GgufTokenizerMetadata.Create(tokenizerFile, config.VocabSize, warnings));
        else if (options.TokenizerPath is not null) throw new FileNotFoundException($"{tokenizerFile}: tokenizer not found.", tokenizerFile);
        else
        {
            warnings.Add($"{modelDirectory} has no tokenizer.json: the GGUF has no tokenizer.ggml.* vocabulary, so llama.cpp cannot load it.");
            // Still record config.json's special ids, so a GGUF-loaded model knows its BOS/EOS.
            if (config.BosTokenId is int bos) metadata.Add(new("tokenizer.ggml.bos_token_id", GgufValue.UInt32((uint)bos)));
            if (config.EosTokenIds is [int eos, ..]) metadata.Add(new("tokenizer.ggml.eos_token_id", GgufValue.UInt32((uint)eos)));
        }

        var tensors = plans.ConvertAll(p => new GgufTensorToWrite(p.Report.Name, p.Report.Type, p.Report.Shape, () => p.Encode()));
        string fullOutput = Path.GetFullPath(outputPath);
        string staging = options.Verify ? fullOutput + ".unverified" : fullOutput;
        GgufWriter.Write(staging, metadata, tensors, progress);
        if (options.Verify)
        {
            try
            {
                Verify(staging, config, plans);
                File.Move(staging, fullOutput, overwrite: true);
            }
            catch
            {
                File.Delete(staging);
                throw;
            }
        }
        return new GgufExportReport(fullOutput, new FileInfo(fullOutput).Length, arch, plans.ConvertAll(p => p.Report), warnings, options.Verify,
            clock.Elapsed.TotalSeconds);
    }

    private static List<Plan> BuildPlans(ModelConfig c, TensorStore store, QuantizedCheckpoint? quantized, Sparsity.SparseCheckpoint? sparse,
        GgufExportOptions options, List<string> warnings)
    {
        string arch = GgufModelMetadata.Architecture(c);
        bool permute = GgufModelMetadata.PermutesQk(arch);
        int d = c.HiddenSize;
        var plans = new List<Plan>();

        // Embedding and head: MXFP4 is meant for linears (llama.cpp uses it for MoE experts), so they take Q8_0 then.
        var tableType = options.Type == GgmlType.MXFP4 ? GgmlType.Q8_0 : options.Type;
        plans.Add(Matrix(GgufTensorNames.Embedding, TensorNames.Embedding, "model.embed_tokens", c.VocabSize, d, tableType, 0));
        for (int l = 0; l < c.LayerCount; l++)
        {
            plans.Add(Vector(GgufTensorNames.AttentionNorm(l), TensorNames.InputNorm(l), d));
            foreach (var (module, name) in GgufTensorNames.Linears(l))
            {
                var (rows, cols) = c.LinearShape(module);
                bool qk = permute && (name.EndsWith(".attn_q", StringComparison.Ordinal) || name.EndsWith(".attn_k", StringComparison.Ordinal));
                int permuteHead = qk ? c.HeadDim : 0;
                plans.Add(Matrix(name + ".weight", TensorNames.Weight(module), module, rows, cols, options.Type, permuteHead));
                bool bias = name.EndsWith(".attn_output", StringComparison.Ordinal) ? c.OutputBias
                    : name.EndsWith(".attn_q", StringComparison.Ordinal) || name.EndsWith(".attn_k", StringComparison.Ordinal) || name.EndsWith(".attn_v", StringComparison.Ordinal) ? c.QkvBias
                    : false;
                if (bias) plans.Add(Vector(name + ".bias", TensorNames.Bias(module), rows, permuteHead));
            }
            plans.Add(Vector(GgufTensorNames.FfnNorm(l), TensorNames.PostAttentionNorm(l), d));
        }
        plans.Add(Vector(GgufTensorNames.FinalNorm, TensorNames.FinalNorm, d));
        if (!c.TieWordEmbeddings) plans.Add(Matrix(GgufTensorNames.Output, TensorNames.LmHead, "lm_head", c.VocabSize, d, tableType, 0));
        if (c.RopeScaling.Type == RopeScalingType.Llama3)
        {
            float[] factors = GgufModelMetadata.RopeFrequencyFactors(c);
            plans.Add(new Plan(new GgufTensorReport(GgufTensorNames.RopeFreqs, "rope_scaling (llama3)", GgmlType.F32, [factors.Length], GgufTensorMapping.Lossless,
                "Llama 3.1 RoPE factors, computed as convert_hf_to_gguf.py does"), () => MemoryMarshal.AsBytes(factors.AsSpan()).ToArray(), null));
        }
        return plans;

        Plan Vector(string name, string source, int length, int permuteHead = 0)
        {
            var info = store.GetInfo(source);
            string detail = $"{info.DType} → f32"; // norms and biases stay F32 as llama.cpp expects: always lossless
            return new Plan(new GgufTensorReport(name, source, GgmlType.F32, [length], GgufTensorMapping.Lossless, detail),
                () =>
                {
                    float[] v = store.ReadFloats(source, length);
                    byte[] bytes = MemoryMarshal.AsBytes(v.AsSpan()).ToArray();
                    return permuteHead > 0 ? QkPermutation.ToGguf(bytes, length, permuteHead) : bytes;
                },
                (file, written) => CheckBitIdentical(file, written, store.ReadFloats(source, length), length, 1, permuteHead, allowSignedZero: false));
        }

        Plan Matrix(string name, string source, string module, int rows, int cols, GgmlType requested, int permuteHead)
        {
            if (quantized is not null && quantized.IsQuantized(module))
                return Packed(name, module, rows, cols, requested, permuteHead);
            // A pruned layer in the N:M bitmask layout is written dense (GGUF has no sparse type): its zeros stay exact.
            bool bitmask = sparse is not null && sparse.IsBitmask(module);
            var stored = bitmask ? store.GetInfo($"{module}.{Sparsity.SparseBitmask.CompressedSuffix}").DType : store.GetInfo(source).DType;
            var type = requested;
            string detail;
            if (GgmlTypeInfo.RowBytes(type, cols) is null)
            {
                type = GgmlType.F16;
                detail = $"{stored} → f16 ({cols} columns are not whole {GgmlTypeInfo.BlockSize(requested)}-element {GgmlTypeInfo.Name(requested)} blocks)";
            }
            else detail = $"{stored} → {GgmlTypeInfo.Name(type)}";
            if (bitmask) detail += " (N:M bitmask layout written dense)";
            bool lossless = type == GgmlType.F32 || (type == GgmlType.F16 && stored == DType.F16) || (type == GgmlType.BF16 && stored == DType.BF16);
            var mapping = lossless ? GgufTensorMapping.Lossless : GgufTensorMapping.Converted;
            float[] Values() => (bitmask ? sparse!.LoadWeight(store, module, rows, cols) : store.GetMatrix(source, rows, cols)).ToFloatArray();
            byte[] Encode()
            {
                byte[] bytes = GgmlCodec.Encode(type, Values(), rows, cols);
                return permuteHead > 0 ? QkPermutation.ToGguf(bytes, rows, permuteHead) : bytes;
            }
            Action<GgufFile, GgufTensorInfo> check = lossless
                ? (file, written) => CheckBitIdentical(file, written, Values(), rows, cols, permuteHead, allowSignedZero: false)
                : (file, written) => CheckWithinBound(file, written, Values(), rows, cols, permuteHead);
            return new Plan(new GgufTensorReport(name, source, type, [rows, cols], mapping, detail), Encode, check);
        }

        Plan Packed(string name, string module, int rows, int cols, GgmlType requested, int permuteHead)
        {
            var format = quantized!.Layers[module];
            string source = TensorNames.Weight(module);
            if (ExactType(format, cols) is GgmlType exact)
            {
                byte[] Encode()
                {
                    byte[] bytes = EncodeExact(quantized.ReadPacked(store, module, rows, cols), exact);
                    return permuteHead > 0 ? QkPermutation.ToGguf(bytes, rows, permuteHead) : bytes;
                }
                return new Plan(new GgufTensorReport(name, source, exact, [rows, cols], GgufTensorMapping.Exact,
                        $"{format.Name} → {GgmlTypeInfo.Name(exact)} (codes and scales copied)"), Encode,
                    (file, written) => CheckBitIdentical(file, written, quantized.ReadPacked(store, module, rows, cols).Dequantize(), rows, cols, permuteHead,
                        allowSignedZero: exact == GgmlType.MXFP4));
            }
            if (options.RequireExact)
                throw new InvalidDataException(
                    $"{module}: {format.Name} [{rows}, {cols}] has no exact GGUF type (exact: int4-sym-g32 → q4_0, int8-sym-g32 → q8_0, mxfp4 → mxfp4, " +
                    "without rotation and with a multiple of 32 columns); export without --exact to dequantize and convert it.");
            var type = GgmlTypeInfo.RowBytes(requested, cols) is null ? GgmlType.F32 : requested;
            string detail = $"{format.Name} dequantized{(format.RotationBlockSize is not null ? " (rotation undone)" : "")} → {GgmlTypeInfo.Name(type)}"
                + (type != requested ? $" ({cols} columns are not whole {GgmlTypeInfo.Name(requested)} blocks; f32 keeps the dequantized values exact)" : "");
            bool lossless = type == GgmlType.F32;
            byte[] EncodeConverted()
            {
                byte[] bytes = GgmlCodec.Encode(type, quantized.ReadPacked(store, module, rows, cols).Dequantize(), rows, cols);
                return permuteHead > 0 ? QkPermutation.ToGguf(bytes, rows, permuteHead) : bytes;
            }
            return new Plan(new GgufTensorReport(name, source, type, [rows, cols], GgufTensorMapping.Requantized, detail), EncodeConverted,
                lossless
                    ? (file, written) => CheckBitIdentical(file, written, quantized.ReadPacked(store, module, rows, cols).Dequantize(), rows, cols, permuteHead, false)
                    : (file, written) => CheckWithinBound(file, written, quantized.ReadPacked(store, module, rows, cols).Dequantize(), rows, cols, permuteHead));
        }
    }

    /// <summary>The GGUF type that represents <paramref name="format"/> exactly for rows of <paramref name="cols"/>, or null.</summary>
    public static GgmlType? ExactType(QuantFormat format, int cols)
    {
        ArgumentNullException.ThrowIfNull(format);
        if (format.RotationBlockSize is not null || cols % 32 != 0) return null;
        return format.Kind switch
        {
            QuantKind.Int when format.Symmetric && format.GroupSize == 32 && format.Bits == 4 => GgmlType.Q4_0,
            QuantKind.Int when format.Symmetric && format.GroupSize == 32 && format.Bits == 8 => GgmlType.Q8_0,
            QuantKind.Mxfp4 => GgmlType.MXFP4,
            _ => null,
        };
    }

    /// <summary>Copies a packed weight's codes and scales into ggml blocks of <paramref name="type"/> (see <see cref="ExactType"/>).</summary>
    public static byte[] EncodeExact(PackedWeight weight, GgmlType type)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (ExactType(weight.Format, weight.Cols) != type)
            throw new ArgumentException($"{weight.Format.Name} [{weight.Rows}, {weight.Cols}] is not exactly {GgmlTypeInfo.Name(type)}.", nameof(type));
        int rows = weight.Rows, cols = weight.Cols, groups = cols / 32, blockBytes = GgmlTypeInfo.BlockBytes(type);
        byte[] codes = weight.UnpackCodes(); // [rows, cols]
        byte[] scales = weight.GetTensor("scales").Data; // [rows, groups]: FP16 (INT) or E8M0 codes (MXFP4)
        var result = new byte[(long)rows * groups * blockBytes];
        for (int r = 0; r < rows; r++)
        {
            for (int g = 0; g < groups; g++)
            {
                int index = r * groups + g;
                var group = codes.AsSpan(r * cols + g * 32, 32);
                var block = result.AsSpan(index * blockBytes, blockBytes);
                switch (type)
                {
                    case GgmlType.Q4_0: GgmlQ4_0.WriteBlock(MemoryMarshal.Cast<byte, Half>(scales.AsSpan())[index], group, block); break;
                    case GgmlType.Q8_0: GgmlQ8_0.WriteBlock(MemoryMarshal.Cast<byte, Half>(scales.AsSpan())[index], group, block); break;
                    default: GgmlMxfp4.WriteBlock(scales[index], group, block); break;
                }
            }
        }
        return result;
    }

    // llama_ftype: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7, MOSTLY_BF16 32, MOSTLY_MXFP4_MOE 38; the type most linear weights have.
    private static uint FileType(List<Plan> plans)
    {
        var counts = new Dictionary<GgmlType, long>();
        foreach (var p in plans)
            if (p.Report.Name.StartsWith("blk.", StringComparison.Ordinal) && p.Report.Shape.Length == 2)
                counts[p.Report.Type] = counts.GetValueOrDefault(p.Report.Type) + p.Report.Shape[0] * p.Report.Shape[1];
        var main = counts.Count == 0 ? GgmlType.F32 : counts.MaxBy(kv => kv.Value).Key;
        return main switch
        {
            GgmlType.F32 => 0,
            GgmlType.F16 => 1,
            GgmlType.Q4_0 => 2,
            GgmlType.Q8_0 => 7,
            GgmlType.BF16 => 32,
            _ => 38,
        };
    }

    /// <summary>
    /// Reads the file back: every tensor present with its planned type and shape and the planned bytes, the architecture
    /// metadata giving back the same configuration, exact / lossless tensors decoding (ggml's dequantization, q/k rows
    /// put back) bit for bit to the source values, and converted ones within their type's rounding bound of the source
    /// (<see cref="GgmlRoundingBound"/>), which checks the encoder, the nibble order and the permutation independently.
    /// </summary>
    private static void Verify(string path, ModelConfig config, List<Plan> plans)
    {
        using var file = GgufFile.Open(path);
        var back = GgufModelMetadata.ReadConfig(file);
        if (back.HiddenSize != config.HiddenSize || back.LayerCount != config.LayerCount || back.HeadCount != config.HeadCount
            || back.KvHeadCount != config.KvHeadCount || back.HeadDim != config.HeadDim || back.IntermediateSize != config.IntermediateSize
            || back.VocabSize != config.VocabSize || back.TieWordEmbeddings != config.TieWordEmbeddings || back.RopeScaling.Type != config.RopeScaling.Type)
            throw new InvalidDataException($"{path}: verification failed: the metadata read back describes a different model than {config.ModelType} config.json.");
        if (file.Tensors.Count != plans.Count)
            throw new InvalidDataException($"{path}: verification failed: {file.Tensors.Count} tensors read back, {plans.Count} written.");
        foreach (var plan in plans)
        {
            var r = plan.Report;
            if (!file.TryGetTensor(r.Name, out var info) || info.Type != r.Type || !info.Shape.AsSpan().SequenceEqual(r.Shape))
                throw new InvalidDataException($"{path}: verification failed: tensor '{r.Name}' is not read back as {GgmlTypeInfo.Name(r.Type)} {TensorInfo.FormatShape(r.Shape)}.");
            if (!file.GetData(info).Span.SequenceEqual(plan.Encode()))
                throw new InvalidDataException($"{path}: verification failed: tensor '{r.Name}' bytes differ from a fresh encoding of {r.Source}.");
            plan.CheckValues?.Invoke(file, info);
        }
    }

    // The tensor decoded as ggml does, rows put back into HF order, is within the type's rounding bound of `expected`
    // (GgmlRoundingBound): checks a converted tensor against its source without trusting the encoder.
    private static void CheckWithinBound(GgufFile file, GgufTensorInfo info, float[] expected, int rows, int cols, int permuteHead)
    {
        var values = GgmlCodec.Decode(info.Type, file.GetData(info).Span, rows, cols);
        if (permuteHead > 0) values = QkPermutation.ToHuggingFace(values, rows, cols, permuteHead);
        if (GgmlRoundingBound.FirstViolation(info.Type, values, expected, cols) is string violation)
            throw new InvalidDataException($"{file.Path}: verification failed: tensor '{info.Name}' element {violation}: farther from the source than {GgmlTypeInfo.Name(info.Type)} rounding allows.");
    }

    // The tensor decoded as ggml does, rows put back into HF order, equals `expected` bit for bit (+0 = −0 where ggml
    // cannot represent −0: MXFP4's code 8 decodes to +0).
    private static void CheckBitIdentical(GgufFile file, GgufTensorInfo info, float[] expected, int rows, int cols, int permuteHead, bool allowSignedZero)
    {
        var values = GgmlCodec.Decode(info.Type, file.GetData(info).Span, rows, cols);
        if (permuteHead > 0) values = QkPermutation.ToHuggingFace(values, rows, cols, permuteHead);
        for (int i = 0; i < values.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(values[i]) == BitConverter.SingleToInt32Bits(expected[i])) continue;
            if (allowSignedZero && values[i] == 0f && expected[i] == 0f) continue;
            throw new InvalidDataException(
                $"{file.Path}: verification failed: tensor '{info.Name}' element [{i / cols}, {i % cols}] decodes to {values[i]:R}, expected {expected[i]:R} bit for bit.");
        }
    }
}
