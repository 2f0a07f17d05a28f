using LlmPress.Numerics;

namespace LlmPress.Tests.Numerics;

public class SpinForkJoinTests
{
    /// <summary>Counts how often each chunk ran; optionally starts a nested fork-join from inside a chunk.</summary>
    private sealed class CountingJob(int chunks, bool nested = false, int throwAt = -1) : IChunkJob
    {
        public readonly int[] Runs = new int[chunks];
        public CountingJob? Inner;

        public void RunChunk(int chunk)
        {
            if (chunk == throwAt) throw new InvalidOperationException($"chunk {chunk}");
            Interlocked.Increment(ref Runs[chunk]);
            if (nested && chunk == 0)
            {
                Inner = new CountingJob(5);
                SpinForkJoin.Run(Inner, 5, 2); // the workers are busy with this job: runs through Parallel.For
            }
        }
    }

    [Fact]
    public void EveryChunkRunsExactlyOnceOverManyBackToBackJobs()
    {
        foreach (int threads in new[] { 1, 2, 3 })
            for (int round = 0; round < 2000; round++)
            {
                int chunks = 1 + round % 9;
                var job = new CountingJob(chunks);
                SpinForkJoin.Run(job, chunks, threads);
                Assert.All(job.Runs, n => Assert.Equal(1, n));
            }
    }

    [Fact]
    public void AJobStartedFromInsideAChunkStillRunsEveryChunk()
    {
        var job = new CountingJob(8, nested: true);
        SpinForkJoin.Run(job, 8, 2);
        Assert.All(job.Runs, n => Assert.Equal(1, n));
        Assert.All(job.Inner!.Runs, n => Assert.Equal(1, n));
    }

    [Fact]
    public void ConcurrentCallersEachGetEveryChunkRun()
    {
        var failures = 0;
        Parallel.For(0, 4, _ =>
        {
            for (int round = 0; round < 300; round++)
            {
                var job = new CountingJob(7);
                SpinForkJoin.Run(job, 7, 2);
                foreach (int n in job.Runs)
                    if (n != 1) Interlocked.Increment(ref failures);
            }
        });
        Assert.Equal(0, failures);
    }

    [Fact]
    public void AChunkExceptionReachesTheCallerAndTheNextJobRuns()
    {
        for (int at = 0; at < 8; at++)
        {
            var failing = new CountingJob(8, throwAt: at);
            Assert.ThrowsAny<Exception>(() => SpinForkJoin.Run(failing, 8, 2));
            var next = new CountingJob(8);
            SpinForkJoin.Run(next, 8, 2);
            Assert.All(next.Runs, n => Assert.Equal(1, n));
        }
    }
}
