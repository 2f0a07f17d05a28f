using LlmPress.Quantization;
using LlmPress.Sparsity;
using LlmPress.Tests.Quantization;
using LlmPress.Tests.Quantization.Gptq;
using GptqSolver = LlmPress.Quantization.Gptq;

namespace LlmPress.Tests.Sparsity;

/// <summary>The fast SparseGPT (GPTQ's blocked loop with a mask) against the textbook double-precision OBS loop, and its contracts.</summary>
public class SparseGptTests
{
    public static TheoryData<string, string, int, int, int> Cases => new()
    {
        // pattern, format ("" = prune only), rows, cols, block size
        { "0.5", "", 16, 64, 128 },
        { "0.5", "", 16, 64, 16 },               // several blocks: per-block selection on updated weights, trailing GEMMs
        { "0.3", "", 12, 40, 12 },               // blocks not dividing cols; running count round(0.3·12·end)
        { "0.7", "", 9, 33, 10 },                // odd sizes, high sparsity
        { "2:4", "", 16, 64, 128 },
        { "2:4", "", 16, 64, 6 },                // block rounded up to 8, a multiple of M
        { "3:8", "", 10, 48, 20 },               // block rounded up to 24
        { "0.5", "int4-asym-g32", 16, 96, 48 },  // joint; groups start mid-block and reach past it
        { "0.5", "int4-sym-g32", 16, 96, 128 },
        { "2:4", "int4-asym-g32", 16, 64, 16 },
        { "2:4", "int4-sym-g32", 16, 64, 128 },
        { "0.5", "int3-asym-perchannel", 12, 40, 16 },
        { "0.5", "mxfp4", 16, 64, 24 },
        { "2:4", "nvfp4", 16, 48, 20 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void FastMatchesTextbookReference(string patternName, string formatName, int rows, int cols, int blockSize)
    {
        var pattern = SparsityPattern.Parse(patternName);
        var format = formatName.Length == 0 ? null : QuantFormat.Parse(formatName);
        var (w, h) = GptqTestData.Layer(rows, cols, seed: rows * 31 + cols, spread: 0.5);
        var fast = SparseGpt.Prune(w, rows, cols, h, pattern, new SparseGptOptions { BlockSize = blockSize, Format = format });
        var reference = SparseGptReference.Prune(w, rows, cols, h, pattern, blockSize, format);

        // Masks: identical. Saliencies differ by FP32 rounding (~1e-6 relative) while neighbouring saliencies of these
        // small blocks are far apart, so the choice cannot flip on these fixed seeds.
        Assert.Equal(reference.Pruned, fast.Pruned);
        AssertPattern(fast, pattern);
        if (format is null)
        {
            // FP32 factor and blocked updates against double: relative error ~cond(H + λI)·2⁻²⁴ per update; measured
            // at most 4.6e-7 of max|w| over these cases, asserted at 1e-5 (20× margin).
            double max = reference.Weight.Max(Math.Abs);
            for (int i = 0; i < w.Length; i++)
                Assert.True(Math.Abs(fast.Weight[i] - reference.Weight[i]) <= 1e-5 * max, $"weight {i}: {fast.Weight[i]} vs {reference.Weight[i]}");
            Assert.Null(fast.Packed);
        }
        else
        {
            // Codes identical, as GPTQ's reference test: a code could only flip on a near-exact rounding tie.
            Assert.NotNull(fast.Packed);
            Assert.Equal(reference.Packed!.UnpackCodes(), fast.Packed.UnpackCodes());
            Assert.Equal(reference.Packed.UnpackScales(), fast.Packed.UnpackScales());
            var dequantized = fast.Packed.Dequantize();
            QuantTestData.AssertBitIdentical(dequantized, fast.Weight, "Weight vs Packed.Dequantize()");
            for (int i = 0; i < w.Length; i++)
                if (fast.Pruned[i]) Assert.Equal(0u, BitConverter.SingleToUInt32Bits(dequantized[i]));
        }
        for (int i = 0; i < w.Length; i++)
            if (fast.Pruned[i]) Assert.Equal(0u, BitConverter.SingleToUInt32Bits(fast.Weight[i]));
    }

    /// <summary>Exact counts: the layer total for unstructured, N in every group of M for N:M.</summary>
    internal static void AssertPattern(PruneResult result, SparsityPattern pattern)
    {
        Assert.Equal(pattern.ZeroCount(result.Rows, result.Cols), result.PrunedCount);
        if (!pattern.IsNOfM) return;
        for (int g = 0; g < result.Pruned.Length; g += pattern.M)
        {
            int zeros = 0;
            for (int k = 0; k < pattern.M; k++) zeros += result.Pruned[g + k] ? 1 : 0;
            Assert.Equal(pattern.N, zeros);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("int4-asym-g16")]
    public void FixedMaskIsPrunedExactlyAndCompensated(string formatName)
    {
        int rows = 12, cols = 48;
        var format = formatName.Length == 0 ? null : QuantFormat.Parse(formatName);
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 5, spread: 0.5);
        var magnitude = MagnitudePruner.Prune(w, rows, cols, SparsityPattern.Unstructured(0.6));
        // The pattern is ignored with a fixed mask (2:4 would choose a different, balanced mask).
        var options = new SparseGptOptions { BlockSize = 16, Format = format, FixedMask = magnitude.Pruned };
        var fast = SparseGpt.Prune(w, rows, cols, h, SparsityPattern.NOfM(2, 4), options);
        Assert.Equal(magnitude.Pruned, fast.Pruned);
        var reference = SparseGptReference.Prune(w, rows, cols, h, SparsityPattern.Dense, 16, format, magnitude.Pruned);
        if (format is null)
        {
            double max = reference.Weight.Max(Math.Abs);
            for (int i = 0; i < w.Length; i++) Assert.True(Math.Abs(fast.Weight[i] - reference.Weight[i]) <= 1e-5 * max, $"weight {i}");
        }
        else Assert.Equal(reference.Packed!.UnpackCodes(), fast.Packed!.UnpackCodes());
        // Compensation helps: the same mask without it (magnitude pruning) has a larger output error.
        Assert.True(LayerError.RelativeOutputError(w, fast.Weight, rows, cols, h) < LayerError.RelativeOutputError(w, magnitude.Weight, rows, cols, h));
    }

    [Theory]
    [InlineData("int4-asym-g32")]
    [InlineData("int4-sym-g32")]
    [InlineData("nvfp4")]
    public void DenseJointIsGptq(string formatName)
    {
        // Sparsity 0 prunes nothing, so the loop is GPTQ's, bit for bit.
        var format = QuantFormat.Parse(formatName);
        int rows = 24, cols = 96;
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 11);
        var sparse = SparseGpt.Prune(w, rows, cols, h, SparsityPattern.Unstructured(0), new SparseGptOptions { Format = format, BlockSize = 32 });
        var gptq = GptqSolver.Quantize(w, rows, cols, h, format, new GptqOptions { BlockSize = 32 });
        QuantTestData.AssertIdentical(gptq.Packed, sparse.Packed!);
        QuantTestData.AssertBitIdentical(gptq.Dequantized, sparse.Weight, "weight");
        Assert.Equal(0, sparse.PrunedCount);
    }

    [Fact]
    public void DensePruneOnlyKeepsTheWeight()
    {
        int rows = 10, cols = 40;
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 12);
        var result = SparseGpt.Prune(w, rows, cols, h, SparsityPattern.Unstructured(0), new SparseGptOptions { BlockSize = 16 });
        QuantTestData.AssertBitIdentical(w, result.Weight, "weight"); // every error is 0, so every update adds exactly 0
        Assert.Equal(0, result.PrunedCount);
    }

    [Theory]
    [InlineData("0.5")]
    [InlineData("2:4")]
    public void DeadColumnsAreZeroedAndMatchTheReference(string patternName)
    {
        int rows = 12, cols = 32;
        var pattern = SparsityPattern.Parse(patternName);
        var w = QuantTestData.Gaussian(rows, cols, 3, sigma: 0.05f);
        var x = GptqTestData.CorrelatedInputs(128, cols, seed: 4);
        foreach (int dead in new[] { 3, 17 })
            for (int t = 0; t < 128; t++) x[t * cols + dead] = 0; // inputs that are always 0: H row and column 0
        var h = GptqTestData.Hessian(x, 128, cols);
        var fast = SparseGpt.Prune(w, rows, cols, h, pattern, new SparseGptOptions { BlockSize = 16 });
        var reference = SparseGptReference.Prune(w, rows, cols, h, pattern, 16);
        Assert.Equal(reference.Pruned, fast.Pruned);
        AssertPattern(fast, pattern);
        for (int r = 0; r < rows; r++)
        {
            Assert.Equal(0f, fast.Weight[r * cols + 3]);
            Assert.Equal(0f, fast.Weight[r * cols + 17]);
        }
    }

    [Fact]
    public void BadInputNamesTheLayer()
    {
        int rows = 4, cols = 8;
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 1);
        var options = new SparseGptOptions { LayerName = "model.layers.0.mlp.up_proj" };
        var half = SparsityPattern.Unstructured(0.5);
        var badW = (float[])w.Clone();
        badW[9] = float.NaN;
        var e = Assert.Throws<ArgumentException>(() => SparseGpt.Prune(badW, rows, cols, h, half, options));
        Assert.Contains("model.layers.0.mlp.up_proj", e.Message);
        Assert.Contains("weight[1, 1]", e.Message);
        var badH = (float[])h.Clone();
        badH[2 * cols + 1] = float.PositiveInfinity;
        e = Assert.Throws<ArgumentException>(() => SparseGpt.Prune(w, rows, cols, badH, half, options));
        Assert.Contains("model.layers.0.mlp.up_proj", e.Message);
        Assert.Contains("hessian[2, 1]", e.Message);
        e = Assert.Throws<ArgumentException>(() => SparseGpt.Prune(w, rows, 8, h, SparsityPattern.NOfM(2, 3), options));
        Assert.Contains("multiple of 3", e.Message);
        Assert.Throws<ArgumentException>(() => SparseGpt.Prune(w, rows, cols, h, half, options with { FixedMask = new bool[5] }));
        Assert.Throws<ArgumentOutOfRangeException>(() => SparseGpt.Prune(w, rows, cols, h, half, options with { BlockSize = 0 }));
        // An indefinite "Hessian" fails after the dampening retries, saying so.
        var negative = new float[cols * cols];
        for (int i = 0; i < cols; i++) negative[i * cols + i] = i == 0 ? -100 : 1;
        e = Assert.Throws<ArgumentException>(() => SparseGpt.Prune(w, rows, cols, negative, half, options));
        Assert.Contains("SparseGPT, layer 'model.layers.0.mlp.up_proj'", e.Message);
    }

    [Theory]
    [InlineData("higgs-p2-n256-rot64", "HIGGS")]
    [InlineData("int4-asym-g32-rot32", "rotated")]
    [InlineData("nvfp4-rot16", "rotated")]
    public void FormatsThatCannotKeepZerosAreRefused(string formatName, string reason)
    {
        int rows = 4, cols = 64;
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 2);
        var e = Assert.Throws<ArgumentException>(() =>
            SparseGpt.Prune(w, rows, cols, h, SparsityPattern.NOfM(2, 4), new SparseGptOptions { Format = QuantFormat.Parse(formatName), LayerName = "l" }));
        Assert.Contains(reason, e.Message);
        Assert.Contains("layer 'l'", e.Message);
    }

    [Fact]
    public void DampeningRetriesAreWarnings()
    {
        // A PSD but singular Hessian with no dampening fails the first factorisation, then succeeds with 0.1%.
        int rows = 6, cols = 16;
        var w = QuantTestData.Gaussian(rows, cols, 8);
        var x = GptqTestData.CorrelatedInputs(4, cols, seed: 9, noise: 0); // rank ≤ 4
        var h = GptqTestData.Hessian(x, 4, cols);
        var result = SparseGpt.Prune(w, rows, cols, h, SparsityPattern.Unstructured(0.5), new SparseGptOptions { DampPercent = 0, LayerName = "l" });
        Assert.NotEmpty(result.Warnings);
        Assert.Contains("SparseGPT, layer 'l'", result.Warnings[0]);
        Assert.Equal(48, result.PrunedCount);
    }
}
