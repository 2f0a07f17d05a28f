using System.Buffers;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// Several GEMVs that read the same activations (a decoder layer's q/k/v projections, or gate/up) run as one parallel
/// region over the concatenation of their rows: one thread hand-off instead of one per matrix, more rows to balance
/// over the threads, and (4-bit) the activations reordered once. No fused matrix is built: each work item walks the
/// members' own storage, so nothing has to be invalidated when a member's weight is replaced.
/// </summary>
/// <remarks>
/// Work items split the rows at multiples of 4 within each member, as <see cref="QuantizedGemv"/> and
/// <see cref="WeightGemvDriver"/> do, so every row goes through the same code path (4-row block or single-row tail)
/// and each output equals the member's own GEMV bit for bit, whatever the thread count.
/// </remarks>
internal static unsafe class SharedInputGemv
{
    /// <summary>Most members one call takes (q, k, v).</summary>
    public const int MaxMembers = 4;

    private struct Member
    {
        public QuantizedMatrix? Packed; // the member's packed matrix, or null for a float weight
        public WeightView Weight;       // the float weight when Packed is null
        public float[] Output;          // [m, Rows]
        public int Rows, FirstBlock;    // FirstBlock: index of the member's first 4-row block in the concatenation
        public bool Int8;               // runs the integer-dot kernel on the shared int8 activation (4-bit)
        public bool Int16;              // runs the integer-dot kernel on the shared int16 activation (8-bit)
    }

    private sealed class Job
    {
        public readonly Member[] Members = new Member[MaxMembers];
        public int Count, M, K, Blocks, Chunks;
        public nint X, Xp;
        public bool Avx512;
        public Int8Activation? Int8;   // x quantized once for the members that take int8 activations
        public Int16Activation? Int16; // and for those that take int16 activations
        public readonly ParallelOptions Options = new();
        public readonly Action<int> Body;

        public Job() => Body = RunChunk;

        private void RunChunk(int chunk)
        {
            int b0 = (int)((long)Blocks * chunk / Chunks), b1 = (int)((long)Blocks * (chunk + 1) / Chunks);
            for (int j = 0; j < Count; j++)
            {
                ref var member = ref Members[j];
                int first = member.FirstBlock, blocks = (member.Rows + 3) / 4;
                int lo = Math.Max(b0, first), hi = Math.Min(b1, first + blocks);
                if (lo < hi) Rows(ref member, (lo - first) * 4, Math.Min(member.Rows, (hi - first) * 4));
            }
        }

        public void Rows(ref Member member, int r0, int r1)
        {
            fixed (float* y = member.Output)
            {
                if (member.Packed is { } packed)
                {
                    if (member.Int8)
                    {
                        Int8DotGemv.Rows(packed, Int8!, y, r0, r1);
                        return;
                    }
                    if (member.Int16)
                    {
                        Int16DotGemv.Rows(packed, Int16!, (float*)X, y, r0, r1);
                        return;
                    }
                    QuantizedGemv.Rows(packed, (float*)X, (float*)Xp, M, y, r0, r1, Avx512);
                    return;
                }
                fixed (byte* w = member.Weight.Data.Span)
                    WeightGemvDriver.Rows(member.Weight.Type, w, K, r0, r1, (float*)X, M, y, member.Rows, accumulate: false, Avx512);
            }
        }
    }

    // One job object reused across calls (taken and put back atomically, so concurrent callers each get their own).
    private static Job? s_spare;

    /// <summary>
    /// outputs[j][m, rows_j] = x[m, k] · W_jᵀ, where W_j is packed[j] when it is not null and weights[j] otherwise
    /// (every W_j has k columns). The caller has checked that the GEMV path applies: m ≤
    /// <see cref="Gemm.QuantizedGemvMaxRows"/> for packed members, <see cref="Gemm.UseGemv"/> for float weights.
    /// <paramref name="int8Activations"/>: at m = 1 the packed members that allow it take x quantized to int8 (4-bit) or
    /// int16 (8-bit), once for all of them, as <see cref="QuantizedGemv.Run"/> does.
    /// </summary>
    public static void Run(ReadOnlySpan<float> x, int m, int k, ReadOnlySpan<QuantizedMatrix?> packed, ReadOnlySpan<WeightView> weights,
        ReadOnlySpan<float[]> outputs, bool parallel, bool int8Activations = false)
    {
        int count = outputs.Length;
        if (count > MaxMembers) throw new ArgumentException($"At most {MaxMembers} members, not {count}.", nameof(outputs));
        if (x.Length < m * k) throw new ArgumentException($"x has {x.Length} elements but [{m}, {k}] needs {m * k}.", nameof(x));
        var job = Interlocked.Exchange(ref s_spare, null) ?? new Job();
        bool avx512 = KernelDispatch.Level == KernelLevel.Avx512;
        int blocks = 0, permuted = 0;
        bool anyInt8 = false, anyInt16 = false;
        long bytes = 0;
        for (int j = 0; j < count; j++)
        {
            ref var member = ref job.Members[j];
            member.Packed = packed[j];
            member.Weight = packed[j] is null ? weights[j] : default;
            member.Output = outputs[j];
            int rows = packed[j] is { } q ? q.Rows : weights[j].Rows;
            int cols = packed[j] is { } p ? p.Cols : weights[j].Cols;
            if (cols != k) throw new ArgumentException($"Member {j} has {cols} columns, not {k}.", nameof(weights));
            if (member.Output.Length < (long)m * rows) throw new ArgumentException($"Output {j} is shorter than [{m}, {rows}].", nameof(outputs));
            member.Rows = rows;
            member.FirstBlock = blocks;
            blocks += (rows + 3) / 4;
            member.Int8 = packed[j] is { } candidate && int8Activations && m == 1 && QuantizedGemv.UsesInt8Activations(candidate);
            member.Int16 = packed[j] is { } other && int8Activations && m == 1 && QuantizedGemv.UsesInt16Activations(other);
            anyInt8 |= member.Int8;
            anyInt16 |= member.Int16;
            if (packed[j] is { } quantized)
            {
                if (!member.Int8 && !member.Int16) permuted = Math.Max(permuted, QuantizedGemv.PermutedLength(quantized.Bits, m, k, avx512));
                bytes += quantized.Codes.LongLength;
            }
            else
            {
                bytes += weights[j].Data.Length;
            }
        }
        job.Count = count;
        job.M = m;
        job.K = k;
        job.Blocks = blocks;
        job.Avx512 = avx512;
        float[]? xpArray = permuted > 0 ? ArrayPool<float>.Shared.Rent(permuted) : null;
        try
        {
            fixed (float* px = x, pxp = xpArray)
            {
                if (xpArray is not null) QuantizedGemv.PermuteActivations(px, m, k, pxp);
                job.Int8 = anyInt8 ? Int8Activation.Quantize(px, k) : null;
                job.Int16 = anyInt16 ? Int16Activation.Quantize(px, k) : null;
                job.X = (nint)px;
                job.Xp = (nint)pxp;
                // Same rule as the single GEMVs: below ~64 KiB of weights a thread hand-off costs more than it saves.
                int threads = parallel && bytes >= 1 << 16 ? Parallelism.MaxThreads : 1;
                if (threads <= 1 || blocks < 2)
                {
                    for (int j = 0; j < count; j++) job.Rows(ref job.Members[j], 0, job.Members[j].Rows);
                }
                else
                {
                    // Several chunks per thread so a thread slowed by other work does not hold up the rest.
                    job.Chunks = Math.Min(blocks, 4 * threads);
                    // The thread pool's fork-join: a spinning one (dedicated workers) hands off faster on an idle
                    // machine but lost 20–50% of decode tokens/s on this shared 2-core VM, where a spinning worker is
                    // scheduled later than one woken from a wait.
                    job.Options.MaxDegreeOfParallelism = threads;
                    Parallel.For(0, job.Chunks, job.Options, job.Body);
                }
            }
        }
        finally
        {
            if (xpArray is not null) ArrayPool<float>.Shared.Return(xpArray);
            for (int j = 0; j < count; j++) job.Members[j] = default; // drop references to the weights and outputs
            job.Int8 = null;
            job.Int16 = null;
            s_spare = job;
        }
    }
}
