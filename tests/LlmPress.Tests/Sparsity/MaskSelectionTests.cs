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

    [Theory]
    [InlineData("random", 5000)]
    [InlineData("ascending", 4099)]
    [InlineData("descending", 4099)]
    [InlineData("constant", 3000)]
    public void MarkSmallest_SelectsWhatAFullSortSelects(string shape, int length)
    {
        // The quickselect must choose exactly the first `count` of the (score, index) order, for every count, including
        // inputs that defeat naive pivots (sorted, reversed, all equal).
        var rng = new Random(length);
        var scores = Enumerable.Range(0, length).Select(i => shape switch
        {
            "random" => (float)rng.NextDouble(),
            "ascending" => i,
            "descending" => length - i,
            _ => 1f,
        }).ToArray();
        var order = Enumerable.Range(0, length).OrderBy(i => scores[i]).ThenBy(i => i).ToArray();
        var keys = new ulong[length];
        foreach (int count in new[] { 1, 33, length / 3, length / 2, length - 1 })
        {
            var pruned = new bool[length];
            MaskSelection.MarkSmallest(scores, count, pruned, keys);
            var expected = new bool[length];
            for (int k = 0; k < count; k++) expected[order[k]] = true;
            Assert.Equal(expected, pruned);
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
