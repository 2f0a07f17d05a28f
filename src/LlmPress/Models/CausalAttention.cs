using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;

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
public static unsafe class CausalAttention
{
    /// <summary>Stacked query rows (group · queries) per work item: enough M for GEMM efficiency, small enough that a
    /// score tile [rows, KeyTile + queries] stays in L2 (384 × 383 floats = 575 KiB of the 1 MiB L2).</summary>
    internal static int StackedRows = 384;

    /// <summary>Keys per unmasked tile (the masked diagonal tile is this plus the query block, at most).</summary>
    internal static int KeyTile = 256;

    /// <summary>Keys per unmasked tile on the AVX-512 transposed path: a multiple of the kernel's 6 rows.</summary>
    internal static int TransposedKeyTile = 252;

    /// <summary>
    /// queries: [tokenCount, headCount · headDim] at positions startPosition.. ;
    /// keys, values: [≥ startPosition + tokenCount, kvHeadCount · headDim] for positions 0.. (RoPE already applied);
    /// output: [tokenCount, headCount · headDim]. With a sliding window w, query at position p sees keys p−w+1..p.
    /// </summary>
    public static void Forward(ReadOnlyMemory<float> queries, ReadOnlyMemory<float> keys, ReadOnlyMemory<float> values,
        int tokenCount, int startPosition, int headCount, int kvHeadCount, int headDim, int? slidingWindow, Memory<float> output) =>
        Forward(queries, keys, values, KvLayout.Interleaved(kvHeadCount, headDim), tokenCount, startPosition, headCount, kvHeadCount,
            headDim, slidingWindow, output);

    /// <summary>
    /// queries [tokenCount, headCount · headDim] at positions startPosition.. over layer <paramref name="layer"/> of
    /// <paramref name="cache"/>, which already holds positions 0..startPosition + tokenCount. A BF16 cache is read as
    /// stored in decode (each row widened as it streams in, so a step reads half the bytes) and widened once per call
    /// for longer prompts; either way the result is bit-identical to FP32 keys and values rounded to BF16.
    /// </summary>
    public static void Forward(ReadOnlyMemory<float> queries, KvCache cache, int layer, int tokenCount, int startPosition, int headCount,
        int? slidingWindow, Memory<float> output)
    {
        ArgumentNullException.ThrowIfNull(cache);
        int kvHeadCount = cache.KvHeadCount, headDim = cache.HeadDim;
        if (cache.StorageType == DType.F32)
        {
            Forward(queries, cache.KeysMemory(layer), cache.ValuesMemory(layer), cache.Layout, tokenCount, startPosition, headCount, kvHeadCount,
                headDim, slidingWindow, output);
            return;
        }
        if (tokenCount == 0) return;
        if (startPosition + tokenCount > cache.Capacity)
            throw new ArgumentException($"Positions {startPosition}..{startPosition + tokenCount} are outside the cache's capacity {cache.Capacity}.");
        if (tokenCount < DirectMaxQueries && KernelDispatch.Level == KernelLevel.Avx512 && headDim % 16 == 0)
        {
            int queryStride = headCount * headDim;
            if (queries.Length < tokenCount * queryStride || output.Length < tokenCount * queryStride)
                throw new ArgumentException("queries/output are shorter than tokenCount · headCount · headDim.");
            fixed (ushort* keys = cache.KeyBits(layer), values = cache.ValueBits(layer))
                DecodeGroups<LoadBF16>(queries, (byte*)keys, (byte*)values, cache.Layout, tokenCount, startPosition, headCount, kvHeadCount, headDim,
                    slidingWindow ?? int.MaxValue, 1f / MathF.Sqrt(headDim), output);
            return;
        }
        var (widenedKeys, widenedValues) = cache.Widen(layer, startPosition + tokenCount);
        Forward(queries, widenedKeys, widenedValues, cache.Layout, tokenCount, startPosition, headCount, kvHeadCount, headDim, slidingWindow, output);
    }

    /// <summary>As above, with keys and values laid out as <paramref name="layout"/> says (the same for both).</summary>
    public static void Forward(ReadOnlyMemory<float> queries, ReadOnlyMemory<float> keys, ReadOnlyMemory<float> values, KvLayout layout,
        int tokenCount, int startPosition, int headCount, int kvHeadCount, int headDim, int? slidingWindow, Memory<float> output)
    {
        if (tokenCount == 0) return;
        int queryStride = headCount * headDim, kvStride = layout.RowStride;
        int keyCount = startPosition + tokenCount;
        if (queries.Length < tokenCount * queryStride || output.Length < tokenCount * queryStride)
            throw new ArgumentException("queries/output are shorter than tokenCount · headCount · headDim.");
        long needed = layout.RequiredLength(keyCount, kvHeadCount, headDim);
        if (keys.Length < needed || values.Length < needed)
            throw new ArgumentException($"keys/values hold fewer than the {keyCount} positions attended to.");
        int groupSize = headCount / kvHeadCount;
        float scale = 1f / MathF.Sqrt(headDim);
        int window = slidingWindow ?? int.MaxValue;

        // Decode and short prompts: a GEMM call's packing costs more than the products themselves.
        if (tokenCount < DirectMaxQueries && KernelDispatch.Level == KernelLevel.Avx512 && headDim % 16 == 0)
        {
            DecodeGroups(queries, keys, values, layout, tokenCount, startPosition, headCount, kvHeadCount, headDim, window, scale, output);
            return;
        }
        if (tokenCount < DirectMaxQueries)
        {
            void RunHead(int head) => DirectHead(queries.Span, keys.Span, values.Span, layout, tokenCount, startPosition, head, head / groupSize,
                headCount, headDim, window, scale, output.Span);
            // Below ~32K multiply-adds per head a thread hand-off costs more than it saves.
            if (Parallelism.MaxThreads == 1 || (long)keyCount * headDim * tokenCount < 32_768)
                for (int h = 0; h < headCount; h++) RunHead(h);
            else
                Parallel.For(0, headCount, Parallelism.Options, RunHead);
            return;
        }

        bool transposed = KernelDispatch.Level == KernelLevel.Avx512 && headDim % 64 == 0;
        var job = new TiledJob
        {
            Queries = queries, Keys = keys, Values = values, Output = output,
            TokenCount = tokenCount, StartPosition = startPosition, HeadDim = headDim, GroupSize = groupSize,
            QueryStride = queryStride, KvStride = kvStride, HeadStride = (nint)layout.HeadStride, KvHeads = kvHeadCount, Window = window, Scale = scale,
            Transposed = transposed,
            QueryBlock = transposed ? Math.Max(1, StackedRows / groupSize) : Math.Clamp(StackedRows / groupSize, 16, 256),
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
        public nint HeadStride; // floats from one KV head's rows to the next head's
        public float Scale;
        public bool Transposed;
        private int _next;

        // Later query blocks see more keys, so items are handed out heaviest (last block) first for balance.
        public void Work(int _)
        {
            int u;
            while ((u = Interlocked.Increment(ref _next) - 1) < Items)
            {
                if (Transposed) RunItemTransposed(Blocks - 1 - u / KvHeads, u % KvHeads);
                else RunItem(Blocks - 1 - u / KvHeads, u % KvHeads);
            }
        }

        /// <summary>
        /// The AVX-512 form of <see cref="RunItem"/> (headDim a multiple of 64), with no packing at all: scores are
        /// kept transposed, Sᵀ [keys, rows] = K_tile·Qᵀ, by the strided 6×64 kernel reading K rows in place against
        /// Qᵀ [headDim, rows] built once per item; the softmax then runs down the key axis with 16 query rows per
        /// vector (running max, FastExp, column sums), and O += P·V_tile reads Pᵀ and the V rows in place. On the
        /// masked tile, 6×64 score blocks wholly above the diagonal are skipped and each 6-row output sliver stops
        /// at its last visible key. Stacked rows are zero-padded to a multiple of 192 (64 for Qᵀ slivers, 6 for O's).
        /// </summary>
        private void RunItemTransposed(int block, int kvHead)
        {
            int d = HeadDim, gs = GroupSize;
            int q0 = block * QueryBlock, rows = Math.Min(QueryBlock, TokenCount - q0);
            int m = rows * gs, mp = (m + 191) / 192 * 192; // stacked rows i = r · gs + h, padded
            int firstPos = StartPosition + q0, lastPos = firstPos + rows - 1;
            int keyStart = Window == int.MaxValue ? 0 : Math.Max(0, firstPos - Window + 1);
            int keyEnd = lastPos + 1;
            int fullLo = Window == int.MaxValue ? 0 : lastPos - Window + 1, fullHi = firstPos;
            int groupWidth = gs * d, column = kvHead * groupWidth;
            int maxKeys = TransposedKeyTile + rows + 6; // a masked last tile holds < KeyTile + rows keys; + a padded sliver

            var pool = ArrayPool<float>.Shared;
            float[] qt = pool.Rent(d * mp);          // [d, mp] stacked queries, transposed, zero past m
            float[] st = pool.Rent(maxKeys * mp);    // [keys, mp] scores, then probabilities (transposed)
            float[] acc = pool.Rent(mp * d);         // [mp, d] unnormalised output
            float[] stats = pool.Rent(3 * mp);       // running max | running sum | this tile's correction, [mp] each
            float[] edge = pool.Rent(6 * d);         // [6, d] a last partial sliver of keys, zero-padded
            int[] bounds = ArrayPool<int>.Shared.Rent(2 * mp); // per row: last visible position | first visible position
            try
            {
                var queries = Queries.Span;
                Array.Clear(qt, 0, d * mp);
                for (int r = 0; r < rows; r++)
                for (int h = 0; h < gs; h++)
                {
                    var src = queries.Slice((q0 + r) * QueryStride + column + h * d, d);
                    int i = r * gs + h;
                    for (int e = 0; e < d; e++) qt[e * mp + i] = src[e];
                }
                for (int i = 0; i < mp; i++)
                {
                    int pos = i < m ? firstPos + i / gs : lastPos; // padding rows: zero queries at the last position
                    bounds[i] = pos;
                    bounds[mp + i] = Window == int.MaxValue ? int.MinValue : pos - Window + 1;
                }
                stats.AsSpan(0, mp).Fill(float.NegativeInfinity);
                stats.AsSpan(mp, mp).Clear();

                fixed (float* pq = qt, ps = st, pacc = acc, pstats = stats, pedge = edge)
                fixed (float* pk = Keys.Span, pv = Values.Span)
                fixed (int* pb = bounds)
                {
                    float* keys = pk + kvHead * HeadStride, values = pv + kvHead * HeadStride;
                    bool first = true;
                    for (int k0 = keyStart; k0 < keyEnd;)
                    {
                        int k1 = k0 + TransposedKeyTile <= fullHi + 1 ? k0 + TransposedKeyTile : keyEnd;
                        int kn = k1 - k0;
                        bool masked = k0 < fullLo || k1 - 1 > fullHi;
                        Scores(keys, k0, kn, masked, pq, ps, pedge, pb, mp);
                        Softmax(ps, k0, kn, masked, pstats, pb, mp);
                        if (!first)
                            for (int i = 0; i < mp; i++)
                            {
                                float correction = pstats[2 * mp + i];
                                if (correction != 1f)
                                {
                                    var o = new Span<float>(pacc + (nint)i * d, d);
                                    TensorPrimitives.Multiply(o, correction, o);
                                }
                            }
                        // O += P·V_tile, each 6-row sliver up to its last visible key (P is 0 beyond it).
                        for (int i0 = 0; i0 < mp; i0 += 6)
                        {
                            int kc = masked ? Math.Min(kn, pb[i0 + 5] - k0 + 1) : kn;
                            float* o = pacc + (nint)i0 * d;
                            if (kc <= 0)
                            {
                                if (first) new Span<float>(o, 6 * d).Clear();
                                continue;
                            }
                            for (int c = 0; c < d; c += 64)
                                MicroKernels.Avx512Kernel6x64Strided(kc, ps + i0, 1, mp, values + (nint)k0 * KvStride + c, KvStride,
                                    o + c, d, 1f, first ? 0f : 1f);
                        }
                        first = false;
                        k0 = k1;
                    }
                }

                var output = Output.Span;
                for (int r = 0; r < rows; r++)
                for (int h = 0; h < gs; h++)
                {
                    int i = r * gs + h;
                    TensorPrimitives.Multiply(acc.AsSpan(i * d, d), 1f / stats[mp + i], output.Slice((q0 + r) * QueryStride + column + h * d, d));
                }
            }
            finally
            {
                pool.Return(qt);
                pool.Return(st);
                pool.Return(acc);
                pool.Return(stats);
                pool.Return(edge);
                ArrayPool<int>.Shared.Return(bounds);
            }
        }

        /// <summary>sᵀ[p, i] = Scale · K[k0 + p] · Q_i for p &lt; kn (rows up to the next multiple of 6 are scratch).</summary>
        private void Scores(float* keys, int k0, int kn, bool masked, float* qt, float* st, float* edge, int* bounds, int mp)
        {
            int d = HeadDim;
            for (int r = 0; r < kn; r += 6)
            {
                int count = Math.Min(6, kn - r), kLo = k0 + r, kHi = kLo + count - 1;
                float* a = keys + (nint)kLo * KvStride;
                nint ai = KvStride;
                if (count < 6)
                {
                    new Span<float>(edge, 6 * d).Clear();
                    for (int t = 0; t < count; t++) new ReadOnlySpan<float>(a + t * ai, d).CopyTo(new Span<float>(edge + t * d, d));
                    a = edge;
                    ai = d;
                }
                for (int j = 0; j < mp; j += 64)
                {
                    // Rows are in position order, so row j + 63 sees the furthest and row j the least far back.
                    if (masked && (bounds[j + 63] < kLo || bounds[mp + j] > kHi)) continue; // all invisible: left unset
                    MicroKernels.Avx512Kernel6x64Strided(d, a, ai, 1, qt + j, mp, st + (nint)r * mp + j, mp, Scale, 0f);
                }
            }
        }

        /// <summary>
        /// Per row (16 at a time, down the key axis): invisible scores → −∞ (masked tile), new max, p = exp(s − max),
        /// running sum rescaled by the correction exp(old max − new max), which is also kept for rescaling O.
        /// </summary>
        private static void Softmax(float* st, int k0, int kn, bool masked, float* stats, int* bounds, int mp)
        {
            float* rowMax = stats, rowSum = stats + mp, correction = stats + 2 * mp;
            var negInf = Vector512.Create(float.NegativeInfinity);
            for (int c = 0; c < mp; c += 16)
            {
                var max = negInf;
                if (masked)
                {
                    var last = Vector512.Load(bounds + c);
                    var firstVisible = Vector512.Load(bounds + mp + c);
                    for (int p = 0; p < kn; p++)
                    {
                        float* sp = st + (nint)p * mp + c;
                        var key = Vector512.Create(k0 + p);
                        var visible = Vector512.LessThanOrEqual(key, last) & Vector512.GreaterThanOrEqual(key, firstVisible);
                        var s = Vector512.ConditionalSelect(visible.AsSingle(), Vector512.Load(sp), negInf);
                        s.Store(sp);
                        max = Vector512.Max(max, s);
                    }
                }
                else
                {
                    for (int p = 0; p < kn; p++) max = Vector512.Max(max, Vector512.Load(st + (nint)p * mp + c));
                }
                var oldMax = Vector512.Load(rowMax + c);
                var newMax = Vector512.Max(oldMax, max);
                // A row with nothing visible yet keeps max −∞; shifting by 0 then keeps every exp at 0 (not NaN).
                var shift = Vector512.ConditionalSelect(Vector512.Equals(newMax, negInf), Vector512<float>.Zero, newMax);
                var sum = Vector512<float>.Zero;
                for (int p = 0; p < kn; p++)
                {
                    float* sp = st + (nint)p * mp + c;
                    var e = FastExp.Exp(Vector512.Load(sp) - shift);
                    e.Store(sp);
                    sum += e;
                }
                var factor = FastExp.Exp(oldMax - shift);
                (Vector512.Load(rowSum + c) * factor + sum).Store(rowSum + c);
                newMax.Store(rowMax + c);
                factor.Store(correction + c);
            }
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
                var keys = Keys.Span[(int)(kvHead * HeadStride)..];
                var values = Values.Span[(int)(kvHead * HeadStride)..];

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

    /// <summary>
    /// Decode (a few queries), AVX-512, headDim a multiple of 16: per query token and KV head, the group of query heads
    /// sharing that KV head is done together, so each cached key and value row is read once for the group:
    /// s[h, j] = scale · q_h·k_j (<see cref="GroupScores"/>), p = exp(s − max) per head, then o_h = Σ_j p[h, j] · v_j /
    /// Σ_j p[h, j] (<see cref="GroupOutput"/>). KV heads may run on different threads; each is done in one fixed order,
    /// so the result does not depend on the thread count.
    /// </summary>
    private static void DecodeGroups(ReadOnlyMemory<float> queries, ReadOnlyMemory<float> keys, ReadOnlyMemory<float> values,
        KvLayout layout, int tokenCount, int startPosition, int headCount, int kvHeadCount, int headDim, int window, float scale,
        Memory<float> output)
    {
        using var pinnedKeys = keys.Pin();
        using var pinnedValues = values.Pin();
        DecodeGroups<LoadF32>(queries, (byte*)pinnedKeys.Pointer, (byte*)pinnedValues.Pointer, layout, tokenCount, startPosition, headCount,
            kvHeadCount, headDim, window, scale, output);
    }

    /// <summary>
    /// <see cref="DecodeGroups"/> over keys and values stored as <typeparamref name="TLoad"/>'s elements (FP32, or a
    /// BF16 KV cache widened as each row is read), pinned by the caller for the call.
    /// </summary>
    private static void DecodeGroups<TLoad>(ReadOnlyMemory<float> queries, byte* keys, byte* values,
        KvLayout layout, int tokenCount, int startPosition, int headCount, int kvHeadCount, int headDim, int window, float scale,
        Memory<float> output) where TLoad : struct, IWeightLoad
    {
        int keyCount = startPosition + tokenCount;
        nint k = (nint)keys, v = (nint)values;
        void Run(int kvHead) => DecodeGroup<TLoad>(queries.Span, (byte*)k, (byte*)v, layout, tokenCount, startPosition, headCount, kvHeadCount,
            headDim, window, scale, kvHead, output.Span);
        // KV heads are independent. In a decode step the cache comes from DRAM, and two threads overlap its latency:
        // with the cache cold, 128–256 keys at 9 heads of 64 (3 KV heads on 2 threads) took 15–25% less time split than
        // on one thread, 64 keys the same (hot, the hand-off paid only from ~1,800 keys). So: from ~64K multiply-adds.
        if (Parallelism.MaxThreads == 1 || kvHeadCount == 1 || (long)keyCount * headDim * headCount * tokenCount < 1 << 16)
            for (int g = 0; g < kvHeadCount; g++) Run(g);
        else
            Parallel.For(0, kvHeadCount, Parallelism.Options, Run);
    }

    /// <summary>The query heads of KV head <paramref name="kvHead"/> for every query token (see <see cref="DecodeGroups"/>).</summary>
    // Compiled fully optimized at once, with GroupScores, GroupOutput and ThreeHeads64: tiered, decode attention ran as
    // Tier0 code for the first ~100 tokens of a generation, 3–8× slower (0.35 → 1.5–4 ms per token over 30 layers).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DecodeGroup<TLoad>(ReadOnlySpan<float> queries, byte* pk, byte* pv, KvLayout layout,
        int tokenCount, int startPosition, int headCount, int kvHeadCount, int headDim, int window, float scale, int kvHead, Span<float> output)
        where TLoad : struct, IWeightLoad
    {
        int queryStride = headCount * headDim, kvStride = layout.RowStride, gs = headCount / kvHeadCount;
        nint head = (nint)(kvHead * layout.HeadStride);
        int keyCount = startPosition + tokenCount;
        float[] scoreBuffer = ArrayPool<float>.Shared.Rent(gs * keyCount); // [gs, visible keys]
        try
        {
            float* inverseSums = stackalloc float[gs]; // 1 / Σ_j p[h, j]
            int rowBytes = kvStride * TLoad.Size;
            fixed (float* pq = queries, po = output, ps = scoreBuffer)
            {
                for (int t = 0; t < tokenCount; t++)
                {
                    int pos = startPosition + t;
                    int lo = window == int.MaxValue ? 0 : Math.Max(0, pos - window + 1), n = pos + 1 - lo;
                    float* q = pq + (nint)t * queryStride + kvHead * gs * headDim; // [gs, headDim]
                    float* o = po + (nint)t * queryStride + kvHead * gs * headDim;
                    nint first = ((nint)lo * kvStride + head) * TLoad.Size;
                    byte* k0 = pk + first, v0 = pv + first;
                    GroupScores<TLoad>(q, k0, rowBytes, n, gs, headDim, scale, ps);
                    PrefetchRows(v0, rowBytes, Math.Min(n, CachePrefetchRows), headDim * TLoad.Size); // lands during the softmax
                    for (int h = 0; h < gs; h++)
                        inverseSums[h] = 1f / ExponentiateShifted(new Span<float>(ps + (nint)h * n, n));
                    GroupOutput<TLoad>(v0, rowBytes, n, gs, headDim, ps, inverseSums, o);
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scoreBuffer);
        }
    }

    /// <summary>
    /// Decode reads a layer's cached K and V rows once per token, from DRAM (a 30-layer cache is far larger than L3),
    /// and the key loop has too little work per row to hide the latency: each loop prefetches the row this many keys
    /// ahead (the first this many before it starts). SmolLM2-135M shape, INT4, ~64 cached keys: decode attention went
    /// from 22 to 17 µs per layer (5 µs when the cache is in L1/L2).
    /// </summary>
    private const int CachePrefetchRows = 16;

    /// <summary>Prefetches the first <paramref name="width"/> bytes of <paramref name="rows"/> rows <paramref name="stride"/> bytes apart.</summary>
    private static void PrefetchRows(byte* first, int stride, int rows, int width)
    {
        for (int j = 0; j < rows; j++)
        {
            byte* row = first + (nint)j * stride;
            for (int e = 0; e < width; e += 64) Sse.Prefetch0(row + e);
        }
    }

    /// <summary>
    /// s[h, j] = scale · q_h·k_j for j &lt; n; q: [gs, d], k rows rowBytes apart (elements of TLoad), s: [gs, n]. Sixteen keys at a time
    /// per head, for head widths that are multiples of 64: per 64-column slice, each key's 16-lane partial products,
    /// then one transposing reduction of the sixteen vectors into sixteen sums (Pair, Quad, Octet and
    /// <see cref="Reduce16Order"/>: 45 operations where sixteen horizontal sums take ~110); the slice of the head's query
    /// stays in registers and the block's key rows in L1 for the group's other heads. Other widths, and keys past the
    /// last full block, are done one key at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GroupScores<TLoad>(float* q, byte* k, int rowBytes, int n, int gs, int d, float scale, float* s)
        where TLoad : struct, IWeightLoad
    {
        int width = d * TLoad.Size;
        PrefetchRows(k, rowBytes, Math.Min(n, CachePrefetchRows), width);
        int j = 0;
        if (d % 64 == 0)
            for (; j + 16 <= n; j += 16)
            {
                byte* kb = k + (nint)j * rowBytes;
                if (j + 16 < n) PrefetchRows(kb + (nint)16 * rowBytes, rowBytes, Math.Min(16, n - j - 16), width); // the next block
                for (int h = 0; h < gs; h++)
                {
                    // The reduction is linear, so wider heads add their 64-column slices' reduced sums.
                    Vector512<float> sums = default;
                    for (int e = 0; e < d; e += 64)
                    {
                        float* qh = q + h * d + e;
                        byte* ke = kb + e * TLoad.Size;
                        Vector512<float> q0 = Vector512.Load(qh), q1 = Vector512.Load(qh + 16), q2 = Vector512.Load(qh + 32), q3 = Vector512.Load(qh + 48);
                        var x0 = Quad(Pair(Dot64<TLoad>(q0, q1, q2, q3, ke, 0, rowBytes), Dot64<TLoad>(q0, q1, q2, q3, ke, 1, rowBytes)),
                            Pair(Dot64<TLoad>(q0, q1, q2, q3, ke, 2, rowBytes), Dot64<TLoad>(q0, q1, q2, q3, ke, 3, rowBytes)));
                        var x1 = Quad(Pair(Dot64<TLoad>(q0, q1, q2, q3, ke, 4, rowBytes), Dot64<TLoad>(q0, q1, q2, q3, ke, 5, rowBytes)),
                            Pair(Dot64<TLoad>(q0, q1, q2, q3, ke, 6, rowBytes), Dot64<TLoad>(q0, q1, q2, q3, ke, 7, rowBytes)));
                        var x2 = Quad(Pair(Dot64<TLoad>(q0, q1, q2, q3, ke, 8, rowBytes), Dot64<TLoad>(q0, q1, q2, q3, ke, 9, rowBytes)),
                            Pair(Dot64<TLoad>(q0, q1, q2, q3, ke, 10, rowBytes), Dot64<TLoad>(q0, q1, q2, q3, ke, 11, rowBytes)));
                        var x3 = Quad(Pair(Dot64<TLoad>(q0, q1, q2, q3, ke, 12, rowBytes), Dot64<TLoad>(q0, q1, q2, q3, ke, 13, rowBytes)),
                            Pair(Dot64<TLoad>(q0, q1, q2, q3, ke, 14, rowBytes), Dot64<TLoad>(q0, q1, q2, q3, ke, 15, rowBytes)));
                        var part = Octet(Octet(x0, x1), Octet(x2, x3));
                        sums = e == 0 ? part : sums + part;
                    }
                    (Avx512F.PermuteVar16x32(sums, Reduce16Order) * scale).Store(s + (nint)h * n + j);
                }
            }
        for (; j < n; j++)
        {
            byte* kj = k + (nint)j * rowBytes;
            if (j + CachePrefetchRows < n) PrefetchRows(kj + (nint)CachePrefetchRows * rowBytes, rowBytes, 1, width);
            for (int h = 0; h < gs; h++)
            {
                float* qh = q + h * d;
                var a0 = Vector512.Load(qh) * TLoad.Load16(kj, 0);
                var a1 = Vector512<float>.Zero;
                int e = 16;
                for (; e + 32 <= d; e += 32)
                {
                    a1 = Avx512F.FusedMultiplyAdd(Vector512.Load(qh + e), TLoad.Load16(kj, e), a1);
                    a0 = Avx512F.FusedMultiplyAdd(Vector512.Load(qh + e + 16), TLoad.Load16(kj, e + 16), a0);
                }
                if (e < d) a1 = Avx512F.FusedMultiplyAdd(Vector512.Load(qh + e), TLoad.Load16(kj, e), a1);
                s[(nint)h * n + j] = scale * Vector512.Sum(a0 + a1);
            }
        }
    }

    /// <summary>Key <paramref name="i"/> of the block at <paramref name="k"/>: q·k's 16 lane partial sums (head width 64).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Dot64<TLoad>(Vector512<float> q0, Vector512<float> q1, Vector512<float> q2, Vector512<float> q3, byte* k, int i,
        int rowBytes) where TLoad : struct, IWeightLoad
    {
        byte* r = k + (nint)i * rowBytes;
        var a = Avx512F.FusedMultiplyAdd(q1, TLoad.Load16(r, 16), q0 * TLoad.Load16(r, 0));
        var b = Avx512F.FusedMultiplyAdd(q3, TLoad.Load16(r, 48), q2 * TLoad.Load16(r, 32));
        return a + b;
    }

    // The transposing reduction of 16 vectors a..p into one vector of their lane sums, in three steps that each halve
    // the vector count and double the number of vectors a result lane mixes: Pair interleaves two within 128-bit lanes
    // and adds (each lane now holds half a 128-bit lane of one of the two), Quad does the same with 64-bit halves (each
    // 128-bit lane: one value per input, four inputs), Octet with 128-bit lanes across the vector. The result's lanes
    // come out in a fixed shuffled order, put right by one permute (Reduce16Order, found by running the reduction).

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Pair(Vector512<float> a, Vector512<float> b) => Avx512F.UnpackLow(a, b) + Avx512F.UnpackHigh(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Quad(Vector512<float> c, Vector512<float> e) =>
        Avx512F.Shuffle(c, e, 0b01_00_01_00) + Avx512F.Shuffle(c, e, 0b11_10_11_10);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Octet(Vector512<float> x, Vector512<float> y) =>
        Avx512F.Shuffle4x128(x, y, 0b10_00_10_00) + Avx512F.Shuffle4x128(x, y, 0b11_01_11_01);

    /// <summary>Lane i of the permuted reduction is the sum of input i: found by reducing inputs whose lanes all hold their index.</summary>
    private static readonly Vector512<int> Reduce16Order = FindReduce16Order();

    private static Vector512<int> FindReduce16Order()
    {
        if (!Avx512F.IsSupported) return Vector512<int>.Indices;
        Span<Vector512<float>> v = stackalloc Vector512<float>[16];
        for (int i = 0; i < 16; i++) v[i] = Vector512.Create((float)i);
        var reduced = Octet(Octet(Quad(Pair(v[0], v[1]), Pair(v[2], v[3])), Quad(Pair(v[4], v[5]), Pair(v[6], v[7]))),
            Octet(Quad(Pair(v[8], v[9]), Pair(v[10], v[11])), Quad(Pair(v[12], v[13]), Pair(v[14], v[15]))));
        Span<int> order = stackalloc int[16];
        for (int lane = 0; lane < 16; lane++) order[(int)(reduced[lane] / 16)] = lane;
        return Vector512.Create<int>(order);
    }

    /// <summary>
    /// o_h = (Σ_j p[h, j] · v_j) · inverseSums[h] for h &lt; gs; p: [gs, n], o: [gs, d]. Accumulated up to 64 columns
    /// at a time in registers, keys in order. Full 64-column slices take up to three heads per pass over the keys
    /// (<see cref="ThreeHeads64"/>), the rest one head at a time; either way each head's sums are the same.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GroupOutput<TLoad>(byte* v, int rowBytes, int n, int gs, int d, float* p, float* inverseSums, float* o)
        where TLoad : struct, IWeightLoad
    {
        int wide = d & ~63;
        for (int e = 0; e < wide; e += 64)
            for (int h = 0; h < gs; h += 3)
                ThreeHeads64<TLoad>(v + e * TLoad.Size, rowBytes, n, p + (nint)h * n, Math.Min(3, gs - h), inverseSums + h, o + h * d + e, d,
                    prefetch: e == 0 && h == 0);
        if (wide == d) return;
        for (int h = 0; h < gs; h++)
        {
            float* ph = p + (nint)h * n;
            var inverse = Vector512.Create(inverseSums[h]);
            // The last 16, 32 or 48 columns.
            int width = d - wide;
            Vector512<float> a0 = default, a1 = default, a2 = default;
            byte* ve = v + wide * TLoad.Size;
            for (int j = 0; j < n; j++)
            {
                var pj = Vector512.Create(ph[j]);
                byte* vj = ve + (nint)j * rowBytes;
                a0 = Avx512F.FusedMultiplyAdd(pj, TLoad.Load16(vj, 0), a0);
                if (width > 16) a1 = Avx512F.FusedMultiplyAdd(pj, TLoad.Load16(vj, 16), a1);
                if (width > 32) a2 = Avx512F.FusedMultiplyAdd(pj, TLoad.Load16(vj, 32), a2);
            }
            float* oe = o + h * d + wide;
            (a0 * inverse).Store(oe);
            if (width > 16) (a1 * inverse).Store(oe + 16);
            if (width > 32) (a2 * inverse).Store(oe + 32);
        }
    }

    /// <summary>
    /// One 64-column slice of the outputs of <paramref name="heads"/> (1–3) heads whose probabilities are rows of p
    /// (n apart), o rows d apart: each value row is loaded once for all of them (12 independent accumulator chains).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ThreeHeads64<TLoad>(byte* v, int rowBytes, int n, float* p, int heads, float* inverseSums, float* o, int d, bool prefetch)
        where TLoad : struct, IWeightLoad
    {
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        float* p1 = p + (heads > 1 ? n : 0), p2 = p + (heads > 2 ? 2 * n : 0);
        for (int j = 0; j < n; j++)
        {
            byte* vj = v + (nint)j * rowBytes;
            if (prefetch && j + CachePrefetchRows < n) PrefetchRows(vj + (nint)CachePrefetchRows * rowBytes, rowBytes, 1, 64 * TLoad.Size);
            Vector512<float> v0 = TLoad.Load16(vj, 0), v1 = TLoad.Load16(vj, 16), v2 = TLoad.Load16(vj, 32), v3 = TLoad.Load16(vj, 48);
            AddScaledRow(p[j], v0, v1, v2, v3, ref a00, ref a01, ref a02, ref a03);
            if (heads > 1) AddScaledRow(p1[j], v0, v1, v2, v3, ref a10, ref a11, ref a12, ref a13);
            if (heads > 2) AddScaledRow(p2[j], v0, v1, v2, v3, ref a20, ref a21, ref a22, ref a23);
        }
        StoreScaled(a00, a01, a02, a03, inverseSums[0], o);
        if (heads > 1) StoreScaled(a10, a11, a12, a13, inverseSums[1], o + d);
        if (heads > 2) StoreScaled(a20, a21, a22, a23, inverseSums[2], o + 2 * d);
    }

    /// <summary>a0..a3 += pj · (v0..v3): one head's 64-column slice of one value row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddScaledRow(float pj, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3,
        ref Vector512<float> a0, ref Vector512<float> a1, ref Vector512<float> a2, ref Vector512<float> a3)
    {
        var b = Vector512.Create(pj);
        a0 = Avx512F.FusedMultiplyAdd(b, v0, a0);
        a1 = Avx512F.FusedMultiplyAdd(b, v1, a1);
        a2 = Avx512F.FusedMultiplyAdd(b, v2, a2);
        a3 = Avx512F.FusedMultiplyAdd(b, v3, a3);
    }

    /// <summary>o[0..64) = (a0..a3) · inverse.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreScaled(Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3, float inverse, float* o)
    {
        var scale = Vector512.Create(inverse);
        (a0 * scale).Store(o);
        (a1 * scale).Store(o + 16);
        (a2 * scale).Store(o + 32);
        (a3 * scale).Store(o + 48);
    }

    /// <summary>One head for a few queries: scores by dot products, then output = Σ p_j · v_j.</summary>
    private static void DirectHead(ReadOnlySpan<float> queries, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, KvLayout layout,
        int tokenCount, int startPosition, int head, int kvHead, int headCount, int headDim, int window,
        float scale, Span<float> output)
    {
        int queryStride = headCount * headDim, kvStride = layout.RowStride;
        int headOffset = (int)(kvHead * layout.HeadStride);
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
                    row[j - lo] = scale * TensorPrimitives.Dot(q, keys.Slice(j * kvStride + headOffset, headDim));
                SoftmaxInPlace(row);
                var o = output.Slice(t * queryStride + head * headDim, headDim);
                o.Clear();
                for (int j = lo; j <= pos; j++)
                    TensorPrimitives.MultiplyAdd(values.Slice(j * kvStride + headOffset, headDim), row[j - lo], o, o);
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

    /// <summary>
    /// x ← exp(x − max x); returns Σ x (the softmax denominator). Two passes (max, then <see cref="FastExp"/>'s fused
    /// exp and sum, ~2 ulp) where TensorPrimitives took four, with each exp through double: a third of decode attention.
    /// </summary>
    private static float ExponentiateShifted(Span<float> x) => FastExp.ExponentiateShiftedSum(x, TensorPrimitives.Max(x));
}
