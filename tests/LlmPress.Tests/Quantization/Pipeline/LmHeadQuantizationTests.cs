using System.Text.Json;
using LlmPress.Export;
using LlmPress.Gguf;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Tests.Quantization.Pipeline;

/// <summary>`quantize --lm-head`: the output projection rounded to nearest, written, loaded, exported.</summary>
public sealed class LmHeadQuantizationTests : IDisposable
{
    private static readonly QuantFormat Q8 = QuantFormat.Int(8, 32, symmetric: true); // exactly GGUF Q8_0
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static QuantizeOptions Options(QuantFormat? head) => new() { Format = QuantFormat.Int(4, 32, symmetric: true), LmHeadFormat = head };

    private static (QuantizationReport Report, string Directory) Quantize(string model, QuantFormat? head, string output)
    {
        using var m = LlamaModel.Load(model);
        var result = QuantizationPipeline.Run(m, Options(head));
        return (QuantizedCheckpointWriter.Write(model, m.Store!, result, Options(head), output, overwrite: false), output);
    }

    [Fact]
    public void TiedHeadGetsItsOwnPackedTensorsAndTheEmbeddingStaysAsStored()
    {
        string source = PipelineTestData.ModelDirectory; // stories260K: tied
        var (report, dir) = Quantize(source, Q8, _dir.File("tied"));

        var head = report.Layers[^1];
        Assert.Equal(ModelConfig.LmHeadModule, head.Name);
        Assert.Equal(Q8.Name, head.Format);
        Assert.Equal(0, head.BytesBefore); // tied: the head had no bytes of its own
        Assert.True(head.RelativeWeightError is > 0 and < 1e-3, $"weight error {head.RelativeWeightError}");

        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "config.json")));
        Assert.False(config.RootElement.GetProperty("tie_word_embeddings").GetBoolean());
        var q = config.RootElement.GetProperty("quantization_config");
        Assert.Contains(q.GetProperty("quantized_layers").EnumerateArray(), e => e.GetString() == "lm_head");
        Assert.Equal(Q8.Name, q.GetProperty("layer_formats").GetProperty("lm_head").GetString());

        using var original = LlamaModel.Load(source);
        using var store = TensorStore.Open(dir);
        Assert.False(store.Contains(TensorNames.LmHead));
        Assert.True(store.Contains(TensorNames.LmHead + ".qweight"));
        Assert.Equal(original.Store!.GetData(TensorNames.Embedding).ToArray(), store.GetData(TensorNames.Embedding).ToArray());

        // The loaded head runs from its codes, which are exactly the RTN of the embedding.
        using var loaded = LlamaModel.Load(dir);
        Assert.NotNull(loaded.LmHead.Quantized);
        var e = original.Embedding;
        var expected = Q8.Quantize(e.ToFloatArray(), e.Rows, e.Cols).Dequantize();
        var checkpoint = QuantizedCheckpoint.TryLoad(dir)!;
        Assert.Equal(expected, checkpoint.ReadPacked(store, "lm_head", e.Rows, e.Cols).Dequantize());
        Assert.Equal(original.Embedding.ToFloatArray(), loaded.Embedding.ToFloatArray());
    }

    [Fact]
    public void AnEightBitHeadCostsAlmostNothingAndFourBitsCostMore()
    {
        // stories260K RTN int4 g32 body; the head at INT8 is within 0.5% perplexity of the BF16/FP32 head, INT4 is not
        // better than INT8 (a coarser grid on the same weights).
        double kept = PipelineTestData.Perplexity(Quantize(PipelineTestData.ModelDirectory, null, _dir.File("keep")).Directory);
        double int8 = PipelineTestData.Perplexity(Quantize(PipelineTestData.ModelDirectory, QuantFormat.Int(8, 128, symmetric: false), _dir.File("h8")).Directory);
        double int4 = PipelineTestData.Perplexity(Quantize(PipelineTestData.ModelDirectory, QuantFormat.Int(4, 128, symmetric: false), _dir.File("h4")).Directory);
        Assert.True(Math.Abs(int8 / kept - 1) < 0.005, $"int8 head {int8} vs kept {kept}");
        Assert.True(int4 > int8, $"int4 head {int4} vs int8 {int8}");
    }

    [Fact]
    public void GptqRoundsTheHeadOnTheFinalHiddenStatesWithLessOutputErrorThanRtn()
    {
        // GPTQ body, INT4 head: the pipeline hands the Hessian of the final norm's outputs to the head's GPTQ, whose
        // output error on it must be below plain rounding's (GPTQ minimises exactly that error, column by column).
        var head = QuantFormat.Int(4, 128, symmetric: false);
        var options = new QuantizeOptions { Method = QuantMethod.Gptq, Format = QuantFormat.Int(4, 32, symmetric: false), LmHeadFormat = head };
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        var run = LayerwisePipeline.Run(model, new QuantizeStep(options), PipelineTestData.Calibration, null, null, finalHessian: true);
        var h = run.FinalHessian!;
        Assert.Equal(model.Config.HiddenSize * model.Config.HiddenSize, h.Length);

        var (_, gptq) = QuantizationPipeline.QuantizeHead(model, options, h)!.Value;
        var (rtnLayer, _) = QuantizationPipeline.QuantizeHead(model, options with { Method = QuantMethod.Rtn })!.Value;
        var w = model.LmHead.Weight;
        double rtn = LayerError.RelativeOutputError(w.ToFloatArray(), rtnLayer.Weight.Dequantize(), w.Rows, w.Cols, h);
        Assert.NotNull(gptq.RelativeOutputError);
        Assert.True(gptq.RelativeOutputError < 0.9 * rtn, $"GPTQ head output error {gptq.RelativeOutputError} vs RTN {rtn}");

        // Through the public entry point the report carries the head's output error.
        var result = QuantizationPipeline.Run(model, options, PipelineTestData.Calibration);
        Assert.Equal(gptq.RelativeOutputError, result.Report.Layers[^1].RelativeOutputError);
    }

    [Fact]
    public void UntiedHeadIsReplacedAndThePlanCountsItsBytes()
    {
        string source = SharedData.Require("models", "tiny-llama3"); // untied, bf16
        using (var model = LlamaModel.Load(source))
        {
            var plan = QuantizationPlan.Create(model, Options(Q8), null, null);
            var planned = plan.Layers[^1];
            Assert.Equal("lm_head", planned.Name);
            Assert.Equal(model.LmHead.Weight.Data.Length, planned.BytesBefore);
        }
        var (report, dir) = Quantize(source, Q8, _dir.File("untied"));
        using var store = TensorStore.Open(dir);
        Assert.False(store.Contains(TensorNames.LmHead));
        Assert.True(store.Contains(TensorNames.LmHead + ".qweight"));
        Assert.True(report.Layers[^1].BytesBefore > 0);
        using var loaded = LlamaModel.Load(dir);
        Assert.NotNull(loaded.LmHead.Quantized);
        Assert.False(loaded.Config.TieWordEmbeddings);
    }

    [Fact]
    public void KeepLeavesTheHeadAlone()
    {
        var (report, dir) = Quantize(PipelineTestData.ModelDirectory, null, _dir.File("keep-only"));
        Assert.DoesNotContain(report.Layers, l => l.Name == "lm_head");
        using var loaded = LlamaModel.Load(dir);
        Assert.Null(loaded.LmHead.Quantized);
        Assert.True(loaded.Config.TieWordEmbeddings);
    }

    [Fact]
    public void ExportsCarryTheQuantizedHeadExactly()
    {
        var (_, dir) = Quantize(PipelineTestData.ModelDirectory, Q8, _dir.File("export"));
        var checkpoint = QuantizedCheckpoint.TryLoad(dir)!;
        using var store = TensorStore.Open(dir);
        var c = ModelConfig.Load(dir);
        float[] head = checkpoint.ReadPacked(store, "lm_head", c.VocabSize, c.HiddenSize).Dequantize();

        // GGUF: output.weight is Q8_0 with the quantizer's codes and scales, so it decodes bit-identically.
        string gguf = _dir.File("model.gguf");
        var ggufReport = GgufExporter.Export(dir, gguf, new GgufExportOptions { Type = GgmlType.F32 });
        Assert.Contains(ggufReport.Tensors, t => t.Name == GgufTensorNames.Output && t.Type == GgmlType.Q8_0 && t.Mapping == GgufTensorMapping.Exact);
        using (var file = GgufFile.Open(gguf))
            Assert.Equal(head, GgufModelLoader.ReadMatrix(file, GgufTensorNames.Output, c.VocabSize, c.HiddenSize));

        // compressed-tensors: lm_head is a quantized layer, not ignored, and reads back to the same values.
        string ct = _dir.File("ct");
        var ctReport = CompressedTensorsExporter.Export(dir, ct, new CompressedTensorsExportOptions { DenseFallback = true });
        Assert.DoesNotContain("lm_head", ctReport.Ignore);
        Assert.Contains(ctReport.Warnings, w => w.Contains("lm_head is quantized", StringComparison.Ordinal));
        var ctCheckpoint = CompressedTensorsCheckpoint.TryLoad(ct)!;
        using var ctStore = TensorStore.Open(ct);
        Assert.Equal(head, ctCheckpoint.LoadWeight(ctStore, "lm_head", c.VocabSize, c.HiddenSize).ToFloatArray());
        using var loaded = LlamaModel.Load(ct);
        Assert.Equal(head, loaded.LmHead.Weight.ToFloatArray());
    }
}
