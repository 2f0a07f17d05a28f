using System.Buffers;
using System.Numerics.Tensors;
using LlmPress.Numerics;

namespace LlmPress.Models;

/// <summary>
/// Scaled dot-product attention with a causal mask and grouped-query heads, as two GEMMs per (head, block of
/// queries): S = Q·Kᵀ/√d over the visible keys, row softmax, O = P·V. Work items are independent and each owns its
/// output columns, so the result does not depend on the thread count.
/// </summary>
public static class CausalAttention
{
    /// <summary>Queries per work item: large enough for GEMM efficiency, small enough that scores stay in L2.</summary>
    private const int QueryBlock = 256;

    /// <summary>
    /// queries: [tokenCount, headCount · headDim] at positions startPosition.. ;
    /// keys, values: [≥ startPosition + tokenCount, kvHeadCount · headDim] for positions 0.. (RoPE already applied);
    /// output: [tokenCount, headCount · headDim]. With a sliding window w, query at position p sees keys p−w+1..p.
    /// </summary>
    public static void Forward(ReadOnlyMemory<float> queries, ReadOnlyMemory<float> keys, ReadOnlyMemory<float> values,
        int tokenCount, int startPosition, int headCount, int kvHeadCount, int headDim, int? slidingWindow, Memory<float> output)
    {
        if (tokenCount == 0) return;
        int queryStride = headCount * headDim, kvStride = kvHeadCount * headDim;
        int keyCount = startPosition + tokenCount;
        if (queries.Length < tokenCount * queryStride || output.Length < tokenCount * queryStride)
            throw new ArgumentException("queries/output are shorter than tokenCount · headCount · headDim.");
        if (keys.Length < keyCount * kvStride || values.Length < keyCount * kvStride)
            throw new ArgumentException($"keys/values hold fewer than the {keyCount} positions attended to.");
        int groupSize = headCount / kvHeadCount;
        int blocks = (tokenCount + QueryBlock - 1) / QueryBlock;
        float scale = 1f / MathF.Sqrt(headDim);
        int window = slidingWindow ?? int.MaxValue;

        void Run(int item)
        {
            int head = item / blocks, block = item % blocks;
            int kvHead = head / groupSize;
            int q0 = block * QueryBlock, rows = Math.Min(QueryBlock, tokenCount - q0);
            int firstPos = startPosition + q0;
            int keyStart = window == int.MaxValue ? 0 : Math.Max(0, firstPos - window + 1);
            int keyEnd = firstPos + rows; // exclusive
            int span = keyEnd - keyStart;
            float[] scores = ArrayPool<float>.Shared.Rent(rows * span); // [rows, span]
            try
            {
                var q = queries.Span[(q0 * queryStride + head * headDim)..];
                var k = keys.Span[(keyStart * kvStride + kvHead * headDim)..];
                Gemm.Sgemm(false, true, rows, span, headDim, scale, q, queryStride, k, kvStride, 0f, scores, span, parallel: false);
                // Unnormalised softmax per row; each output row is divided by its sum after P·V (rows × headDim
                // multiplies instead of rows × span).
                Span<float> inverseSums = stackalloc float[QueryBlock];
                for (int r = 0; r < rows; r++)
                {
                    int pos = firstPos + r;
                    int lo = Math.Max(keyStart, pos - window + 1) - keyStart, hi = pos - keyStart; // visible: [lo, hi]
                    var row = scores.AsSpan(r * span, span);
                    row[..lo].Clear();
                    row[(hi + 1)..].Clear();
                    inverseSums[r] = 1f / ExponentiateShifted(row[lo..(hi + 1)]);
                }
                var v = values.Span[(keyStart * kvStride + kvHead * headDim)..];
                var o = output.Span[(q0 * queryStride + head * headDim)..];
                Gemm.Sgemm(false, false, rows, headDim, span, 1f, scores, span, v, kvStride, 0f, o, queryStride, parallel: false);
                for (int r = 0; r < rows; r++)
                {
                    var outRow = o.Slice(r * queryStride, headDim);
                    TensorPrimitives.Multiply(outRow, inverseSums[r], outRow);
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(scores);
            }
        }

        // Decode and short prompts: a GEMM call's packing costs more than the products themselves.
        if (tokenCount < DirectMaxQueries)
        {
            void RunHead(int head) => DirectHead(queries.Span, keys.Span, values.Span, tokenCount, startPosition, head, head / groupSize,
                headCount, kvHeadCount, headDim, window, scale, output.Span);
            // Below ~32K multiply-adds per head a thread hand-off costs more than it saves.
            if (Parallelism.MaxThreads == 1 || (long)keyCount * headDim * tokenCount < 32_768)
                for (int h = 0; h < headCount; h++) RunHead(h);
            else
                Parallel.For(0, headCount, Parallelism.Options, RunHead);
            return;
        }

        int items = headCount * blocks;
        if (items == 1 || Parallelism.MaxThreads == 1)
            for (int i = 0; i < items; i++) Run(i);
        else
            Parallel.For(0, items, Parallelism.Options, Run);
    }

    /// <summary>Query counts below this use dot products per key instead of two GEMMs per block.</summary>
    private const int DirectMaxQueries = 4;

    /// <summary>One head for a few queries: scores by dot products, then output = Σ p_j · v_j.</summary>
    private static void DirectHead(ReadOnlySpan<float> queries, ReadOnlySpan<float> keys, ReadOnlySpan<float> values,
        int tokenCount, int startPosition, int head, int kvHead, int headCount, int kvHeadCount, int headDim, int window,
        float scale, Span<float> output)
    {
        int queryStride = headCount * headDim, kvStride = kvHeadCount * headDim;
        int keyCount = startPosition + tokenCount;
        float[] scores = ArrayPool<float>.Shared.Rent(keyCount);
        try
        {
            for (int t = 0; t < tokenCount; t++)
            {
                int pos = startPosition + t;
                int lo = window == int.MaxValue ? 0 : Math.Max(0, pos - window + 1);
                var q = queries.Slice(t * queryStride + head * headDim, headDim);
                var row = scores.AsSpan(lo, pos + 1 - lo);
                for (int j = lo; j <= pos; j++)
                    row[j - lo] = scale * TensorPrimitives.Dot(q, keys.Slice(j * kvStride + kvHead * headDim, headDim));
                SoftmaxInPlace(row);
                var o = output.Slice(t * queryStride + head * headDim, headDim);
                o.Clear();
                for (int j = lo; j <= pos; j++)
                    TensorPrimitives.MultiplyAdd(values.Slice(j * kvStride + kvHead * headDim, headDim), row[j - lo], o, o);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scores);
        }
    }

    /// <summary>Numerically stable softmax: exp(x − max) / Σ.</summary>
    internal static void SoftmaxInPlace(Span<float> x)
    {
        float sum = ExponentiateShifted(x);
        TensorPrimitives.Multiply(x, 1f / sum, x);
    }

    /// <summary>x ← exp(x − max x); returns Σ x (the softmax denominator).</summary>
    private static float ExponentiateShifted(Span<float> x)
    {
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, x);
        TensorPrimitives.Exp(x, x);
        return TensorPrimitives.Sum(x);
    }
}
