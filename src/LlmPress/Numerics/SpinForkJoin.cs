using System.Runtime.Intrinsics.X86;

namespace LlmPress.Numerics;

/// <summary>One parallel loop body: runs chunk <c>chunk</c> of a job (chunks are independent).</summary>
internal interface IChunkJob
{
    void RunChunk(int chunk);
}

/// <summary>
/// A fork-join for the many short parallel loops of a decode step (a few GEMVs of 10–100 µs per layer): dedicated
/// worker threads wait for work by spinning for a while before they block, so a hand-off costs well under a
/// microsecond when loops follow each other closely, instead of the thread pool's several microseconds. Chunks are
/// claimed from a shared counter by the caller and the workers alike; which thread runs a chunk never changes its
/// result. One job at a time: a caller that finds the workers busy (another thread's job, or a nested call) runs
/// through <see cref="Parallel.For(int, int, ParallelOptions, Action{int})"/> instead.
/// </summary>
internal static class SpinForkJoin
{
    /// <summary>How long an idle worker spins before blocking: longer than the gaps between a decode step's loops
    /// (norms, attention), short enough that a paused generation gives the core back almost at once.</summary>
    private const long SpinMicroseconds = 200;

    private static readonly Lock s_startLock = new();
    private static Worker[] s_workers = [];
    private static int s_busy;        // 1 while a job is running
    private static IChunkJob? s_job;  // the running job and its chunk count: written before any ticket is offered
    private static int s_chunks;
    private static int s_next;        // next chunk to claim
    private static long s_generation; // jobs started so far
    private static Exception? s_error; // the first exception a worker's chunk threw in the running job

    /// <summary>
    /// A worker thread and its ticket: 0 idle, g &gt; 0 offered job g, −g running job g. The caller offers, the worker
    /// enters by swapping g for −g and sets 0 when done; at the end the caller takes back a ticket not yet entered, so
    /// a late worker never touches a finished job, and waits only for workers that did enter.
    /// </summary>
    private sealed class Worker
    {
        public long Ticket;
        public int Sleeping;
        public readonly SemaphoreSlim Wake = new(0);

        public Worker(int index)
        {
            var thread = new Thread(Loop) { IsBackground = true, Name = $"LlmPress fork-join {index}" };
            thread.Start();
        }

        private void Loop()
        {
            long spinTicks = SpinMicroseconds * System.Diagnostics.Stopwatch.Frequency / 1_000_000;
            long idleSince = System.Diagnostics.Stopwatch.GetTimestamp();
            while (true)
            {
                long ticket = Volatile.Read(ref Ticket);
                if (ticket > 0)
                {
                    if (Interlocked.CompareExchange(ref Ticket, -ticket, ticket) == ticket)
                    {
                        try
                        {
                            Help();
                        }
                        catch (Exception e)
                        {
                            s_error ??= e; // rethrown by the caller
                        }
                        Volatile.Write(ref Ticket, 0);
                    }
                    idleSince = System.Diagnostics.Stopwatch.GetTimestamp();
                    continue;
                }
                if (System.Diagnostics.Stopwatch.GetTimestamp() - idleSince < spinTicks)
                {
                    if (X86Base.IsSupported) X86Base.Pause();
                    else Thread.SpinWait(1);
                    continue;
                }
                // Block: announce it first, then look once more (the caller offers, then looks at Sleeping; the full
                // fences on both sides mean at least one of them sees the other).
                Interlocked.Exchange(ref Sleeping, 1);
                if (Volatile.Read(ref Ticket) <= 0) Wake.Wait();
                Interlocked.Exchange(ref Sleeping, 0);
                idleSince = System.Diagnostics.Stopwatch.GetTimestamp();
            }
        }
    }

    /// <summary>Runs job.RunChunk(0 … chunks − 1) on up to <paramref name="threads"/> threads (the caller included); returns when all are done.</summary>
    public static void Run(IChunkJob job, int chunks, int threads)
    {
        threads = Math.Min(threads, chunks);
        if (threads <= 1)
        {
            for (int c = 0; c < chunks; c++) job.RunChunk(c);
            return;
        }
        if (Interlocked.CompareExchange(ref s_busy, 1, 0) != 0)
        {
            Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, job.RunChunk);
            return;
        }
        try
        {
            var workers = EnsureWorkers(threads - 1);
            s_job = job;
            s_chunks = chunks;
            s_next = 0;
            long g = ++s_generation;
            for (int i = 0; i < threads - 1; i++)
            {
                Interlocked.Exchange(ref workers[i].Ticket, g);
                if (Volatile.Read(ref workers[i].Sleeping) != 0) workers[i].Wake.Release();
            }
            try
            {
                Help();
            }
            finally
            {
                // Every chunk is claimed (or the caller failed): take back tickets not entered and wait for workers
                // still running a chunk, so none is left touching this job.
                for (int i = 0; i < threads - 1; i++)
                {
                    if (Interlocked.CompareExchange(ref workers[i].Ticket, 0, g) == g) continue;
                    var spinner = new SpinWait();
                    while (Volatile.Read(ref workers[i].Ticket) != 0) spinner.SpinOnce(sleep1Threshold: -1);
                }
            }
            if (s_error is { } error)
            {
                s_error = null;
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
            }
        }
        finally
        {
            s_job = null;
            Volatile.Write(ref s_busy, 0);
        }
    }

    /// <summary>Claims and runs chunks of the current job until none is left.</summary>
    private static void Help()
    {
        var job = s_job!;
        int chunks = s_chunks, c;
        while ((c = Interlocked.Increment(ref s_next) - 1) < chunks) job.RunChunk(c);
    }

    private static Worker[] EnsureWorkers(int count)
    {
        var workers = Volatile.Read(ref s_workers);
        if (workers.Length >= count) return workers;
        lock (s_startLock)
        {
            if (s_workers.Length < count)
            {
                var grown = new Worker[count];
                Array.Copy(s_workers, grown, s_workers.Length);
                for (int i = s_workers.Length; i < count; i++) grown[i] = new Worker(i);
                Volatile.Write(ref s_workers, grown);
            }
            return s_workers;
        }
    }
}
