using System.Text.Json;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Tests.Quantization.Pipeline;

/// <summary>FP32, RTN and GPTQ at 4 and 3 bits (g32) on stories260K, quantized once for all tests of this class.</summary>
public sealed class QuantizedStoriesFixture : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly Dictionary<string, (string Directory, QuantizationReport Report, double Perplexity)> _runs = [];
    private double? _fp32;

    public double Fp32Perplexity => _fp32 ??= PipelineTestData.Perplexity(PipelineTestData.ModelDirectory);

    public (string Directory, QuantizationReport Report, double Perplexity) Get(QuantMethod method, int bits)
    {
        string key = $"{method}{bits}";
        lock (_runs)
        {
            if (_runs.TryGetValue(key, out var run)) return run;
            string output = Path.Combine(_dir.Path, key);
            var report = PipelineTestData.Quantize(PipelineTestData.Options(method, bits), output);
            return _runs[key] = (output, report, PipelineTestData.Perplexity(output));
        }
    }

    public void Dispose() => _dir.Dispose();
}

public class QuantizationPipelineTests(QuantizedStoriesFixture runs) : IClassFixture<QuantizedStoriesFixture>
{
    [Fact]
    public void Int4_RtnAndGptqStayCloseToFp32_GptqIsNoWorse()
    {
        double fp32 = runs.Fp32Perplexity;
        var rtn = runs.Get(QuantMethod.Rtn, 4);
        var gptq = runs.Get(QuantMethod.Gptq, 4);
        Assert.True(double.IsFinite(rtn.Perplexity) && double.IsFinite(gptq.Perplexity));
        Assert.InRange(rtn.Perplexity, fp32 * 0.95, fp32 * 1.3);
        Assert.InRange(gptq.Perplexity, fp32 * 0.95, fp32 * 1.3);
        Assert.True(gptq.Perplexity <= rtn.Perplexity + 0.05, $"GPTQ {gptq.Perplexity} vs RTN {rtn.Perplexity} (FP32 {fp32})");
    }

    [Fact]
    public void Int4_GptqOutputErrorIsAtMostRtnsForEveryLayer()
    {
        var rtn = runs.Get(QuantMethod.Rtn, 4).Report.Layers;
        var gptq = runs.Get(QuantMethod.Gptq, 4).Report.Layers;
        Assert.Equal(35, gptq.Count);
        Assert.Equal(rtn.Select(l => l.Name), gptq.Select(l => l.Name));
        for (int i = 0; i < rtn.Count; i++)
        {
            Assert.NotNull(gptq[i].RelativeOutputError);
            Assert.True(gptq[i].RelativeOutputError <= rtn[i].RelativeOutputError,
                $"{gptq[i].Name}: GPTQ {gptq[i].RelativeOutputError} > RTN {rtn[i].RelativeOutputError}");
        }
    }

    [Fact]
    public void Int3_GptqBeatsRtn()
    {
        var rtn = runs.Get(QuantMethod.Rtn, 3);
        var gptq = runs.Get(QuantMethod.Gptq, 3);
        Assert.True(double.IsFinite(gptq.Perplexity));
        Assert.True(gptq.Perplexity < rtn.Perplexity, $"GPTQ-3 {gptq.Perplexity} vs RTN-3 {rtn.Perplexity}");
    }

    [Fact]
    public void ReportAndConfigDescribeTheRun()
    {
        var (dir, report, _) = runs.Get(QuantMethod.Gptq, 4);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "report.json")));
        var root = doc.RootElement;
        Assert.Equal("gptq", root.GetProperty("method").GetString());
        Assert.Equal("int4-asym-g32", root.GetProperty("format").GetString());
        var layers = root.GetProperty("layers");
        Assert.Equal(35, layers.GetArrayLength());
        foreach (var l in layers.EnumerateArray())
        {
            Assert.StartsWith("model.layers.", l.GetProperty("name").GetString());
            Assert.Equal(2, l.GetProperty("shape").GetArrayLength());
            Assert.Equal("int4-asym-g32", l.GetProperty("format").GetString());
            Assert.InRange(l.GetProperty("bits_per_weight").GetDouble(), 4.5, 4.8);
            Assert.InRange(l.GetProperty("relative_weight_error").GetDouble(), 0, 0.1);
            Assert.InRange(l.GetProperty("relative_output_error").GetDouble(), 0, 0.1);
            Assert.True(l.GetProperty("seconds").GetDouble() >= 0);
        }
        var totals = root.GetProperty("totals");
        Assert.True(totals.GetProperty("total_bytes_after").GetInt64() < totals.GetProperty("total_bytes_before").GetInt64());
        Assert.InRange(totals.GetProperty("average_bits_per_weight").GetDouble(), 4.5, 4.8);
        Assert.True(totals.GetProperty("peak_working_set_bytes").GetInt64() > 0);
        Assert.Contains("| model.layers.4.mlp.down_proj |", File.ReadAllText(Path.Combine(dir, "report.md")));
        // The file is the tensor bytes plus the JSON header.
        Assert.InRange(new FileInfo(Path.Combine(dir, "model.safetensors")).Length - report.TotalBytesAfter, 8, 65536);

        using var config = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "config.json")));
        var q = config.RootElement.GetProperty("quantization_config");
        Assert.Equal("llmpress", q.GetProperty("quant_method").GetString());
        Assert.Equal("gptq", q.GetProperty("method").GetString());
        Assert.Equal(32, q.GetProperty("group_size").GetInt32());
        Assert.False(q.GetProperty("sym").GetBoolean());
        Assert.False(q.GetProperty("act_order").GetBoolean());
        Assert.Equal(35, q.GetProperty("quantized_layers").GetArrayLength());
        Assert.Equal("llama", config.RootElement.GetProperty("model_type").GetString());
        Assert.True(File.Exists(Path.Combine(dir, "tokenizer.json")));
        Assert.True(File.Exists(Path.Combine(dir, "tokenizer_config.json")));
    }

    [Fact]
    public void CheckpointStoresPackedTensorsAndLoadsTheirDequantizedWeights()
    {
        var (dir, _, _) = runs.Get(QuantMethod.Rtn, 4);
        using var store = TensorStore.Open(dir);
        string module = TensorNames.DownProj(2);
        Assert.False(store.Contains(module + ".weight"));
        Assert.True(store.Contains(module + ".weight.qweight"));
        Assert.True(store.Contains(module + ".weight.scales"));
        Assert.True(store.Contains(TensorNames.Embedding));

        // RTN is deterministic: the loaded weight is exactly the format's RTN of the original, dequantized.
        using var original = LlamaModel.Load(PipelineTestData.ModelDirectory);
        using var loaded = LlamaModel.Load(dir);
        var w = original.Layers[2].DownProj.Weight;
        var expected = QuantFormat.Int(4, 32).Quantize(w.ToFloatArray(), w.Rows, w.Cols).Dequantize();
        Assert.Equal(DType.F32, loaded.Layers[2].DownProj.Weight.Type);
        Assert.Equal(expected, loaded.Layers[2].DownProj.Weight.ToFloatArray());
        // Norms and embeddings come through untouched.
        Assert.Equal(original.Embedding.ToFloatArray(), loaded.Embedding.ToFloatArray());
    }

    [Fact]
    public void RunRestoresTheModelsOriginalWeights()
    {
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        var before = model.Layers.SelectMany(l => l.Linears).Select(x => x.Weight.ToFloatArray()).ToArray();
        QuantizationPipeline.Run(model, PipelineTestData.Options(QuantMethod.Gptq, 4), PipelineTestData.Calibration);
        var after = model.Layers.SelectMany(l => l.Linears).Select(x => x.Weight.ToFloatArray()).ToArray();
        Assert.Equal(before, after);
    }

    [Fact]
    public void SameSeedGivesIdenticalBytes()
    {
        var (dir, _, _) = runs.Get(QuantMethod.Gptq, 4);
        using var again = new TempDirectory();
        string output = Path.Combine(again.Path, "gptq4");
        PipelineTestData.Quantize(PipelineTestData.Options(QuantMethod.Gptq, 4), output);
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "model.safetensors")), File.ReadAllBytes(Path.Combine(output, "model.safetensors")));
    }

    [Fact]
    public void GptqWithoutCalibrationIsRefused()
    {
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        var e = Assert.Throws<ArgumentException>(() => QuantizationPipeline.Run(model, PipelineTestData.Options(QuantMethod.Gptq, 4)));
        Assert.Contains("calibration", e.Message);
    }

    [Fact]
    public void HiggsRoundTripsThroughTheOriginalBasis()
    {
        using var dir = new TempDirectory();
        string output = Path.Combine(dir.Path, "higgs");
        var options = new QuantizeOptions { Method = QuantMethod.Higgs, Format = QuantFormat.Higgs(2, 256, 256) };
        using (var model = LlamaModel.Load(PipelineTestData.ModelDirectory))
        {
            var result = QuantizationPipeline.Run(model, options);
            Assert.All(result.Report.Layers, l => Assert.Null(l.RelativeOutputError));
            QuantizedCheckpointWriter.Write(PipelineTestData.ModelDirectory, model.Store!, result, options, output, overwrite: false);
        }
        double fp32 = runs.Fp32Perplexity;
        double ppl = PipelineTestData.Perplexity(output);
        Assert.InRange(ppl, fp32 * 0.95, fp32 * 1.3);
    }

    [Fact]
    public void FailureWhileWritingLeavesNoOutput()
    {
        using var dir = new TempDirectory();
        string source = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(source);
        foreach (var f in Directory.GetFiles(PipelineTestData.ModelDirectory))
            File.Copy(f, Path.Combine(source, Path.GetFileName(f)));
        string output = Path.Combine(dir.Path, "out");
        var options = PipelineTestData.Options(QuantMethod.Rtn, 4);
        using var model = LlamaModel.Load(source);
        var result = QuantizationPipeline.Run(model, options);
        // The weights are written first; a broken config.json then fails the write half-way.
        File.WriteAllText(Path.Combine(source, "config.json"), "{ not json");
        var e = Assert.Throws<InvalidDataException>(() =>
            QuantizedCheckpointWriter.Write(source, model.Store!, result, options, output, overwrite: false));
        Assert.Contains("config.json", e.Message);
        Assert.False(Directory.Exists(output));
        Assert.Equal(["src"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void ExistingOutputIsRefusedWithoutOverwrite()
    {
        using var dir = new TempDirectory();
        string marker = dir.File("keep.txt");
        File.WriteAllText(marker, "mine");
        var e = Assert.Throws<IOException>(() => PipelineTestData.Quantize(PipelineTestData.Options(QuantMethod.Rtn, 4), dir.Path));
        Assert.Contains("--force", e.Message);
        Assert.Equal(["keep.txt"], dir.FileNames());
        PipelineTestData.Quantize(PipelineTestData.Options(QuantMethod.Rtn, 4), dir.Path, overwrite: true);
        Assert.False(File.Exists(marker));
        Assert.True(File.Exists(dir.File("model.safetensors")));
    }
}
