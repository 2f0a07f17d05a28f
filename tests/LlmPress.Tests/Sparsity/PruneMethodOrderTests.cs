using LlmPress.Evaluation;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;
using LlmPress.Sparsity;
using LlmPress.Tests.Quantization.Pipeline;

namespace LlmPress.Tests.Sparsity;

/// <summary>
/// The data-aware methods through the whole pipeline on stories260K (calibration 16 × 128, perplexity on 16 held-out
/// windows of 256): at 50% unstructured and at 2:4, mean layer output error and perplexity order
/// SparseGPT ≤ Wanda ≤ magnitude, and iterative OBS ≤ SparseGPT in output error; joint GPTQ keeps the mask exactly.
/// </summary>
public class PruneMethodOrderTests
{
    private static PruningResult Run(LlamaModel model, PruneOptions options) =>
        PruningPipeline.Run(model, options, PipelineTestData.Calibration);

    private static double Perplexity(LlamaModel model, PruningResult result)
    {
        var linears = model.Layers.SelectMany(l => l.Linears).ToDictionary(l => l.Name);
        var saved = linears.ToDictionary(p => p.Key, p => p.Value.Weight);
        try
        {
            foreach (var l in result.Layers) linears[l.Name].Weight = WeightView.FromFloats(l.Weight ?? l.Packed!.Dequantize(), l.Rows, l.Cols);
            return PerplexityEvaluator.Evaluate(model, PipelineTestData.EvalTokens, PipelineTestData.EvalWindow, PipelineTestData.EvalWindows).Perplexity;
        }
        finally
        {
            foreach (var (name, weight) in saved) linears[name].Weight = weight;
        }
    }

    [Theory]
    [InlineData("0.5")]
    [InlineData("2:4")]
    public void DataAwareMethods_BeatMagnitude_InOutputErrorAndPerplexity(string sparsity)
    {
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        var pattern = SparsityPattern.Parse(sparsity);
        var results = new Dictionary<PruneMethod, (double OutputError, double Perplexity)>();
        foreach (var method in new[] { PruneMethod.Magnitude, PruneMethod.Wanda, PruneMethod.SparseGpt, PruneMethod.Iobs })
        {
            var result = Run(model, new PruneOptions { Method = method, Sparsity = pattern });
            Assert.All(result.Report.Layers, l => Assert.Equal(pattern.ZeroCount(l.Rows, l.Cols), l.PrunedWeights));
            if (method == PruneMethod.Iobs) Assert.All(result.Report.Layers, l => Assert.NotNull(l.Iterations));
            results[method] = (result.Report.Layers.Average(l => l.RelativeOutputError!.Value), Perplexity(model, result));
        }
        string table = string.Join("; ", results.Select(r => $"{r.Key}: error {r.Value.OutputError:0.0000}, perplexity {r.Value.Perplexity:0.00}"));
        Assert.True(results[PruneMethod.SparseGpt].OutputError <= results[PruneMethod.Wanda].OutputError, table);
        Assert.True(results[PruneMethod.Wanda].OutputError <= results[PruneMethod.Magnitude].OutputError, table);
        Assert.True(results[PruneMethod.Iobs].OutputError <= results[PruneMethod.SparseGpt].OutputError, table);
        Assert.True(results[PruneMethod.SparseGpt].Perplexity <= results[PruneMethod.Wanda].Perplexity, table);
        Assert.True(results[PruneMethod.Wanda].Perplexity <= results[PruneMethod.Magnitude].Perplexity, table);
    }

    [Fact]
    public void JointGptq_KeepsTheMaskInTheCodes()
    {
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        var quantize = new QuantizeOptions { Method = QuantMethod.Gptq, Format = QuantFormat.Int(4, 32, symmetric: false) };
        foreach (var method in new[] { PruneMethod.SparseGpt, PruneMethod.Magnitude })
        {
            var options = new PruneOptions { Method = method, Sparsity = SparsityPattern.NOfM(2, 4), Quantize = quantize };
            var result = Run(model, options);
            var linears = model.Layers.SelectMany(l => l.Linears).ToArray();
            for (int i = 0; i < linears.Length; i++)
            {
                var dequantized = result.Layers[i].Packed!.Dequantize();
                // Magnitude + GPTQ: SparseGPT's pass on the fixed magnitude mask — exactly those entries are 0.
                bool[]? mask = method == PruneMethod.Magnitude
                    ? MagnitudePruner.Prune(linears[i].Weight.ToFloatArray(), linears[i].OutFeatures, linears[i].InFeatures, options.Sparsity).Pruned
                    : null;
                for (int g = 0; g < dequantized.Length; g += 4)
                {
                    int zeros = 0;
                    for (int k = g; k < g + 4; k++)
                    {
                        if (dequantized[k] == 0) zeros++;
                        if (mask is not null && mask[k]) Assert.Equal(0f, dequantized[k]);
                    }
                    Assert.True(zeros >= 2, $"{linears[i].Name}: group at {g} has {zeros} zeros");
                }
                Assert.Equal("int4-asym-g32", result.Report.Layers[i].Format);
            }
        }
    }
}
