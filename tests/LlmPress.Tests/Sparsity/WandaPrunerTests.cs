using LlmPress.Sparsity;
using LlmPress.Tests.Quantization;
using LlmPress.Tests.Quantization.Gptq;

namespace LlmPress.Tests.Sparsity;

public class WandaPrunerTests
{
    [Theory]
    [InlineData(16, 64, 0.5)]
    [InlineData(7, 13, 0.3)]   // round(3.9) = 4 per row
    [InlineData(12, 10, 0.25)] // round(2.5) = 2 per row (half to even)
    [InlineData(5, 40, 0.0)]
    public void Unstructured_MatchesBruteForcePerRow(int rows, int cols, double sparsity)
    {
        var w = QuantTestData.Gaussian(rows, cols, rows + cols);
        var x = GptqTestData.CorrelatedInputs(64, cols, seed: 3, spread: 1);
        var h = GptqTestData.Hessian(x, 64, cols);
        var result = WandaPruner.Prune(w, rows, cols, h, SparsityPattern.Unstructured(sparsity));
        int perRow = (int)Math.Round(sparsity * cols, MidpointRounding.ToEven);
        Assert.Equal((long)rows * perRow, result.PrunedCount);
        for (int r = 0; r < rows; r++)
        {
            // Reference: sort the row by |w|·√H_jj (in double; ties by column) and prune the first perRow.
            var order = Enumerable.Range(0, cols).OrderBy(j => Math.Abs((double)w[r * cols + j]) * Math.Sqrt(h[j * cols + j])).ThenBy(j => j).ToArray();
            for (int k = 0; k < cols; k++)
            {
                int i = r * cols + order[k];
                Assert.Equal(k < perRow, result.Pruned[i]);
                Assert.Equal(k < perRow ? 0f : w[i], result.Weight[i]); // kept weights unchanged
            }
        }
    }

    [Theory]
    [InlineData(2, 4)]
    [InlineData(4, 8)]
    [InlineData(1, 2)]
    public void NOfM_MatchesBruteForcePerGroup(int n, int m)
    {
        int rows = 9, cols = 48;
        var w = QuantTestData.Gaussian(rows, cols, 5);
        var x = GptqTestData.CorrelatedInputs(64, cols, seed: 6, spread: 1);
        var h = GptqTestData.Hessian(x, 64, cols);
        var result = WandaPruner.Prune(w, rows, cols, h, SparsityPattern.NOfM(n, m));
        SparseGptTests.AssertPattern(result, SparsityPattern.NOfM(n, m));
        for (int g = 0; g < w.Length; g += m)
        {
            int c0 = g % cols;
            var order = Enumerable.Range(0, m).OrderBy(k => Math.Abs((double)w[g + k]) * Math.Sqrt(h[(c0 + k) * cols + c0 + k])).ThenBy(k => k).ToArray();
            for (int k = 0; k < m; k++) Assert.Equal(k < n, result.Pruned[g + order[k]]);
        }
    }

    [Fact]
    public void ActivationNormsChangeTheChoice()
    {
        // Row [1, 2]: magnitude prunes the 1; with ‖x₀‖ ≫ ‖x₁‖ (H = diag(100, 1)) Wanda prunes the 2 (score 2 < 10).
        var result = WandaPruner.Prune(new float[] { 1, 2 }, 1, 2, new float[] { 100, 0, 0, 1 }, SparsityPattern.Unstructured(0.5));
        Assert.Equal(new[] { false, true }, result.Pruned);
    }

    [Fact]
    public void BadInputNamesTheProblem()
    {
        var w = QuantTestData.Gaussian(4, 8, 1);
        var h = new float[64];
        for (int j = 0; j < 8; j++) h[j * 8 + j] = 1;
        Assert.Contains("multiple of 3", Assert.Throws<ArgumentException>(() => WandaPruner.Prune(w, 4, 8, h, SparsityPattern.NOfM(1, 3), "l")).Message);
        Assert.Throws<ArgumentException>(() => WandaPruner.Prune(w, 4, 8, new float[63], SparsityPattern.Unstructured(0.5), "l"));
        h[3 * 8 + 3] = float.NaN;
        var e = Assert.Throws<ArgumentException>(() => WandaPruner.Prune(w, 4, 8, h, SparsityPattern.Unstructured(0.5), "layer.7"));
        Assert.Contains("layer.7", e.Message);
        Assert.Contains("hessian[3, 3]", e.Message);
        h[3 * 8 + 3] = 1;
        w[5] = float.PositiveInfinity;
        Assert.Contains("weight[0, 5]", Assert.Throws<ArgumentException>(() => WandaPruner.Prune(w, 4, 8, h, SparsityPattern.Unstructured(0.5), "l")).Message);
    }
}
