namespace LlmPress.Quantization;

/// <summary>
/// The block-diagonal rotation along the input dimension used by MR-GPTQ and HIGGS: each row is zero-padded to a
/// multiple of the block size b and every block of b columns is multiplied by the orthonormal H_b/√b
/// (W' = W·diag(H_b/√b, …)). Since the rotation is its own inverse, <see cref="RotateBack"/> is the same transform
/// followed by dropping the padding.
/// </summary>
internal static class BlockRotation
{
    public static int PaddedColumns(int cols, int blockSize) => checked((cols + blockSize - 1) / blockSize * blockSize);

    // weights: [rows, cols] -> [rows, PaddedColumns(cols, blockSize)]
    public static float[] Rotate(ReadOnlySpan<float> weights, int rows, int cols, int blockSize)
    {
        int stored = PaddedColumns(cols, blockSize);
        var result = new float[(long)rows * stored];
        for (int r = 0; r < rows; r++) weights.Slice(r * cols, cols).CopyTo(result.AsSpan(r * stored, cols));
        TransformRows(result, rows, stored, blockSize);
        return result;
    }

    // stored: [rows, storedCols] -> destination: [rows, cols] (the first cols columns of each rotated-back row)
    public static void RotateBack(float[] stored, int rows, int storedCols, int blockSize, int cols, Span<float> destination)
    {
        TransformRows(stored, rows, storedCols, blockSize);
        for (int r = 0; r < rows; r++) stored.AsSpan(r * storedCols, cols).CopyTo(destination.Slice(r * cols, cols));
    }

    // Each row independently (parallel over rows; results do not depend on the thread count).
    private static void TransformRows(float[] matrix, int rows, int cols, int blockSize)
    {
        Parallel.For(0, rows, Numerics.Parallelism.Options, r =>
        {
            var row = matrix.AsSpan(r * cols, cols);
            for (int c = 0; c < cols; c += blockSize) ReferenceHadamard.TransformNormalized(row.Slice(c, blockSize));
        });
    }
}
