using LlmPress.Sparsity;

namespace LlmPress.Tests.Sparsity;

public class MaskSelectionTests
{
    [Theory]
    [InlineData(1, 0)]
    [InlineData(10, 3)]
    [InlineData(1000, 500)]
    [InlineData(1000, 1000)]
    [InlineData(257, 1)]
    public void MarkSmallest_MarksExactlyCountAndNothingLargerThanAKeptScore(int length, int count)
    {
        var rng = new Random(length * 31 + count);
        // Few distinct values, so ties are frequent.
        var scores = Enumerable.Range(0, length).Select(_ => (float)rng.Next(0, 20)).ToArray();
        var pruned = new bool[length];
        MaskSelection.MarkSmallest(scores, count, pruned);
        Assert.Equal(count, pruned.Count(p => p));
        float maxPruned = scores.Where((_, i) => pruned[i]).DefaultIfEmpty(float.NegativeInfinity).Max();
        float minKept = scores.Where((_, i) => !pruned[i]).DefaultIfEmpty(float.PositiveInfinity).Min();
        Assert.True(maxPruned <= minKept);
        // Ties go to lower indices: among equal scores at the threshold, no kept one has a lower index than a pruned one.
        if (count > 0 && count < length && maxPruned == minKept)
        {
            int lastPruned = Enumerable.Range(0, length).Last(i => pruned[i] && scores[i] == maxPruned);
            int firstKept = Enumerable.Range(0, length).First(i => !pruned[i] && scores[i] == minKept);
            Assert.True(lastPruned < firstKept);
        }
    }

    [Fact]
    public void MarkNOfM_MarksTheNSmallestOfEveryGroup()
    {
        var rng = new Random(5);
        const int n = 3, m = 8;
        var scores = Enumerable.Range(0, 40 * m).Select(_ => (float)rng.NextDouble()).ToArray();
        var pruned = new bool[scores.Length];
        MaskSelection.MarkNOfM(scores, n, m, pruned);
        for (int g = 0; g < scores.Length; g += m)
        {
            var order = Enumerable.Range(g, m).OrderBy(i => scores[i]).ToArray();
            for (int i = 0; i < m; i++) Assert.Equal(i < n, pruned[order[i]]);
        }
    }

    [Fact]
    public void NegativeOrNaNScoresThrow()
    {
        Assert.Throws<ArgumentException>(() => MaskSelection.MarkSmallest([1f, -1f], 1, new bool[2]));
        Assert.Throws<ArgumentException>(() => MaskSelection.MarkNOfM([1f, float.NaN], 1, 2, new bool[2]));
    }
}
