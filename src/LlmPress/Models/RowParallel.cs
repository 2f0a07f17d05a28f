using LlmPress.Numerics;

namespace LlmPress.Models;

/// <summary>
/// Splits per-token (row-independent) work over threads in fixed chunks of rows, so the cheap element-wise stages
/// of a prefill (norms, RoPE, residual adds) are not left serial between parallel GEMMs. Any split gives the same
/// bits, since every row is computed whole by one thread.
/// </summary>
internal static class RowParallel
{
    /// <summary>Rows per work item: ~0.3–1 MB of activations per item, enough to amortise the hand-off.</summary>
    private const int RowsPerChunk = 128;

    /// <summary>Calls body(firstRow, rowCount) over [0, rows), in parallel when there are several chunks.</summary>
    public static void For(int rows, Action<int, int> body)
    {
        int chunks = (rows + RowsPerChunk - 1) / RowsPerChunk;
        if (chunks < 2 || Parallelism.MaxThreads == 1)
        {
            body(0, rows);
            return;
        }
        Parallel.For(0, chunks, Parallelism.Options, c =>
        {
            int start = c * RowsPerChunk;
            body(start, Math.Min(RowsPerChunk, rows - start));
        });
    }
}
