using LlmPress.Quantization;
using LlmPress.Sparsity;
using LlmPress.Tests.Numerics;
using LlmPress.Tests.Quantization;
using LlmPress.Tests.Quantization.Gptq;

namespace LlmPress.Tests.Sparsity;

/// <summary>Bit-identical results for any thread cap (changes Parallelism.MaxThreads, so it runs in the non-parallel collection).</summary>
[Collection(GlobalSettingsCollection.Name)]
public class PruningDeterminismTests
{
    [Theory]
    [InlineData("0.5", "")]
    [InlineData("2:4", "")]
    [InlineData("0.5", "int4-asym-g32")]
    [InlineData("2:4", "nvfp4")]
    public void SparseGptIsIndependentOfThreadCount(string patternName, string formatName)
    {
        int rows = 300, cols = 256; // trailing GEMMs big enough to run on several threads
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 17);
        var options = new SparseGptOptions { BlockSize = 64, Format = formatName.Length == 0 ? null : QuantFormat.Parse(formatName) };
        var pattern = SparsityPattern.Parse(patternName);
        PruneResult one, two;
        using (NumericsTestUtil.Threads(1)) one = SparseGpt.Prune(w, rows, cols, h, pattern, options);
        using (NumericsTestUtil.Threads(2)) two = SparseGpt.Prune(w, rows, cols, h, pattern, options);
        var serial = SparseGpt.Prune(w, rows, cols, h, pattern, options with { Parallel = false });
        QuantTestData.AssertBitIdentical(one.Weight, two.Weight, "weight");
        QuantTestData.AssertBitIdentical(one.Weight, serial.Weight, "weight");
        Assert.Equal(one.Pruned, two.Pruned);
        if (one.Packed is not null) QuantTestData.AssertIdentical(one.Packed, two.Packed!);
    }

    [Theory]
    [InlineData("0.5")]
    [InlineData("2:4")]
    public void IterativeObsIsIndependentOfThreadCount(string patternName)
    {
        int rows = 300, cols = 256; // 5 row chunks of 64 for the CG scalars
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 18);
        var pattern = SparsityPattern.Parse(patternName);
        var options = new IterativeObsOptions { MaxIterations = 4, BlockSize = 64 };
        PruneResult one, two;
        using (NumericsTestUtil.Threads(1)) one = IterativeObs.Prune(w, rows, cols, h, pattern, options);
        using (NumericsTestUtil.Threads(2)) two = IterativeObs.Prune(w, rows, cols, h, pattern, options);
        QuantTestData.AssertBitIdentical(one.Weight, two.Weight, "weight");
        Assert.Equal(one.Pruned, two.Pruned);
        Assert.Equal(one.ErrorByIteration, two.ErrorByIteration);
    }
}
