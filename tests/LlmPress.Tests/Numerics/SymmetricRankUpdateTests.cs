using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;
using static LlmPress.Tests.Numerics.NumericsTestUtil;

namespace LlmPress.Tests.Numerics;

/// <summary>SYRK vs its double reference; tolerance as in <see cref="GemmTests"/>: (rows + 2)·ε·(|α|·(|x|ᵀ|x|) + |h₀|).</summary>
public class SymmetricRankUpdateTests
{
    public static TheoryData<int, int, int> Cases()
    {
        var data = new TheoryData<int, int, int>();
        (int, int)[] shapes = [(0, 5), (5, 0), (1, 1), (7, 7), (17, 15), (63, 65), (300, 127), (65, 257), (1, 130)];
        foreach (var level in Levels())
            foreach (var (rows, cols) in shapes)
                data.Add((int)level, rows, cols);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesReferenceAndIsSymmetric(int level, int rows, int cols)
    {
        var rng = new Random(rows * 1000 + cols);
        var x = Random(rng, (long)rows * cols);
        var h0 = new float[cols * cols];
        // A symmetric prior h, so accumulation is checked too.
        for (int i = 0; i < cols; i++)
            for (int j = 0; j <= i; j++) h0[i * cols + j] = h0[j * cols + i] = (float)rng.NextDouble();
        const float alpha = 0.37f;

        var expected = (float[])h0.Clone();
        SymmetricRankUpdateReference.Accumulate(x, rows, cols, alpha, expected);
        var bound = Abs(h0);
        SymmetricRankUpdateReference.Accumulate(Abs(x), rows, cols, alpha, bound);

        var actual = (float[])h0.Clone();
        using (Force((KernelLevel)level))
            SymmetricRankUpdate.Accumulate(x, rows, cols, alpha, actual);
        AssertClose(expected, actual, bound, (rows + 2) * Eps, "syrk");
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < i; j++) Assert.Equal(actual[i * cols + j], actual[j * cols + i]);
    }

    /// <summary>The unmirrored form leaves the lower triangle bit-identical to <see cref="SymmetricRankUpdate.Accumulate"/>'s.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void AccumulateLowerMatchesAccumulateOnTheLowerTriangle(int level, int rows, int cols)
    {
        var rng = new Random(rows * 7 + cols);
        var x = Random(rng, (long)rows * cols);
        var h0 = new float[cols * cols];
        for (int i = 0; i < cols; i++)
            for (int j = 0; j <= i; j++) h0[i * cols + j] = h0[j * cols + i] = (float)rng.NextDouble();
        var full = (float[])h0.Clone();
        var lower = (float[])h0.Clone();
        using (Force((KernelLevel)level))
        {
            SymmetricRankUpdate.Accumulate(x, rows, cols, 0.37f, full);
            SymmetricRankUpdate.AccumulateLower(x, rows, cols, 0.37f, lower);
        }
        for (int i = 0; i < cols; i++)
            for (int j = 0; j <= i; j++)
                Assert.Equal(BitConverter.SingleToInt32Bits(full[i * cols + j]), BitConverter.SingleToInt32Bits(lower[i * cols + j]));
    }
}
