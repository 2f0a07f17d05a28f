using LlmPress.Quantization;
using GptqSolver = LlmPress.Quantization.Gptq;

namespace LlmPress.Tests.Quantization.Gptq;

/// <summary>The fast solver (Cholesky trick, lazy blocks, one GEMM per block) against the textbook double-precision OBS loop.</summary>
public class GptqReferenceTests
{
    public static TheoryData<string, int, int, int, bool, bool> Cases => new()
    {
        // format, rows, cols, block size, act-order, static groups
        { "int4-asym-g8", 16, 40, 128, false, false },
        { "int4-asym-g8", 16, 40, 12, false, false },   // groups start mid-block and reach past it (pending-update path)
        { "int3-sym-g12", 16, 40, 16, false, false },   // cols not a multiple of the group, blocks not dividing cols
        { "int2-asym-perchannel", 16, 40, 7, false, false },
        { "int4-sym-g8", 16, 40, 16, true, false },     // act-order (static groups)
        { "int3-asym-g8", 16, 40, 16, false, true },    // static groups in natural order
        { "int4-asym-g8-rot16", 16, 40, 16, false, false }, // MR-GPTQ-style rotation: H rotated, 40 → 48 columns
        { "mxfp4", 16, 64, 24, false, false },
        { "nvfp4", 16, 48, 20, true, false },
        { "higgs-p1-n16-rot256", 8, 200, 64, false, false },
        { "higgs-p2-n64-rot256", 8, 300, 96, false, false },  // pairs; group 2 starts at 256 inside block [192, 288)
        { "higgs-p2-n16-rot256", 8, 200, 45, true, false },   // pairs with act-order, odd block size (rounded to 46)
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void FastSolverMatchesTextbookReference(string name, int rows, int cols, int blockSize, bool actOrder, bool staticGroups)
    {
        var format = QuantFormat.Parse(name);
        var (w, h) = GptqTestData.Layer(rows, cols, seed: rows * 31 + cols, spread: 0.5);
        var options = new GptqOptions { BlockSize = blockSize, ActOrder = actOrder, StaticGroups = staticGroups };
        var fast = GptqSolver.Quantize(w, rows, cols, h, format, options);
        var reference = GptqReference.Quantize(w, rows, cols, h, format, options);

        // Codes: identical. Both quantize the same current weights up to FP32 rounding of the updates (~1e-7 relative),
        // so a code could only flip on a near-exact rounding tie; with these fixed seeds none occurs.
        Assert.Equal(reference.Packed.UnpackCodes(), fast.Packed.UnpackCodes());
        Assert.Equal(reference.Packed.UnpackScales(), fast.Packed.UnpackScales());
        if (actOrder) Assert.Equal(reference.Permutation, fast.Permutation);
        for (int i = 0; i < reference.DequantizedStored.Length; i++)
            Assert.Equal(reference.DequantizedStored[i], fast.DequantizedStored[i]);
        // Losses: ε = (w − q)/Uᵢᵢ from an FP32 U against double. U's relative error is ~cond(H' + λI)·2⁻²⁴; padded
        // HIGGS layers (200 → 256 columns) are singular before the 1% dampening, cond ~ 10³, and measured 1.4e-4.
        AssertClose(reference.RowLosses, fast.RowLosses, 1e-3, "row losses");
        AssertClose(reference.ColumnLosses, fast.ColumnLosses, 1e-3, "column losses");
    }

    [Theory]
    [InlineData("int4-asym-g8", false)]
    [InlineData("int3-sym-g16", true)]
    [InlineData("higgs-p2-n256-rot256", false)]
    [InlineData("nvfp4-rot16", true)]
    public void LossesSumToTheDampedOutputError(string name, bool actOrder)
    {
        // OBS errors add up: Σ losses of a row = ½·Δ·(H' + λI)·Δᵀ for that row's final stored-basis error Δ = W' − Q.
        var format = QuantFormat.Parse(name);
        int rows = 12, cols = 96;
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 7);
        var result = GptqSolver.Quantize(w, rows, cols, h, format, new GptqOptions { ActOrder = actOrder, BlockSize = 32 });
        int n = format.StoredColumns(cols);
        var hs = GptqReference.StoredHessian(h, cols, format);
        var stored = format.ToStoredBasis(w, rows, cols);
        for (int r = 0; r < rows; r++)
        {
            var delta = new double[n];
            for (int c = 0; c < n; c++) delta[c] = stored[r * n + c] - (double)result.DequantizedStored[r * n + c];
            double form = 0;
            for (int i = 0; i < n; i++)
            {
                double s = result.Damping * delta[i];
                for (int j = 0; j < n; j++) s += hs[i, j] * delta[j];
                form += delta[i] * s;
            }
            Assert.True(Math.Abs(0.5 * form - result.RowLosses[r]) <= 1e-3 * result.RowLosses[r],
                $"row {r}: ½ΔHΔᵀ = {0.5 * form}, Σ losses = {result.RowLosses[r]}");
        }
        Assert.Equal(result.RowLosses.Sum(), result.ColumnLosses.Sum(), 1e-9 * result.TotalLoss);
    }

    [Theory]
    [InlineData("int4-asym-g16")]
    [InlineData("higgs-p2-n64-rot256")]
    public void BlockSizeOnlyChangesRounding(string name)
    {
        var format = QuantFormat.Parse(name);
        int rows = 16, cols = 256;
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 11);
        var expected = GptqSolver.Quantize(w, rows, cols, h, format, new GptqOptions { BlockSize = 256 });
        foreach (int blockSize in new[] { 1, 2, 10, 128 })
        {
            var other = GptqSolver.Quantize(w, rows, cols, h, format, new GptqOptions { BlockSize = blockSize });
            var a = expected.Packed.UnpackCodes();
            var b = other.Packed.UnpackCodes();
            int differ = a.Zip(b).Count(t => t.First != t.Second);
            Assert.True(differ <= a.Length / 200, $"block {blockSize}: {differ} of {a.Length} codes differ");
            Assert.Equal(expected.TotalLoss, other.TotalLoss, 1e-2 * expected.TotalLoss);
        }
    }

    private static void AssertClose(double[] expected, double[] actual, double relative, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Select(Math.Abs).DefaultIfEmpty(0).Max();
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= relative * Math.Max(Math.Abs(expected[i]), 1e-3 * scale),
                $"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R}");
    }
}
