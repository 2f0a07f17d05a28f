using System.Runtime.ExceptionServices;
using LlmPress.Numerics;

namespace LlmPress.Quantization;

/// <summary>
/// Runs a body over chunks of rows of a matrix held in a span, in parallel. Each row is processed by exactly one
/// call, so the results never depend on the thread count. The span is pinned for the duration and handed to the
/// workers as a pointer, since a span cannot be captured by a lambda.
/// </summary>
internal static unsafe class RowParallel
{
    public delegate void ChunkBody(ReadOnlySpan<float> matrix, int firstRow, int rowCount);

    /// <param name="matrix">The whole input, passed back to each chunk.</param>
    /// <param name="rows">Rows to split.</param>
    /// <param name="body">Called once per chunk.</param>
    /// <param name="parallel">False runs the chunks in order on this thread (the reference paths).</param>
    public static void For(ReadOnlySpan<float> matrix, int rows, ChunkBody body, bool parallel = true)
    {
        if (rows == 0) return;
        int threads = Parallelism.MaxThreads;
        if (!parallel || threads == 1 || rows == 1)
        {
            body(matrix, 0, rows);
            return;
        }
        int chunks = Math.Min(rows, threads * 4);
        fixed (float* p = matrix)
        {
            nint address = (nint)p;
            int length = matrix.Length;
            try
            {
                Parallel.For(0, chunks, Parallelism.Options, chunk =>
                {
                    int first = (int)((long)rows * chunk / chunks);
                    int end = (int)((long)rows * (chunk + 1) / chunks);
                    body(new ReadOnlySpan<float>((void*)address, length), first, end - first);
                });
            }
            catch (AggregateException e) when (e.InnerExceptions.Count > 0)
            {
                // Callers see the same exception as from the sequential path (e.g. the first chunk's ArgumentException).
                ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
            }
        }
    }
}
