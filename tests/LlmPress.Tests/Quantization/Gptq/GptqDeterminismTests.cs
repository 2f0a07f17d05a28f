using LlmPress.Quantization;
using LlmPress.Tests.Numerics;
using GptqSolver = LlmPress.Quantization.Gptq;

namespace LlmPress.Tests.Quantization.Gptq;

/// <summary>Bit-identical results for any thread cap (changes Parallelism.MaxThreads, so it runs in the non-parallel collection).</summary>
[Collection(GlobalSettingsCollection.Name)]
public class GptqDeterminismTests
{
    [Theory]
    [InlineData("int4-asym-g32", false)]
    [InlineData("nvfp4", true)]
    [InlineData("higgs-p2-n64-rot256", true)]
    public void QuantizeIsIndependentOfThreadCount(string name, bool actOrder)
    {
        var format = QuantFormat.Parse(name);
        int rows = 300, cols = 256; // trailing GEMMs big enough to run on several threads
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 17);
        var options = new GptqOptions { ActOrder = actOrder, BlockSize = 64 };
        GptqResult one, two;
        using (NumericsTestUtil.Threads(1)) one = GptqSolver.Quantize(w, rows, cols, h, format, options);
        using (NumericsTestUtil.Threads(2)) two = GptqSolver.Quantize(w, rows, cols, h, format, options);
        var serial = GptqSolver.Quantize(w, rows, cols, h, format, options with { Parallel = false });
        QuantTestData.AssertIdentical(one.Packed, two.Packed);
        QuantTestData.AssertIdentical(one.Packed, serial.Packed);
        QuantTestData.AssertBitIdentical(one.Dequantized, two.Dequantized, name);
        Assert.Equal(one.RowLosses, two.RowLosses);
        Assert.Equal(one.ColumnLosses, two.ColumnLosses);
    }

    [Fact]
    public void HessianIsIndependentOfThreadCount()
    {
        int cols = 300, tokens = 700;
        var x = GptqTestData.CorrelatedInputs(tokens, cols, seed: 2);
        float[] Run(int threads)
        {
            using var _ = NumericsTestUtil.Threads(threads);
            var acc = new HessianAccumulator(cols);
            acc.Add(x, tokens);
            return acc.GetHessian();
        }
        QuantTestData.AssertBitIdentical(Run(1), Run(2), "hessian");
    }
}
