using System.Buffers;
using System.Numerics.Tensors;
using LlmPress.Numerics;

namespace LlmPress.Models;

/// <summary>
/// Scaled dot-product attention with a causal mask and grouped-query heads, tiled flash-attention style: a work item
/// is one KV head and a block of queries, with the query heads sharing that KV head stacked into one matrix
/// Q [group · rows, headDim] (so each K/V tile is packed once for the whole group). Keys are visited in tiles:
/// S = Q·K_tileᵀ/√d, an online (running max, running sum) softmax per row, O = O·exp(m_old − m_new) + P·V_tile,
/// and O/Σ at the end. Tiles entirely above the causal diagonal are never computed; only the tile holding the
/// diagonal (and, with a sliding window, the first one) is masked. Work items are independent, each runs its tiles in
/// one fixed order and owns its output columns, so the result does not depend on the thread count.
/// </summary>
public static class CausalAttention
{
    /// <summary>Stacked query rows (group · queries) per work item: enough M for GEMM efficiency, small enough that a
    /// score tile [rows, KeyTile + queries] stays in L2 (384 × 383 floats = 575 KiB of the 1 MiB L2).</summary>
    private const int StackedRows = 384;

    /// <summary>Keys per unmasked tile (the masked diagonal tile is this plus the query block, at most).</summary>
    private const int KeyTile = 256;

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
        float scale = 1f / MathF.Sqrt(headDim);
        int window = slidingWindow ?? int.MaxValue;

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

        var job = new TiledJob
        {
            Queries = queries, Keys = keys, Values = values, Output = output,
            TokenCount = tokenCount, StartPosition = startPosition, HeadDim = headDim, GroupSize = groupSize,
            QueryStride = queryStride, KvStride = kvStride, KvHeads = kvHeadCount, Window = window, Scale = scale,
            QueryBlock = Math.Clamp(StackedRows / groupSize, 16, 256),
        };
        job.Blocks = (tokenCount + job.QueryBlock - 1) / job.QueryBlock;
        job.Items = kvHeadCount * job.Blocks;
        int threads = Math.Min(Parallelism.MaxThreads, job.Items);
        if (threads <= 1) job.Work(0);
        else Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, job.Work);
    }

    /// <summary>One Forward call's shapes and its self-scheduled work items (KV head × query block).</summary>
    private sealed class TiledJob
    {
        public ReadOnlyMemory<float> Queries, Keys, Values;
        public Memory<float> Output;
        public int TokenCount, StartPosition, HeadDim, GroupSize, QueryStride, KvStride, KvHeads, Window, QueryBlock, Blocks, Items;
        public float Scale;
        private int _next;

        // Later query blocks see more keys, so items are handed out heaviest (last block) first for balance.
        public void Work(int _)
        {
            int u;
            while ((u = Interlocked.Increment(ref _next) - 1) < Items)
                RunItem(Blocks - 1 - u / KvHeads, u % KvHeads);
        }

        private void RunItem(int block, int kvHead)
        {
            int d = HeadDim, gs = GroupSize;
            int q0 = block * QueryBlock, rows = Math.Min(QueryBlock, TokenCount - q0);
            int m = rows * gs;                   // stacked rows: i = r · gs + (head − kvHead · gs)
            int firstPos = StartPosition + q0, lastPos = firstPos + rows - 1;
            int keyStart = Window == int.MaxValue ? 0 : Math.Max(0, firstPos - Window + 1);
            int keyEnd = lastPos + 1;            // exclusive
            // Keys every row of the block sees (no masking needed): [fullLo, fullHi].
            int fullLo = Window == int.MaxValue ? 0 : lastPos - Window + 1, fullHi = firstPos;
            int groupWidth = gs * d, column = kvHead * groupWidth;

            var pool = ArrayPool<float>.Shared;
            float[] stackedQ = pool.Rent(m * d);                        // [m, d]
            float[] acc = pool.Rent(m * d);                             // [m, d] = [rows, gs · d] unnormalised output
            float[] scores = pool.Rent(m * (KeyTile + QueryBlock));     // [m, tile]
            float[] rowMax = pool.Rent(m), rowSum = pool.Rent(m);       // [m] running max and Σ exp(s − max)
            try
            {
                var queries = Queries.Span;
                for (int r = 0; r < rows; r++)
                    queries.Slice((q0 + r) * QueryStride + column, groupWidth).CopyTo(stackedQ.AsSpan(r * groupWidth, groupWidth));
                rowMax.AsSpan(0, m).Fill(float.NegativeInfinity);
                rowSum.AsSpan(0, m).Clear();
                var keys = Keys.Span[(kvHead * d)..];
                var values = Values.Span[(kvHead * d)..];

                bool first = true;
                for (int k0 = keyStart; k0 < keyEnd;)
                {
                    // Whole tiles up to the diagonal block; the rest (diagonal included) as one masked tile.
                    int k1 = k0 + KeyTile <= fullHi + 1 ? k0 + KeyTile : keyEnd;
                    int kn = k1 - k0;
                    var s = scores.AsSpan(0, m * kn);
                    Gemm.Sgemm(false, true, m, kn, d, Scale, stackedQ, d, keys[(k0 * KvStride)..], KvStride, 0f, s, kn, parallel: false);
                    bool masked = k0 < fullLo || k1 - 1 > fullHi;
                    for (int i = 0; i < m; i++)
                    {
                        int pos = firstPos + i / gs;
                        int lo = 0, hi = kn - 1; // visible within the tile
                        if (masked)
                        {
                            lo = Math.Max(k0, Window == int.MaxValue ? 0 : pos - Window + 1) - k0;
                            hi = Math.Min(k1 - 1, pos) - k0;
                        }
                        var row = s.Slice(i * kn, kn);
                        if (lo > hi)
                        {
                            row.Clear(); // nothing visible here: contributes nothing, state unchanged
                            continue;
                        }
                        row[..lo].Clear();
                        row[(hi + 1)..].Clear();
                        var visible = row[lo..(hi + 1)];
                        float oldMax = rowMax[i];
                        float newMax = Math.Max(oldMax, TensorPrimitives.Max(visible));
                        float tileSum = FastExp.ExponentiateShiftedSum(visible, newMax);
                        if (newMax > oldMax)
                        {
                            // exp(−∞) = 0 for a row's first visible tile; its accumulator row is still zero then.
                            float correction = MathF.Exp(oldMax - newMax);
                            rowSum[i] = rowSum[i] * correction + tileSum;
                            if (!first)
                            {
                                var o = acc.AsSpan(i * d, d);
                                TensorPrimitives.Multiply(o, correction, o);
                            }
                        }
                        else
                        {
                            rowSum[i] += tileSum;
                        }
                        rowMax[i] = newMax;
                    }
                    Gemm.Sgemm(false, false, m, d, kn, 1f, s, kn, values[(k0 * KvStride)..], KvStride, first ? 0f : 1f,
                        acc.AsSpan(0, m * d), d, parallel: false);
                    first = false;
                    k0 = k1;
                }

                var output = Output.Span;
                for (int r = 0; r < rows; r++)
                {
                    var outRow = output.Slice((q0 + r) * QueryStride + column, groupWidth);
                    for (int h = 0; h < gs; h++)
                        TensorPrimitives.Multiply(acc.AsSpan((r * gs + h) * d, d), 1f / rowSum[r * gs + h], outRow.Slice(h * d, d));
                }
            }
            finally
            {
                pool.Return(stackedQ);
                pool.Return(acc);
                pool.Return(scores);
                pool.Return(rowMax);
                pool.Return(rowSum);
            }
        }
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
