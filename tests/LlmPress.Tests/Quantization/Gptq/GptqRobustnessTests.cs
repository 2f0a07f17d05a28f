using LlmPress.Quantization;
using GptqSolver = LlmPress.Quantization.Gptq;

namespace LlmPress.Tests.Quantization.Gptq;

/// <summary>Dead columns, bad Hessians, bad inputs, awkward shapes.</summary>
public class GptqRobustnessTests
{
    [Theory]
    [InlineData("int4-asym-g8", false)]
    [InlineData("int3-sym-perchannel", true)]
    [InlineData("nvfp4", false)]
    public void DeadColumnsAreZeroedWithoutNaN(string name, bool actOrder)
    {
        var format = QuantFormat.Parse(name);
        int rows = 8, cols = 48, tokens = 200;
        var x = GptqTestData.CorrelatedInputs(tokens, cols, seed: 3);
        int[] dead = [0, 5, 6, 47];
        foreach (int c in dead)
            for (int t = 0; t < tokens; t++) x[t * cols + c] = 0; // inputs that never fire
        var h = GptqTestData.Hessian(x, tokens, cols);
        var w = QuantTestData.Gaussian(rows, cols, 4);
        var result = GptqSolver.Quantize(w, rows, cols, h, format, new GptqOptions { ActOrder = actOrder });
        Assert.Equal(dead.Length, result.DeadColumns);
        Assert.Empty(result.Warnings);
        Assert.All(result.Dequantized, v => Assert.True(float.IsFinite(v)));
        for (int r = 0; r < rows; r++)
            foreach (int c in dead) Assert.Equal(0f, result.Dequantized[r * cols + c]);
        Assert.All(result.RowLosses, l => Assert.True(double.IsFinite(l)));
        // A dead column's weight is irrelevant to the output: the result matches GPTQ on W with those columns zeroed.
        var zeroed = (float[])w.Clone();
        for (int r = 0; r < rows; r++)
            foreach (int c in dead) zeroed[r * cols + c] = 0;
        var expected = GptqSolver.Quantize(zeroed, rows, cols, h, format, new GptqOptions { ActOrder = actOrder });
        QuantTestData.AssertBitIdentical(expected.Dequantized, result.Dequantized, name);
    }

    [Fact]
    public void AllZeroHessianIsAllDead()
    {
        int rows = 4, cols = 16;
        var w = QuantTestData.Gaussian(rows, cols, 1);
        var result = GptqSolver.Quantize(w, rows, cols, new float[cols * cols], QuantFormat.Int(4, 8));
        Assert.Equal(cols, result.DeadColumns);
        Assert.All(result.Dequantized, v => Assert.Equal(0f, v));
    }

    // 2×2 blocks [[1, 1.5], [1.5, 1]] on the diagonal: eigenvalues 2.5 and −0.5, mean diagonal 1. Indefinite: λ must
    // exceed 0.5, so 1% and 10% fail and 100% (the second retry) succeeds.
    private static float[] IndefiniteHessian(int cols)
    {
        var h = new float[cols * cols];
        for (int i = 0; i < cols; i += 2)
        {
            h[i * cols + i] = h[(i + 1) * cols + i + 1] = 1;
            h[i * cols + i + 1] = h[(i + 1) * cols + i] = 1.5f;
        }
        return h;
    }

    [Fact]
    public void IndefiniteHessianIsDampedMoreWithAWarningPerRetry()
    {
        int rows = 6, cols = 16;
        var w = QuantTestData.Gaussian(rows, cols, 2);
        var result = GptqSolver.Quantize(w, rows, cols, IndefiniteHessian(cols), QuantFormat.Int(4, 8),
            new GptqOptions { LayerName = "blk.0.q" });
        Assert.Equal(2, result.DampRetries);
        Assert.Equal(2, result.Warnings.Count);
        Assert.Equal(1.0, result.DampPercent, 1e-12);
        Assert.Equal(1.0, result.Damping, 1e-12);
        Assert.Contains("blk.0.q", result.Warnings[0]);
        Assert.Contains("Cholesky failed", result.Warnings[0]);
        Assert.All(result.Dequantized, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void SingularHessianWithoutDampeningIsRetried()
    {
        // Rank-deficient H (4 tokens, 24 columns) and DampPercent = 0: the factorisation hits a zero pivot (or blows up),
        // the retry starts at 0.1%.
        int rows = 5, cols = 24, tokens = 4;
        var x = GptqTestData.CorrelatedInputs(tokens, cols, seed: 8, rank: 2, noise: 0);
        var h = GptqTestData.Hessian(x, tokens, cols);
        var w = QuantTestData.Gaussian(rows, cols, 9);
        var result = GptqSolver.Quantize(w, rows, cols, h, QuantFormat.Int(4), new GptqOptions { DampPercent = 0 });
        Assert.True(result.DampRetries >= 1, "expected a retry");
        Assert.Equal(result.DampRetries, result.Warnings.Count);
        Assert.True(result.DampPercent >= 1e-3);
        Assert.All(result.Dequantized, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void HessianThatStaysIndefiniteThrowsNamingTheLayer()
    {
        int rows = 3, cols = 8;
        var h = IndefiniteHessian(cols);
        h[0] = 40;             // mean diagonal (40 + 6 − 20)/8 = 3.25 > 0, but
        h[7 * cols + 7] = -20; // H₇₇ + λ < 0 for every λ tried (at most 100% of the mean after 2 retries)
        var w = QuantTestData.Gaussian(rows, cols, 3);
        var e = Assert.Throws<ArgumentException>(() =>
            GptqSolver.Quantize(w, rows, cols, h, QuantFormat.Int(4), new GptqOptions { LayerName = "model.layers.7.mlp.up_proj", MaxDampRetries = 2 }));
        Assert.Contains("model.layers.7.mlp.up_proj", e.Message);
        Assert.Contains("not positive definite", e.Message);
    }

    [Fact]
    public void NegativeMeanDiagonalThrows()
    {
        int cols = 4;
        var h = new float[cols * cols];
        for (int i = 0; i < cols; i++) h[i * cols + i] = -1;
        var e = Assert.Throws<ArgumentException>(() => GptqSolver.Quantize(new float[2 * cols], 2, cols, h, QuantFormat.Int(4)));
        Assert.Contains("mean diagonal", e.Message);
    }

    [Fact]
    public void NonFiniteInputsThrowClearly()
    {
        int rows = 4, cols = 16;
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 1);
        var options = new GptqOptions { LayerName = "layer.x" };
        var badW = (float[])w.Clone();
        badW[2 * cols + 5] = float.NaN;
        var e = Assert.Throws<ArgumentException>(() => GptqSolver.Quantize(badW, rows, cols, h, QuantFormat.Int(4), options));
        Assert.Contains("weight[2, 5]", e.Message);
        Assert.Contains("layer.x", e.Message);
        var badH = (float[])h.Clone();
        badH[3 * cols + 1] = float.PositiveInfinity;
        e = Assert.Throws<ArgumentException>(() => GptqSolver.Quantize(w, rows, cols, badH, QuantFormat.Int(4), options));
        Assert.Contains("hessian[3, 1]", e.Message);
        Assert.Equal("hessian", e.ParamName);
    }

    [Fact]
    public void FormatErrorsNameTheLayer()
    {
        // Weights too large for FP16 INT scales: the format's exception, prefixed with the layer.
        int rows = 2, cols = 8;
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 1);
        for (int i = 0; i < w.Length; i++) w[i] *= 1e8f;
        var e = Assert.Throws<ArgumentException>(() =>
            GptqSolver.Quantize(w, rows, cols, h, QuantFormat.Int(4), new GptqOptions { LayerName = "blk.3.ffn_down" }));
        Assert.StartsWith("GPTQ, layer 'blk.3.ffn_down': int4-asym-perchannel", e.Message);
        Assert.Contains("FP16", e.Message);
        Assert.IsType<ArgumentException>(e.InnerException);
    }

    [Fact]
    public void Nvfp4CanShareAGlobalScale()
    {
        int rows = 8, cols = 64;
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 13);
        var format = QuantFormat.Nvfp4();
        float own = Nvfp4Format.ComputeGlobalScale(w);
        var shared = GptqSolver.Quantize(w, rows, cols, h, format, new GptqOptions { Nvfp4GlobalScale = own / 2 });
        Assert.Equal(own / 2, shared.Packed.GlobalScale);
        Assert.Equal(own, GptqSolver.Quantize(w, rows, cols, h, format).Packed.GlobalScale);
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            GptqSolver.Quantize(w, rows, cols, h, QuantFormat.Mxfp4(), new GptqOptions { Nvfp4GlobalScale = 1f }));
    }

    [Fact]
    public void BadArgumentsThrow()
    {
        int rows = 4, cols = 16;
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 1);
        var f = QuantFormat.Int(4);
        Assert.Throws<ArgumentException>(() => GptqSolver.Quantize(w.AsSpan(1), rows, cols, h, f));
        Assert.Throws<ArgumentException>(() => GptqSolver.Quantize(w, rows, cols, h.AsSpan(1), f));
        Assert.Throws<ArgumentOutOfRangeException>(() => GptqSolver.Quantize(w, rows, cols, h, f, new GptqOptions { BlockSize = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => GptqSolver.Quantize(w, rows, cols, h, f, new GptqOptions { DampPercent = double.NaN }));
        Assert.Throws<ArgumentOutOfRangeException>(() => GptqSolver.Quantize(w, rows, cols, h, f, new GptqOptions { MaxDampRetries = -1 }));
        Assert.Throws<ArgumentNullException>(() => GptqSolver.Quantize(w, rows, cols, h, null!));
    }

    [Theory]
    [InlineData("int4-asym-g7", 5, 37, 10)]      // nothing divides anything
    [InlineData("int3-sym-g64", 3, 50, 128)]     // group larger than cols: one group
    [InlineData("int4-asym-g3", 1, 1, 128)]      // a 1×1 layer
    [InlineData("higgs-p2-n64-rot256", 2, 257, 3)] // pairs, block 3 → 4, 257 → 512 stored columns
    [InlineData("mxfp4-rot32", 7, 33, 1)]        // block 1
    public void AwkwardShapesWork(string name, int rows, int cols, int blockSize)
    {
        var format = QuantFormat.Parse(name);
        var (w, h) = GptqTestData.Layer(rows, cols, seed: cols);
        var result = GptqSolver.Quantize(w, rows, cols, h, format, new GptqOptions { BlockSize = blockSize });
        Assert.Equal(rows * cols, result.Dequantized.Length);
        Assert.Equal(rows * format.StoredColumns(cols), result.DequantizedStored.Length);
        QuantTestData.AssertBitIdentical(result.Packed.DequantizeStored(), result.DequantizedStored, name);
        Assert.All(result.Dequantized, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void ZeroRowsIsAnEmptyResult()
    {
        var (_, h) = GptqTestData.Layer(1, 8, seed: 1);
        var result = GptqSolver.Quantize([], 0, 8, h, QuantFormat.Int(4));
        Assert.Empty(result.Dequantized);
        Assert.Equal(0, result.TotalLoss);
    }

    [Fact]
    public void StoredBasisHessianIsTheHessianOfRotatedInputs()
    {
        // MR-GPTQ/HIGGS accumulate H on rotated inputs x·R; Gptq instead rotates H: R·H·R. Both must agree.
        var format = QuantFormat.Int(4, 16, rotationBlockSize: 16);
        int cols = 40, tokens = 300, n = format.StoredColumns(cols);
        var x = GptqTestData.CorrelatedInputs(tokens, cols, seed: 12);
        var rotatedInputs = format.ToStoredBasis(x, tokens, cols); // the same right-multiplication as for weights
        var expected = GptqTestData.Hessian(rotatedInputs, tokens, n);
        var actual = GptqSolver.ToStoredBasisHessian(GptqTestData.Hessian(x, tokens, cols), cols, format);
        float scale = expected.Max(MathF.Abs);
        for (int i = 0; i < expected.Length; i++) Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-5f * scale, $"element {i}");
    }
}
