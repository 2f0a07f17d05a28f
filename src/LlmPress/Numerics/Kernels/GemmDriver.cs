using System.Runtime.CompilerServices;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// Goto/BLIS-style blocked GEMM: c[m, n] = alpha · A(m, k) · B(k, n) + beta · c.
/// Loops: jc over NC-column panels → pc over KC-deep slices (pack the B panel once, shared by all threads) →
/// units of (MC-row block of A, run of NR-slivers of the panel) in parallel → jr over slivers → ir over MR-row slivers.
/// Each element's K sum is owned by one thread and runs in the same order (pc slices in order, p in order within
/// a slice) whatever the thread count, so results are bit-identical for any <see cref="Parallelism.MaxThreads"/>.
/// Edge tiles are computed into a full-size temporary and copied, so there is no masked tail code.
/// </summary>
internal static unsafe class GemmDriver
{
    // Blocking, measured on the 2-core Zen 4 (single thread, CPU-time best of 6–12 runs, 2048³, load from other
    // builds ±5 GFLOP/s): 6×64 tile with KC 512 / MC 96–288 → 100–103; KC 256 → 97; KC 128 → 68–87. A 14×32 tile
    // (28 accumulators, B sliver L1-resident; 103–109 from L1 like 6×64) reached only 94–98 in the full GEMM and was
    // dropped. Internal and mutable only so the bench project's tuner can sweep them.

    /// <summary>Depth of a packed slice: C is loaded and stored once per KC FMAs per element (0.2% at 512).</summary>
    internal static int KC = 512;
    /// <summary>Rows of A packed per block ([MC, KC] = 288 KiB, L2-resident; L2 is 1 MiB per core).</summary>
    internal static int MC = 144;
    /// <summary>Columns of the shared B panel ([KC, NC] = 4 MiB, L3-resident). 4096³ on 2 threads: NC 1024–4096 all
    /// gave 191–198 GFLOP/s (~100 per CPU-second), so the smaller L3 footprint wins ties.</summary>
    internal static int NC = 2048;

    private struct Plan
    {
        public int M, N, K;
        public float Alpha, Beta;
        public MatrixSource A, B;
        public float* C;
        public nint Ldc;
        public int Mr, Nr, Mc;
        public delegate*<nint, float*, float*, float*, nint, float, float, void> Kernel;
        // Current step
        public int Jc, Nc, Pc, Kc;
        public float StepBeta;
        public float* PackedB;
        public int Slivers, ChunksPerBlock, Units;
        public bool LowerOnly, Avx512Pack;
        /// <summary>One row block only: each unit packs its own (disjoint) B slivers, saving a fork/join per step.</summary>
        public bool PackBInUnit;
    }

    private sealed class ParallelStep
    {
        public Plan Plan;
        public readonly Action<int> Worker;
        public readonly Action<int> PackChunk;
        public int PackChunks;
        private int _nextUnit;

        public ParallelStep()
        {
            Worker = _ => Work();
            PackChunk = t => GemmDriver.PackBChunk(ref Plan, t, PackChunks);
        }

        public void Reset() => _nextUnit = 0;

        // Self-scheduling, one unit at a time in index order: Parallel.For's own range partitioning handed out runs of
        // several units, which left one thread alone with the heavy end of a SYRK triangle (2 threads were only 1.47×
        // busy on cols = 4096).
        private void Work()
        {
            int u;
            while ((u = Interlocked.Increment(ref _nextUnit) - 1) < Plan.Units) RunUnit(ref Plan, u);
        }
    }

    /// <summary>Runs the product; the caller has validated shapes. c: [m, ldc].</summary>
    /// <param name="lowerOnly">Only tiles touching the lower triangle (row ≥ column) are computed; tiles straddling
    /// the diagonal also write some upper elements, which the caller must treat as garbage (SYRK mirrors them).</param>
    public static void Run(int m, int n, int k, float alpha, in MatrixSource a, in MatrixSource b, float beta,
        float* c, nint ldc, bool parallel, bool lowerOnly = false)
    {
        if (m == 0 || n == 0) return;
        if (k == 0 || alpha == 0)
        {
            ScaleC(m, n, beta, c, ldc);
            return;
        }

        var level = KernelDispatch.Level;
        var plan = new Plan
        {
            M = m, N = n, K = k, Alpha = alpha, Beta = beta, A = a, B = b, C = c, Ldc = ldc,
            LowerOnly = lowerOnly, Avx512Pack = level == KernelLevel.Avx512,
        };
        switch (level)
        {
            case KernelLevel.Avx512:
                plan.Mr = MicroKernels.Mr512; plan.Nr = MicroKernels.Nr512; plan.Kernel = &MicroKernels.Avx512Kernel6x64;
                break;
            case KernelLevel.Avx2:
                plan.Mr = MicroKernels.Mr256; plan.Nr = MicroKernels.Nr256; plan.Kernel = &MicroKernels.Avx2Kernel6x16;
                break;
            default:
                plan.Mr = MicroKernels.MrScalar; plan.Nr = MicroKernels.NrScalar; plan.Kernel = &MicroKernels.ScalarKernel6x16;
                break;
        }

        // Threads only pay off with enough work per step (~ a few hundred microseconds).
        long work = (long)m * n * k;
        int threads = parallel && work >= 1L << 21 ? Math.Max(1, Parallelism.MaxThreads) : 1;
        ParallelStep? step = threads > 1 ? new ParallelStep() : null;
        var options = threads > 1 ? new ParallelOptions { MaxDegreeOfParallelism = threads } : null;
        // Measured and rejected: shrinking the row block for small m to get ≥ 8 units per thread (each unit then
        // re-packs its A block; m = 128, n = 576, 2 threads fell from 155 to 83 GFLOP/s).
        int mc = MC;
        plan.Mc = mc;
        int mBlocks = (m + mc - 1) / mc;
        // K is cut into equal slices of at most 1.25·KC (depends on k only, so results stay thread-count independent):
        // k = 576 is one slice instead of 512 + 64, which cost an extra read/write pass over c (LM head: c is 400 MB).
        int slices = (k + KC + KC / 4 - 1) / (KC + KC / 4);
        int kcBlock = (k + slices - 1) / slices;

        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc);
            for (int pc = 0; pc < k; pc += kcBlock)
            {
                int kc = Math.Min(kcBlock, k - pc);
                plan.Jc = jc; plan.Nc = nc; plan.Pc = pc; plan.Kc = kc;
                plan.StepBeta = pc == 0 ? beta : 1f;
                plan.Slivers = (nc + plan.Nr - 1) / plan.Nr;
                plan.PackedB = ScratchBuffer.Get(ScratchBuffer.PackedB, (long)plan.Slivers * plan.Nr * kc);
                // Enough units for dynamic balance (≥ 4 per thread) without re-packing A for tiny slivers runs.
                plan.ChunksPerBlock = threads > 1 ? Math.Clamp((4 * threads + mBlocks - 1) / mBlocks, 1, plan.Slivers) : 1;
                plan.Units = mBlocks * plan.ChunksPerBlock;

                if (step is null)
                {
                    PackBChunk(ref plan, 0, 1);
                    for (int u = 0; u < plan.Units; u++) RunUnit(ref plan, u);
                }
                else
                {
                    plan.PackBInUnit = mBlocks == 1;
                    step.Plan = plan;
                    step.PackChunks = Math.Min(threads, plan.Slivers);
                    if (!plan.PackBInUnit)
                    {
                        if (step.PackChunks > 1 && (long)nc * kc >= 1 << 16)
                            Parallel.For(0, step.PackChunks, options!, step.PackChunk);
                        else
                            PackBChunk(ref step.Plan, 0, 1);
                    }
                    step.Reset();
                    Parallel.For(0, Math.Min(threads, plan.Units), options!, step.Worker);
                }
            }
        }
    }

    private static void PackBChunk(ref Plan plan, int chunk, int chunks)
    {
        int s0 = (int)((long)plan.Slivers * chunk / chunks), s1 = (int)((long)plan.Slivers * (chunk + 1) / chunks);
        if (s0 >= s1) return;
        int o0 = s0 * plan.Nr;
        int count = Math.Min(plan.Nc, s1 * plan.Nr) - o0;
        plan.B.Pack(plan.Jc + o0, count, plan.Pc, plan.Kc, plan.Nr, plan.PackedB + (nint)s0 * plan.Kc * plan.Nr, plan.Avx512Pack);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunUnit(ref Plan plan, int unit)
    {
        int block = unit / plan.ChunksPerBlock, chunk = unit % plan.ChunksPerBlock;
        // Lower-triangle work grows with the row block, so hand out the heaviest (last) blocks first.
        if (plan.LowerOnly) block = (plan.M + plan.Mc - 1) / plan.Mc - 1 - block;
        int ic = block * plan.Mc, mc = Math.Min(plan.Mc, plan.M - ic);
        int s0 = (int)((long)plan.Slivers * chunk / plan.ChunksPerBlock);
        int s1 = (int)((long)plan.Slivers * (chunk + 1) / plan.ChunksPerBlock);
        int mr = plan.Mr, nr = plan.Nr, kc = plan.Kc;
        int rowSlivers = (mc + mr - 1) / mr;
        bool lowerOnly = plan.LowerOnly;
        if (lowerOnly && plan.Jc + s0 * nr > ic + mc - 1) return; // the whole unit lies above the diagonal

        if (plan.PackBInUnit) PackBChunk(ref plan, chunk, plan.ChunksPerBlock);
        float* packedA = ScratchBuffer.Get(ScratchBuffer.PackedA, (long)rowSlivers * mr * kc);
        plan.A.Pack(ic, mc, plan.Pc, kc, mr, packedA, plan.Avx512Pack);

        var kernel = plan.Kernel;
        float alpha = plan.Alpha, beta = plan.StepBeta;
        nint ldc = plan.Ldc;
        for (int s = s0; s < s1; s++)
        {
            int j = s * nr;
            int cols = Math.Min(nr, plan.Nc - j);
            float* bSliver = plan.PackedB + (nint)s * kc * nr;
            float* cCol = plan.C + plan.Jc + j;
            for (int r = 0; r < rowSlivers; r++)
            {
                int i = r * mr;
                int rows = Math.Min(mr, mc - i);
                if (lowerOnly && plan.Jc + j > ic + i + rows - 1) continue;
                float* aSliver = packedA + (nint)r * kc * mr;
                float* cTile = cCol + (nint)(ic + i) * ldc;
                if (rows == mr && cols == nr)
                    kernel(kc, aSliver, bSliver, cTile, ldc, alpha, beta);
                else
                    EdgeTile(kernel, kc, aSliver, bSliver, cTile, ldc, rows, cols, mr, nr, alpha, beta);
            }
        }
    }

    private static void EdgeTile(delegate*<nint, float*, float*, float*, nint, float, float, void> kernel, int kc,
        float* a, float* b, float* c, nint ldc, int rows, int cols, int mr, int nr, float alpha, float beta)
    {
        float* tile = ScratchBuffer.Get(ScratchBuffer.Small, mr * nr);
        if (beta != 0)
            for (int i = 0; i < rows; i++)
                new ReadOnlySpan<float>(c + i * ldc, cols).CopyTo(new Span<float>(tile + i * nr, cols));
        kernel(kc, a, b, tile, nr, alpha, beta);
        for (int i = 0; i < rows; i++)
            new ReadOnlySpan<float>(tile + i * nr, cols).CopyTo(new Span<float>(c + i * ldc, cols));
    }

    /// <summary>c = beta · c, with beta = 0 writing zeros (never reading c).</summary>
    private static void ScaleC(int m, int n, float beta, float* c, nint ldc)
    {
        if (beta == 1) return;
        for (int i = 0; i < m; i++)
        {
            var row = new Span<float>(c + i * ldc, n);
            if (beta == 0) row.Clear();
            else System.Numerics.Tensors.TensorPrimitives.Multiply(row, beta, row);
        }
    }
}
