namespace LlmPress.Numerics.Kernels;

/// <summary>Splits a weight GEMV over blocks of output rows (multiples of 4) across threads.</summary>
internal static unsafe class WeightGemvDriver
{
    private sealed class Job
    {
        public DType Type;
        public nint W, A, C;
        public int N, K, M, Chunks;
        public bool Accumulate, Avx512;
        public readonly Action<int> Body;

        public Job() => Body = RunChunk;

        public void RunChunk(int chunk)
        {
            // Chunk boundaries are multiples of 4 rows, so a row always lands in the same 4-row block.
            int blocks = (N + 3) / 4;
            int r0 = Math.Min(N, (int)((long)blocks * chunk / Chunks) * 4);
            int r1 = Math.Min(N, (int)((long)blocks * (chunk + 1) / Chunks) * 4);
            Rows(Type, (byte*)W, K, r0, r1, (float*)A, M, (float*)C, N, Accumulate, Avx512);
        }
    }

    public static void Run(DType type, byte* w, int n, int k, float* a, int m, float* c, bool accumulate, bool parallel)
    {
        bool avx512 = KernelDispatch.Level == KernelLevel.Avx512;
        long bytes = (long)n * k * DTypeInfo.SizeOf(type);
        int threads = parallel && bytes >= 1 << 18 ? Parallelism.MaxThreads : 1;
        if (threads <= 1 || n < 8)
        {
            Rows(type, w, k, 0, n, a, m, c, n, accumulate, avx512);
            return;
        }
        var job = new Job
        {
            Type = type, W = (nint)w, A = (nint)a, C = (nint)c, N = n, K = k, M = m, Accumulate = accumulate, Avx512 = avx512,
            // Several chunks per thread so a thread slowed by other work does not hold up the rest.
            Chunks = Math.Min((n + 3) / 4, 4 * threads),
        };
        Parallel.For(0, job.Chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, job.Body);
    }

    /// <summary>c[i, j] for weight rows j in [r0, r1); r0 a multiple of 4 so each row takes the same path on any split.</summary>
    internal static void Rows(DType type, byte* w, int k, int r0, int r1, float* a, int m, float* c, int ldc, bool accumulate, bool avx512)
    {
        if (r0 >= r1) return;
        if (k == 0)
        {
            for (int i = 0; i < m; i++)
                for (int j = r0; j < r1; j++)
                    if (!accumulate) c[(nint)i * ldc + j] = 0;
            return;
        }
        if (avx512) WeightGemv.Avx512Rows(type, w, k, r0, r1, a, m, c, ldc, accumulate);
        else WeightGemv.PortableRows(type, w, k, r0, r1, a, m, c, ldc, accumulate);
    }
}
