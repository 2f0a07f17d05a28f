using LlmPress.Tests.Quantization.Pipeline;
using System.Text.Json;
using LlmPress.Export;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;
using LlmPress.Tests.Cli;

namespace LlmPress.Tests.Export;

/// <summary>
/// `export --compressed-tensors` end to end on the shared models: RTN-quantized checkpoints exported, read back with
/// compressed-tensors' rules (<see cref="CompressedTensorsCodec.Decode"/>) and compared bit for bit with what the
/// quantizer produced; the config a vLLM loader reads; refusals; nothing half-written; CLI errors.
/// </summary>
public sealed class CompressedTensorsExportTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    // RTN-quantizes a shared model with one format into a fresh directory. NVFP4 layers that vLLM fuses (q/k/v,
    // gate/up) get the smallest global scale of their group, as llm-compressor does, when sharedNvfp4Scale is set.
    private string Quantize(string modelName, QuantFormat format, bool sharedNvfp4Scale = false, QuantFormat? mlpFormat = null)
    {
        string modelDir = SharedData.Require("models", modelName);
        using var model = LlamaModel.Load(modelDir);
        // Per-layer NVFP4 global scales (the pipeline's shared default is tested separately), so the refusal can be seen.
        var options = new QuantizeOptions
        {
            Method = format.Kind == QuantKind.Higgs ? QuantMethod.Higgs : QuantMethod.Rtn,
            Format = format,
            ShareNvfp4GlobalScale = false,
        };
        var result = QuantizationPipeline.Run(model, options);
        if (sharedNvfp4Scale) result = ShareFusedGlobalScales(model, result, format);
        if (mlpFormat is not null)
            result = result with
            {
                Layers = [.. result.Layers.Select(l => l.Name.Contains(".mlp.", StringComparison.Ordinal)
                    ? new QuantizedLayer(l.Name, mlpFormat.Quantize(model.Store!.GetMatrix(TensorNames.Weight(l.Name), l.Weight.Rows, l.Weight.Cols).ToFloatArray(), l.Weight.Rows, l.Weight.Cols))
                    : l)],
            };
        string output = _temp.File($"{modelName}-{format.Name}-q");
        QuantizedCheckpointWriter.Write(modelDir, model.Store!, result, options, output, overwrite: false);
        return output;
    }

    private static QuantizationResult ShareFusedGlobalScales(LlamaModel model, QuantizationResult result, QuantFormat format)
    {
        var c = model.Config;
        var layers = result.Layers.ToDictionary(l => l.Name, l => l.Weight, StringComparer.Ordinal);
        for (int l = 0; l < c.LayerCount; l++)
        {
            foreach (var group in new[] { new[] { TensorNames.QueryProj(l), TensorNames.KeyProj(l), TensorNames.ValueProj(l) }, [TensorNames.GateProj(l), TensorNames.UpProj(l)] })
            {
                var weights = group.Select(m => { var w = layers[m]; return (m, w.Rows, w.Cols, Values: model.Store!.GetMatrix(TensorNames.Weight(m), w.Rows, w.Cols).ToFloatArray()); }).ToList();
                float shared = weights.Min(w => Nvfp4Format.ComputeGlobalScale(w.Values));
                foreach (var w in weights) layers[w.m] = Nvfp4Format.Quantize(format, w.Values, w.Rows, w.Cols, shared);
            }
        }
        return result with { Layers = [.. result.Layers.Select(l => new QuantizedLayer(l.Name, layers[l.Name]))] };
    }

    // Independent check of an export: every quantized layer of the source, decoded from the output by compressed-tensors'
    // rules, bit-identical to PackedWeight.Dequantize(); every other source tensor byte-identical.
    private static void AssertBitIdentical(string quantizedDir, string exportDir, IReadOnlyList<CompressedTensorsLayerReport> layers)
    {
        var checkpoint = QuantizedCheckpoint.TryLoad(quantizedDir)!;
        var config = ModelConfig.Load(quantizedDir);
        using var source = TensorStore.Open(quantizedDir);
        using var written = TensorStore.Open(exportDir);
        Assert.Equal(checkpoint.Layers.Count, layers.Count);
        foreach (var layer in layers)
        {
            var (rows, cols) = Shape(config, layer.Module);
            float[] expected = checkpoint.ReadPacked(source, layer.Module, rows, cols).Dequantize();
            float[] actual = layer.Scheme is null
                ? written.ReadFloats(TensorNames.Weight(layer.Module), rows, cols)
                : CompressedTensorsCodec.Decode(written, layer.Module, layer.Scheme, rows, cols);
            for (int i = 0; i < expected.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                    $"{layer.Module} [{i / cols}, {i % cols}]: {actual[i]:R} vs {expected[i]:R}");
        }
        foreach (var info in source.Tensors)
        {
            int cut = info.Name.LastIndexOf(".weight.", StringComparison.Ordinal);
            if (cut > 0 && checkpoint.IsQuantized(info.Name[..cut])) continue;
            Assert.Equal(source.GetData(info.Name).ToArray(), written.GetData(info.Name).ToArray());
        }
    }

    private static (int Rows, int Cols) Shape(ModelConfig c, string module) => module[(module.LastIndexOf('.') + 1)..] switch
    {
        "q_proj" => (c.QueryDim, c.HiddenSize),
        "k_proj" or "v_proj" => (c.KvDim, c.HiddenSize),
        "o_proj" => (c.HiddenSize, c.QueryDim),
        "down_proj" => (c.HiddenSize, c.IntermediateSize),
        _ => (c.IntermediateSize, c.HiddenSize),
    };

    // Forward logits over a fixed token sequence, bit for bit. The quantized checkpoint runs packed kernels and online
    // rotations; the reference gets the same weights as plain FP32 in the original basis, as the exported layout holds them.
    private static void AssertSameLogits(LlamaModel expected, LlamaModel actual)
    {
        PipelineTestData.UseDequantizedWeights(expected);
        int[] ids = [1, 17, 42, 99, 3, 250, 7, 64];
        for (int i = 0; i < ids.Length; i++) ids[i] %= expected.Config.VocabSize;
        float[] a = expected.Forward(ids), b = actual.Forward(ids);
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(a[i]) == BitConverter.SingleToInt32Bits(b[i]), $"logit {i}: {b[i]:R} vs {a[i]:R}");
    }

    private static void AssertTensor(TensorStore store, string name, DType dtype, params long[] shape)
    {
        var info = store.GetInfo(name);
        Assert.Equal(dtype, info.DType);
        Assert.Equal(shape, info.Shape);
    }

    private static JsonElement QuantizationConfig(string exportDir, out JsonDocument doc)
    {
        doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(exportDir, "config.json")));
        return doc.RootElement.GetProperty("quantization_config");
    }

    public static TheoryData<string, string, string> Formats => new()
    {
        // stories260K: hidden 64, intermediate 172 — per-channel INT fits every layer.
        { "stories260K", "int4-asym-perchannel", "pack-quantized" },
        { "stories260K", "int4-sym-perchannel", "pack-quantized" },
        { "stories260K", "int8-sym-perchannel", "pack-quantized" },
        { "stories260K", "int8-asym-perchannel", "pack-quantized" },
        // tiny-mistral: hidden 128, intermediate 320 — whole groups of 16, 32 and 64 everywhere.
        { "tiny-mistral", "int4-asym-g32", "pack-quantized" },
        { "tiny-mistral", "int4-sym-g64", "pack-quantized" },
        { "tiny-mistral", "int8-asym-g32", "pack-quantized" },
        { "tiny-mistral", "mxfp4", "mxfp4-pack-quantized" },
        // tiny-llama3: BF16 checkpoint, untied head.
        { "tiny-llama3", "int4-asym-g32", "pack-quantized" },
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public void ExportReadsBackBitIdentical(string model, string formatName, string ctFormat)
    {
        string quantized = Quantize(model, QuantFormat.Parse(formatName));
        string output = _temp.File($"{model}-{formatName}-ct");
        var report = CompressedTensorsExporter.Export(quantized, output, new CompressedTensorsExportOptions());
        Assert.True(report.Verified);
        Assert.Equal(ctFormat, report.Format);
        Assert.All(report.Layers, l => Assert.NotNull(l.Scheme));
        AssertBitIdentical(quantized, output, report.Layers);

        var q = QuantizationConfig(output, out var doc);
        using (doc)
        {
            Assert.Equal("compressed-tensors", q.GetProperty("quant_method").GetString());
            Assert.Equal("compressed", q.GetProperty("quantization_status").GetString());
            Assert.Equal(ctFormat, q.GetProperty("format").GetString());
            var group = Assert.Single(q.GetProperty("config_groups").EnumerateObject()).Value;
            Assert.Equal(["Linear"], group.GetProperty("targets").EnumerateArray().Select(e => e.GetString()));
            Assert.Equal(JsonValueKind.Null, group.GetProperty("input_activations").ValueKind);
            var w = group.GetProperty("weights");
            var format = QuantFormat.Parse(formatName);
            Assert.Equal(format.Kind == QuantKind.Int ? "int" : "float", w.GetProperty("type").GetString());
            Assert.Equal(format.Bits, w.GetProperty("num_bits").GetInt32());
            Assert.Equal(format.Symmetric, w.GetProperty("symmetric").GetBoolean());
            Assert.False(w.GetProperty("dynamic").GetBoolean());
            Assert.Equal(format.GroupSize is null ? "channel" : "group", w.GetProperty("strategy").GetString());
            Assert.Contains("lm_head", q.GetProperty("ignore").EnumerateArray().Select(e => e.GetString()));
        }

        // The tensors a vLLM scheme registers, with its dtypes and shapes (k_proj of layer 0 as the example).
        var config = ModelConfig.Load(quantized);
        using var written = TensorStore.Open(output);
        string k = TensorNames.KeyProj(0);
        int rows = config.KvDim, cols = config.HiddenSize;
        Assert.False(written.Contains(k + ".weight"));
        var fmt = QuantFormat.Parse(formatName);
        if (fmt.Kind == QuantKind.Int)
        {
            int groups = fmt.GroupSize is int g ? cols / g : 1;
            AssertTensor(written, k + ".weight_packed", DType.I32, rows, cols * fmt.Bits / 32);
            AssertTensor(written, k + ".weight_scale", DType.F16, rows, groups);
            Assert.Equal(new long[] { rows, cols }, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(written.GetData(k + ".weight_shape").Span).ToArray());
            Assert.Equal(!fmt.Symmetric, written.Contains(k + ".weight_zero_point"));
            if (!fmt.Symmetric)
                AssertTensor(written, k + ".weight_zero_point", DType.I32, (rows * fmt.Bits + 31) / 32, groups);
        }
        else
        {
            AssertTensor(written, k + ".weight_packed", DType.U8, rows, cols / 2);
            AssertTensor(written, k + ".weight_scale", DType.U8, rows, cols / 32);
        }
        // Tokenizer files travel with the model.
        Assert.Equal(File.Exists(Path.Combine(quantized, "tokenizer.json")), File.Exists(Path.Combine(output, "tokenizer.json")));
        Assert.DoesNotContain(Directory.GetFileSystemEntries(_temp.Path), e => Path.GetFileName(e).Contains(".tmp-", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("stories260K", "int4-asym-perchannel")]
    [InlineData("tiny-mistral", "int4-sym-g32")]
    [InlineData("tiny-mistral", "mxfp4")]
    [InlineData("tiny-llama3", "int8-asym-g32")]
    public void ExportedDirectoryLoadsWithLogitsBitIdenticalToTheQuantizedCheckpoint(string model, string formatName)
    {
        // LlamaModel reads compressed-tensors directories through CompressedTensorsCheckpoint: same weights, same logits.
        string quantized = Quantize(model, QuantFormat.Parse(formatName));
        string output = _temp.File("load-ct");
        CompressedTensorsExporter.Export(quantized, output, new CompressedTensorsExportOptions());
        Assert.NotNull(CompressedTensorsCheckpoint.TryLoad(output));
        using var reference = LlamaModel.Load(quantized);
        using var loaded = LlamaModel.Load(output);
        AssertSameLogits(reference, loaded);
    }

    [Fact]
    public void Nvfp4WithSharedFusedGlobalScalesReadsBackBitIdentical()
    {
        string quantized = Quantize("tiny-mistral", QuantFormat.Nvfp4(), sharedNvfp4Scale: true);
        string output = _temp.File("nvfp4-ct");
        var report = CompressedTensorsExporter.Export(quantized, output, new CompressedTensorsExportOptions());
        Assert.Equal("nvfp4-pack-quantized", report.Format);
        AssertBitIdentical(quantized, output, report.Layers);

        using var written = TensorStore.Open(output);
        string q = TensorNames.QueryProj(0);
        var config = ModelConfig.Load(quantized);
        AssertTensor(written, q + ".weight_packed", DType.U8, config.QueryDim, config.HiddenSize / 2);
        AssertTensor(written, q + ".weight_scale", DType.F8E4M3, config.QueryDim, config.HiddenSize / 16);
        AssertTensor(written, q + ".weight_global_scale", DType.F32, 1);
        // weight_global_scale is g itself (dequantization divides by it), not 1/g: 448·6/amax is far above 1 for these weights.
        var checkpoint = QuantizedCheckpoint.TryLoad(quantized)!;
        using var source = TensorStore.Open(quantized);
        float g = checkpoint.ReadPacked(source, q, config.QueryDim, config.HiddenSize).GlobalScale;
        Assert.Equal(g, BitConverter.ToSingle(written.GetData(q + ".weight_global_scale").Span));
        Assert.True(g > 1f);

        var qc = QuantizationConfig(output, out var doc);
        using (doc)
        {
            var w = Assert.Single(qc.GetProperty("config_groups").EnumerateObject()).Value.GetProperty("weights");
            Assert.Equal("tensor_group", w.GetProperty("strategy").GetString());
            Assert.Equal(16, w.GetProperty("group_size").GetInt32());
        }
    }

    [Theory]
    [InlineData("int8-sym-g32", "pack-quantized")]        // two pack-quantized schemes
    [InlineData("mxfp4", "mixed-precision")]              // two formats: each group names its own
    public void LayersWithDifferentFormatsGetOneGroupEachNamingTheirModules(string mlpFormat, string topFormat)
    {
        string quantized = Quantize("tiny-mistral", QuantFormat.Parse("int4-asym-g32"), mlpFormat: QuantFormat.Parse(mlpFormat));
        string output = _temp.File("mixed-ct");
        var report = CompressedTensorsExporter.Export(quantized, output, new CompressedTensorsExportOptions());
        Assert.Equal(topFormat, report.Format);
        AssertBitIdentical(quantized, output, report.Layers);
        var q = QuantizationConfig(output, out var doc);
        using (doc)
        {
            var groups = q.GetProperty("config_groups").EnumerateObject().Select(g => g.Value).ToList();
            Assert.Equal(2, groups.Count);
            var attention = groups[0].GetProperty("targets").EnumerateArray().Select(e => e.GetString()!).ToList();
            var mlp = groups[1].GetProperty("targets").EnumerateArray().Select(e => e.GetString()!).ToList();
            Assert.All(attention, t => Assert.Contains(".self_attn.", t));
            Assert.All(mlp, t => Assert.Contains(".mlp.", t));
            Assert.Equal(report.Layers.Count, attention.Count + mlp.Count);
            Assert.Equal(topFormat == "mixed-precision", groups[1].TryGetProperty("format", out var f) && f.GetString() == "mxfp4-pack-quantized");
        }
    }

    [Fact]
    public void Nvfp4FusedLayersWithDifferentGlobalScalesAreRefused()
    {
        string quantized = Quantize("tiny-mistral", QuantFormat.Nvfp4());
        string output = _temp.File("nvfp4-own-g");
        var e = Assert.Throws<InvalidDataException>(() => CompressedTensorsExporter.Export(quantized, output, new CompressedTensorsExportOptions()));
        Assert.Contains("q_proj", e.Message);
        Assert.Contains("global scale", e.Message);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void OutputBytesDoNotDependOnTheThreadCount()
    {
        string quantized = Quantize("tiny-mistral", QuantFormat.Parse("int4-asym-g32"));
        int saved = Parallelism.MaxThreads;
        var files = new List<byte[]>();
        try
        {
            foreach (int threads in new[] { 1, 3 })
            {
                Parallelism.MaxThreads = threads;
                string output = _temp.File($"threads-{threads}");
                CompressedTensorsExporter.Export(quantized, output, new CompressedTensorsExportOptions());
                files.Add(File.ReadAllBytes(Path.Combine(output, "model.safetensors")));
            }
        }
        finally
        {
            Parallelism.MaxThreads = saved;
        }
        Assert.Equal(files[0], files[1]);
    }

    [Fact]
    public void AChangedCodeIsCaughtByTheReader()
    {
        // The reader the verification uses is not blind: one flipped nibble in the output changes one decoded value.
        string quantized = Quantize("stories260K", QuantFormat.Parse("int4-sym-perchannel"));
        string output = _temp.File("flip-ct");
        var report = CompressedTensorsExporter.Export(quantized, output, new CompressedTensorsExportOptions());
        string file = Path.Combine(output, "model.safetensors");
        var layer = report.Layers[0];
        long offset;
        using (var store = TensorStore.Open(output)) offset = store.GetInfo(layer.Module + ".weight_packed").DataOffset;
        byte[] bytes = File.ReadAllBytes(file);
        bytes[offset] ^= 0x01; // element [0, 0]
        File.WriteAllBytes(file, bytes);
        var ex = Assert.ThrowsAny<Exception>(() => AssertBitIdentical(quantized, output, report.Layers));
        Assert.Contains("[0, 0]", ex.Message);
    }

    [Theory]
    [InlineData("int3-sym-perchannel", "INT3")]
    [InlineData("int2-asym-g32", "INT2")]
    [InlineData("int4-sym-g32-rot64", "Hadamard-rotated")]
    [InlineData("mxfp4-rot64", "Hadamard-rotated")]
    [InlineData("higgs-p2-n256", "HIGGS")]
    [InlineData("int4-asym-g32", "groups of 32 do not divide its 172 input columns")] // stories260K's down_proj
    public void UnrepresentableLayersAreRefusedNamingLayerAndFormat(string formatName, string reason)
    {
        string quantized = Quantize("stories260K", QuantFormat.Parse(formatName));
        string output = _temp.File("refused-ct");
        var (code, _, err) = CliRunner.Run("export", quantized, "--compressed-tensors", output);
        CliRunner.AssertOneLineError(code, err, "model.layers.0.", formatName, reason, "--dense-fallback");
        Assert.False(Directory.Exists(output));
        Assert.DoesNotContain(Directory.GetFileSystemEntries(_temp.Path), e => Path.GetFileName(e).Contains(".tmp-", StringComparison.Ordinal));
    }

    [Fact]
    public void DenseFallbackWritesUnrepresentableLayersDenseAndIgnored()
    {
        // int4-asym-g32 on stories260K: every layer but down_proj (172 columns) is pack-quantized; down_proj goes dense.
        string quantized = Quantize("stories260K", QuantFormat.Parse("int4-asym-g32"));
        string output = _temp.File("dense-ct");
        var report = CompressedTensorsExporter.Export(quantized, output, new CompressedTensorsExportOptions { DenseFallback = true });
        var dense = report.Layers.Where(l => l.Scheme is null).Select(l => l.Module).ToList();
        Assert.Equal(Enumerable.Range(0, 5).Select(TensorNames.DownProj), dense);
        AssertBitIdentical(quantized, output, report.Layers);
        var q = QuantizationConfig(output, out var doc);
        using (doc)
        {
            var ignore = q.GetProperty("ignore").EnumerateArray().Select(e => e.GetString()).ToList();
            Assert.All(dense, m => Assert.Contains(m, ignore));
        }
        using var written = TensorStore.Open(output);
        Assert.Equal(DType.F32, written.GetInfo(TensorNames.Weight(TensorNames.DownProj(0))).DType);
        Assert.Contains(report.Warnings, w => w.Contains("dense", StringComparison.Ordinal));
    }

    [Fact]
    public void RotatedLayersWithDenseFallbackAreWrittenInTheOriginalBasis()
    {
        string quantized = Quantize("stories260K", QuantFormat.Parse("int4-sym-g32-rot64"));
        string output = _temp.File("rot-ct");
        var report = CompressedTensorsExporter.Export(quantized, output, new CompressedTensorsExportOptions { DenseFallback = true });
        Assert.All(report.Layers, l => Assert.Contains("rotation undone", l.Detail));
        Assert.Equal("dense", report.Format);
        AssertBitIdentical(quantized, output, report.Layers);
        // Nothing quantized is left: a plain float checkpoint, which LlmPress (and vLLM) load as such.
        using (var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(output, "config.json"))))
            Assert.False(doc.RootElement.TryGetProperty("quantization_config", out _));
        using var reference = LlamaModel.Load(quantized);
        using var loaded = LlamaModel.Load(output);
        AssertSameLogits(reference, loaded);
    }

    [Fact]
    public void CliWritesJsonReportAndRefusesExistingOutputAndBadCombinations()
    {
        string quantized = Quantize("stories260K", QuantFormat.Parse("int8-sym-perchannel"));
        string output = _temp.File("cli-ct");
        var (code, stdout, err) = CliRunner.Run("export", quantized, "--compressed-tensors", output, "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
        {
            Assert.Equal("pack-quantized", doc.RootElement.GetProperty("format").GetString());
            Assert.True(doc.RootElement.GetProperty("verified").GetBoolean());
            Assert.Equal(35, doc.RootElement.GetProperty("layers").GetArrayLength()); // 5 layers × 7 linears
        }

        (code, _, err) = CliRunner.Run("export", quantized, "--compressed-tensors", output);
        CliRunner.AssertOneLineError(code, err, output, "already exists", "--force");
        (code, stdout, err) = CliRunner.Run("export", quantized, "--compressed-tensors", output, "--force", "--no-verify");
        Assert.True(code == 0, err);
        Assert.Contains("no (--no-verify)", stdout);
        Assert.Contains("int8-sym-perchannel → pack-quantized int8 sym channel", stdout);

        (code, _, err) = CliRunner.Run("export", quantized);
        CliRunner.AssertOneLineError(code, err, "--gguf", "--compressed-tensors");
        (code, _, err) = CliRunner.Run("export", quantized, "--compressed-tensors", _temp.File("x"), "--gguf", _temp.File("x.gguf"));
        CliRunner.AssertOneLineError(code, err, "exactly one");
        (code, _, err) = CliRunner.Run("export", quantized, "--compressed-tensors", _temp.File("y"), "--type", "q8_0");
        CliRunner.AssertOneLineError(code, err, "--gguf only");
        (code, _, err) = CliRunner.Run("export", quantized, "--gguf", _temp.File("z.gguf"), "--dense-fallback");
        CliRunner.AssertOneLineError(code, err, "--compressed-tensors only");

        // A float checkpoint has nothing to export in this layout.
        string floatModel = SharedData.Require("models", "stories260K");
        (code, _, err) = CliRunner.Run("export", floatModel, "--compressed-tensors", _temp.File("float-ct"));
        CliRunner.AssertOneLineError(code, err, "not an `llmpress quantize` output");
        Assert.False(Directory.Exists(_temp.File("float-ct")));
        (code, _, err) = CliRunner.Run("export", _temp.File("missing"), "--compressed-tensors", _temp.File("m-ct"));
        CliRunner.AssertOneLineError(code, err, "not found");
    }
}
