namespace LlmPress.Numerics;

/// <summary>Scalar definition of <see cref="SymmetricRankUpdate"/>, accumulated in double.</summary>
public static class SymmetricRankUpdateReference
{
    /// <summary>h[cols, cols] += alpha · xᵀx (x: [rows, cols]); reads h's lower triangle, writes both.</summary>
    public static void Accumulate(ReadOnlySpan<float> x, int rows, int cols, float alpha, Span<float> h)
    {
        for (int i = 0; i < cols; i++)
        for (int j = 0; j <= i; j++)
        {
            double sum = 0;
            for (int r = 0; r < rows; r++) sum += (double)x[r * cols + i] * x[r * cols + j];
            float value = (float)(alpha * sum) + h[i * cols + j];
            h[i * cols + j] = value;
            h[j * cols + i] = value;
        }
    }
}
