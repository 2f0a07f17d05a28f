using System.Text.Json;
using LlmPress.Export;
using LlmPress.Gguf;
using LlmPress.Models;
using LlmPress.Tests.Cli;
using LlmPress.Tests.Models;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Gguf;

/// <summary>
/// End to end on the shared models: export → GgufFile → GgufModelLoader / GgufTokenizer gives back the original model
/// (logits bit-identical for lossless exports), the original tokenizer (same ids), and quantized layers bit-identical
/// to what the quantizer produced.
/// </summary>
public sealed class GgufExportTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static void AssertSameLogits(LlamaModel expected, LlamaModel actual, int[] ids)
    {
        float[] a = expected.Forward(ids), b = actual.Forward(ids);
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(a[i]) == BitConverter.SingleToInt32Bits(b[i]), $"logit {i}: {a[i]:R} vs {b[i]:R}");
    }

    [Theory]
    [InlineData("stories260K", "f32")]
    [InlineData("tiny-llama3", "f32")]   // BF16 checkpoint, Llama 3.1 RoPE scaling, GQA, untied head
    [InlineData("tiny-llama3", "bf16")]  // stored as is
    [InlineData("tiny-qwen2", "f32")]    // qkv biases, no q/k permutation
    [InlineData("tiny-mistral", "f32")]  // head_dim 32 ≠ hidden/heads: key_length/value_length
    public void LosslessExportLoadsWithBitIdenticalLogits(string name, string type)
    {
        string model = SharedData.Require("models", name);
        var (ids, _) = GoldenLogitsTests.ReadGolden(name);
        string path = _temp.File($"{name}.gguf");
        Assert.True(GgmlTypeInfo.TryParse(type, out var ggmlType));
        var report = GgufExporter.Export(model, path, new GgufExportOptions { Type = ggmlType });
        Assert.True(report.Verified);
        Assert.All(report.Tensors, t => Assert.Equal(GgufTensorMapping.Lossless, t.Mapping));
        using var original = LlamaModel.Load(model);
        using var loaded = GgufModelLoader.Load(path);
        var (c, g) = (original.Config, loaded.Config);
        Assert.Equal(c.ModelType == "qwen2" ? "qwen2" : "llama", g.ModelType);
        Assert.Equal((c.HiddenSize, c.IntermediateSize, c.LayerCount, c.HeadCount, c.KvHeadCount, c.HeadDim, c.VocabSize, c.MaxPositions),
            (g.HiddenSize, g.IntermediateSize, g.LayerCount, g.HeadCount, g.KvHeadCount, g.HeadDim, g.VocabSize, g.MaxPositions));
        Assert.Equal((c.RmsNormEps, c.RopeTheta, c.RopeScaling, c.TieWordEmbeddings, c.QkvBias, c.OutputBias, c.BosTokenId),
            (g.RmsNormEps, g.RopeTheta, g.RopeScaling, g.TieWordEmbeddings, g.QkvBias, g.OutputBias, g.BosTokenId));
        Assert.Equal(c.EosTokenIds.Take(1), g.EosTokenIds);
        AssertSameLogits(original, loaded, ids);
    }

    [Fact]
    public void Llama3RopeFactorsAndPermutedRowsAreWrittenTheLlamaCppWay()
    {
        string model = SharedData.Require("models", "tiny-llama3");
        string path = _temp.File("l3.gguf");
        GgufExporter.Export(model, path, new GgufExportOptions { Type = GgmlType.F32 });
        using var file = GgufFile.Open(path);
        using var original = LlamaModel.Load(model);
        var c = original.Config;
        // rope_freqs.weight (original context 16, low 1, high 4, factor 8): pair 0 has wavelength 2π, between 16/4 and
        // 16/1, so it is smoothed: s = (16/2π − 1)/3 = 0.51549, 1/((1 − s)/8 + s) = 1.73594; the longest wavelengths get 8.
        var freqs = GgufModelLoader.ReadVector(file, GgufTensorNames.RopeFreqs, c.HeadDim / 2);
        Assert.Equal(1.73594, freqs[0], 4);
        Assert.Equal(8f, freqs[^1]);
        // blk.0.attn_k.weight row 1 of head 0 is HF row head_dim/2 (rotate-half pairs (j, j + d/2) become adjacent rows).
        var k = GgufModelLoader.ReadMatrix(file, "blk.0.attn_k.weight", c.KvDim, c.HiddenSize);
        var hf = original.Store!.GetMatrix(TensorNames.Weight(TensorNames.KeyProj(0)), c.KvDim, c.HiddenSize).ToFloatArray();
        Assert.Equal(hf.AsSpan(c.HeadDim / 2 * c.HiddenSize, c.HiddenSize).ToArray(), k.AsSpan(c.HiddenSize, c.HiddenSize).ToArray());
        Assert.Equal("llama", file.GetString("general.architecture"));
        Assert.Equal((long)c.HeadDim, file.GetInteger("llama.rope.dimension_count"));
        Assert.False(file.TryGetTensor(GgufTensorNames.Output, out _) && c.TieWordEmbeddings);
    }

    // A copy of a GGUF without LlmPress' own keys, as llama.cpp's converter would have written it.
    private string WithoutLlmPressKeys(string path)
    {
        string copy = path + ".plain.gguf";
        using var file = GgufFile.Open(path);
        var metadata = file.MetadataKeys.Where(k => !k.StartsWith("llmpress.", StringComparison.Ordinal))
            .Select(k => new KeyValuePair<string, GgufValue>(k, file.Metadata[k])).ToList();
        var tensors = file.Tensors.Select(t => new GgufTensorToWrite(t.Name, t.Type, t.Shape, () => file.GetData(t))).ToList();
        GgufWriter.Write(copy, metadata, tensors);
        return copy;
    }

    [Fact]
    public void Llama3ScalingIsRecognisedFromRopeFreqsAlone()
    {
        // tiny-llama3 with the parameters every Llama 3.1 release uses: the factors alone identify them.
        string model = CliRunner.CopyModel(_temp, "tiny-llama3");
        string config = Path.Combine(model, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"original_max_position_embeddings\": 16", "\"original_max_position_embeddings\": 8192"));
        using var original = LlamaModel.Load(model);
        Assert.Equal(8192, original.Config.RopeScaling.OriginalMaxPositions);
        string path = _temp.File("l3.gguf");
        GgufExporter.Export(model, path, new GgufExportOptions { Type = GgmlType.F32 });
        using var loaded = GgufModelLoader.Load(WithoutLlmPressKeys(path));
        Assert.Equal(original.Config.RopeScaling, loaded.Config.RopeScaling);
        AssertSameLogits(original, loaded, GoldenLogitsTests.ReadGolden("tiny-llama3").Ids);

        // The shared tiny-llama3 uses an original context of 16: not recoverable from the factors, so refused clearly.
        string odd = _temp.File("odd.gguf");
        GgufExporter.Export(SharedData.Require("models", "tiny-llama3"), odd, new GgufExportOptions { Type = GgmlType.F32 });
        string plain = WithoutLlmPressKeys(odd);
        var e = Assert.Throws<InvalidDataException>(() => GgufModelLoader.Load(plain).Dispose());
        Assert.Contains("rope_freqs.weight", e.Message);
    }

    [Fact]
    public void TokenizerRebuiltFromMetadataGivesTheSameIds()
    {
        string model = SharedData.Require("models", "stories260K");
        string text = File.ReadAllText(SharedData.Require("data", "tinystories", "tinystories-10k.txt"))[..20000]
            + " Ünïcödé ça 日本語 😀 numbers 12345 67.8, tabs\tand   spaces\n\nnew lines <s> </s> <unk> <0x41>";
        string path = _temp.File("s.gguf");
        GgufExporter.Export(model, path, new GgufExportOptions { Type = GgmlType.Q8_0 });
        var original = Tokenizer.Load(model);
        using var file = GgufFile.Open(path);
        var rebuilt = GgufTokenizer.Load(file);
        Assert.Equal(original.Encode(text, addSpecialTokens: true), rebuilt.Encode(text, addSpecialTokens: true));
        Assert.Equal(original.Encode(text), rebuilt.Encode(text));
        var ids = original.Encode(text);
        Assert.Equal(original.Decode(ids), rebuilt.Decode(ids));
        Assert.Equal(original.BosTokenId, rebuilt.BosTokenId);
        Assert.Equal(original.EosTokenId, rebuilt.EosTokenId);
        // The SentencePiece scores llama.cpp uses: merge r makes a token scoring −r.
        Assert.Equal("llama", file.GetString("tokenizer.ggml.model"));
        var scores = file.GetArray<float>("tokenizer.ggml.scores")!;
        var tokens = file.GetArray<string>("tokenizer.ggml.tokens")!;
        Assert.Equal(0f, scores[Array.IndexOf(tokens, "\u2581t")]); // the first merge in tokenizer.json is "▁ t"
        Assert.Equal(6, file.GetArray<int>("tokenizer.ggml.token_type")![Array.IndexOf(tokens, "<0x41>")]); // BYTE
    }

    [Fact]
    public void Q8_0PerplexityStaysWithinHalfAPercent()
    {
        string model = SharedData.Require("models", "stories260K");
        string data = SharedData.Require("data", "tinystories", "tinystories-10k.txt");
        string path = _temp.File("q8.gguf");
        var (code, _, err) = CliRunner.Run("export", model, "--gguf", path, "--type", "q8_0");
        Assert.True(code == 0, err);
        double Perplexity(string m)
        {
            var (c, stdout, e) = CliRunner.Run("eval", m, "--data", data, "--seq-len", "256", "--max-windows", "12", "--json");
            Assert.True(c == 0, e);
            return JsonDocument.Parse(stdout).RootElement.GetProperty("perplexity").GetDouble();
        }
        double fp = Perplexity(model), q8 = Perplexity(path);
        // Measured: 5.97798 → 5.98063 (+0.044%) on 40 windows. Q8_0 keeps 8 bits per weight with an FP16 scale per 32, so
        // half a percent is a generous bound that still catches a wrong nibble order, scale or permutation (which give
        // perplexities in the hundreds).
        Assert.InRange(q8 / fp, 0.995, 1.005);
    }

    [Theory]
    [InlineData("int4-sym-g32", GgmlType.Q4_0)]
    [InlineData("int8-sym-g32", GgmlType.Q8_0)]
    [InlineData("mxfp4", GgmlType.MXFP4)]
    public void QuantizedLayersAreWrittenExactly(string format, GgmlType expected)
    {
        // tiny-llama3: every linear has a multiple of 32 columns, so --exact succeeds and every layer is copied.
        SharedData.Require("models", "tiny-llama3");
        string quantized = Path.Combine(_temp.Path, "q");
        var (code, _, err) = CliRunner.Run("quantize", CliRunner.CopyModel(_temp, "tiny-llama3"), "-o", quantized, "--format", format);
        Assert.True(code == 0, err);
        string path = _temp.File("q.gguf");
        var report = GgufExporter.Export(quantized, path, new GgufExportOptions { Type = GgmlType.F32, RequireExact = true });
        var linears = report.Tensors.Where(t => t.Name.StartsWith("blk.", StringComparison.Ordinal) && t.Shape.Length == 2).ToList();
        Assert.Equal(7 * 2, linears.Count);
        Assert.All(linears, t =>
        {
            Assert.Equal(GgufTensorMapping.Exact, t.Mapping);
            Assert.Equal(expected, t.Type);
        });
        // The loaded GGUF equals the quantized checkpoint as LlmPress loads it (dequantized by the quantizer's own code):
        // same weights bit for bit (±0 aside for MXFP4), hence bit-identical logits.
        using var reference = LlamaModel.Load(quantized);
        using var loaded = GgufModelLoader.Load(path);
        AssertSameLogits(reference, loaded, GoldenLogitsTests.ReadGolden("tiny-llama3").Ids);
    }

    [Fact]
    public void LayersWithoutAnExactTypeAreConvertedAndReported()
    {
        // stories260K down_proj has 172 columns (not whole blocks) and int4-asym-g128 has no GGUF grid.
        string quantized = Path.Combine(_temp.Path, "q");
        var (code, _, err) = CliRunner.Run("quantize", CliRunner.CopyModel(_temp, "stories260K"), "-o", quantized, "--format", "int4-sym-g32-rot64");
        Assert.True(code == 0, err);
        string path = _temp.File("rot.gguf");
        var report = GgufExporter.Export(quantized, path, new GgufExportOptions { Type = GgmlType.F32 });
        var q = report.Tensors.Single(t => t.Name == "blk.0.attn_q.weight");
        Assert.Equal(GgufTensorMapping.Requantized, q.Mapping);
        Assert.Contains("rotation undone", q.Detail);
        // With --type f32 the dequantized (rotated back) values are kept exactly: logits equal LlmPress' own load with
        // the same weights in the original basis (LlmPress itself runs the rotated weights with an online rotation).
        using var reference = LlamaModel.Load(quantized);
        LlmPress.Tests.Quantization.Pipeline.PipelineTestData.UseDequantizedWeights(reference);
        using var loaded = GgufModelLoader.Load(path);
        AssertSameLogits(reference, loaded, GoldenLogitsTests.ReadGolden("stories260K").Ids);

        // --exact refuses, naming the layer, and leaves nothing behind.
        string refused = _temp.File("refused.gguf");
        var (c2, _, e2) = CliRunner.Run("export", quantized, "--gguf", refused, "--exact");
        CliRunner.AssertOneLineError(c2, e2, "self_attn.q_proj", "int4-sym-g32-rot64", "no exact GGUF type");
        Assert.DoesNotContain(_temp.FileNames(), f => f.StartsWith("refused", StringComparison.Ordinal));
    }

    [Fact]
    public void CliInspectsEvaluatesAndGeneratesFromGguf()
    {
        string model = SharedData.Require("models", "stories260K");
        string path = _temp.File("s.gguf");
        var (code, stdout, err) = CliRunner.Run("export", model, "--gguf", path, "--type", "q4_0", "--json");
        Assert.True(code == 0, err);
        var report = JsonDocument.Parse(stdout).RootElement;
        Assert.True(report.GetProperty("verified").GetBoolean());
        Assert.Equal("llama", report.GetProperty("architecture").GetString());
        Assert.Contains(report.GetProperty("tensors").EnumerateArray(), t => t.GetProperty("type").GetString() == "q4_0");
        Assert.Contains(report.GetProperty("tensors").EnumerateArray(), t => t.GetProperty("detail").GetString()!.Contains("172 columns"));

        (code, stdout, err) = CliRunner.Run("inspect", path, "--json");
        Assert.True(code == 0, err);
        var inspect = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal("llama", inspect.GetProperty("metadata").GetProperty("general.architecture").GetString());
        Assert.Equal(512, inspect.GetProperty("metadata").GetProperty("tokenizer.ggml.tokens").GetProperty("length").GetInt32());
        Assert.Equal(47, inspect.GetProperty("tensors").GetArrayLength());

        (code, stdout, err) = CliRunner.Run("inspect", path);
        Assert.True(code == 0, err);
        Assert.Contains("llama: 5 layers, hidden 64", stdout);

        (code, stdout, err) = CliRunner.Run("generate", path, "--prompt", "Once upon a time", "--max-tokens", "8");
        Assert.True(code == 0, err);
        Assert.StartsWith("Once upon a time", stdout.TrimStart());
    }

    [Fact]
    public void CliRejectsBadExportsWithOneLine()
    {
        string model = SharedData.Require("models", "stories260K");
        string path = _temp.File("o.gguf");
        var (code, _, err) = CliRunner.Run("export", model, "--gguf", path, "--type", "q5_k");
        CliRunner.AssertOneLineError(code, err, "--type", "q5_k");
        (code, _, err) = CliRunner.Run("export", _temp.File("missing"), "--gguf", path);
        CliRunner.AssertOneLineError(code, err, "not found");
        (code, _, err) = CliRunner.Run("export", model, "--gguf", _temp.Path);
        CliRunner.AssertOneLineError(code, err, "is a directory");
        File.WriteAllText(path, "old");
        (code, _, err) = CliRunner.Run("export", model, "--gguf", path);
        CliRunner.AssertOneLineError(code, err, "already exists", "--force");
        Assert.Equal("old", File.ReadAllText(path));
        (code, _, err) = CliRunner.Run("export", model, "--gguf", path, "--force", "--no-verify");
        Assert.True(code == 0, err);

        // A truncated GGUF given to eval / inspect: one line naming the file.
        byte[] bytes = File.ReadAllBytes(path);
        string truncated = _temp.File("t.gguf");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        (code, _, err) = CliRunner.Run("inspect", truncated);
        CliRunner.AssertOneLineError(code, err, truncated, "truncated");
        (code, _, err) = CliRunner.Run("eval", truncated, "--data", SharedData.Require("data", "tinystories", "tinystories-10k.txt"));
        CliRunner.AssertOneLineError(code, err, truncated);
        (code, _, err) = CliRunner.Run("quantize", path, "-o", _temp.File("qq"));
        CliRunner.AssertOneLineError(code, err, "not GGUF");
    }
}
