using LlmPress.Sparsity;

namespace LlmPress.Tests.Sparsity;

public class MagnitudePrunerTests
{
    private static float[] RandomWeights(int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, rows * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    [Theory]
    [InlineData(16, 64, 0.5)]
    [InlineData(7, 13, 0.3)]
    [InlineData(64, 172, 0.9)]
    [InlineData(5, 5, 0.0)]
    public void Unstructured_ZerosExactlyTheSmallestMagnitudes(int rows, int cols, double sparsity)
    {
        var w = RandomWeights(rows, cols, rows + cols);
        var result = MagnitudePruner.Prune(w, rows, cols, SparsityPattern.Unstructured(sparsity));
        long expected = (long)Math.Round(sparsity * rows * cols, MidpointRounding.ToEven);
        Assert.Equal(expected, result.PrunedCount);
        // Reference: the expected-th smallest |w| is the threshold (the values are distinct with probability 1).
        var sorted = w.Select(Math.Abs).Order().ToArray();
        for (int i = 0; i < w.Length; i++)
        {
            bool shouldPrune = expected > 0 && Math.Abs(w[i]) <= sorted[expected - 1];
            Assert.Equal(shouldPrune, result.Pruned[i]);
            Assert.Equal(shouldPrune ? 0f : w[i], result.Weight[i]);
        }
    }

    [Fact]
    public void TwoOfFour_KeepsTheTwoLargestOfEachGroup()
    {
        const int rows = 9, cols = 24;
        var w = RandomWeights(rows, cols, 3);
        var result = MagnitudePruner.Prune(w, rows, cols, SparsityPattern.NOfM(2, 4));
        Assert.Equal(rows * cols / 2, result.PrunedCount);
        for (int g = 0; g < w.Length; g += 4)
        {
            var order = Enumerable.Range(g, 4).OrderBy(i => Math.Abs(w[i])).ToArray();
            Assert.True(result.Pruned[order[0]] && result.Pruned[order[1]]);
            Assert.False(result.Pruned[order[2]] || result.Pruned[order[3]]);
            Assert.Equal(w[order[3]], result.Weight[order[3]]);
        }
    }

    [Fact]
    public void BadInputNamesTheProblem()
    {
        var w = RandomWeights(4, 6, 1);
        Assert.Contains("multiple of 4", Assert.Throws<ArgumentException>(() => MagnitudePruner.Prune(w, 4, 6, SparsityPattern.NOfM(2, 4), "l")).Message);
        w[7] = float.NaN;
        Assert.Contains("weight[1, 1]", Assert.Throws<ArgumentException>(() => MagnitudePruner.Prune(w, 4, 6, SparsityPattern.Unstructured(0.5), "l")).Message);
        Assert.Throws<ArgumentException>(() => MagnitudePruner.Prune(new float[5], 2, 3, SparsityPattern.Unstructured(0.5)));
    }
}
