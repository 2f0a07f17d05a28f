namespace LlmPress.Numerics;

/// <summary>Process-wide cap on the threads kernels use (the CLI's --threads sets it).</summary>
public static class Parallelism
{
    private static int s_maxThreads = Environment.ProcessorCount;

    /// <summary>Most threads a kernel may use; defaults to the processor count. Results never depend on it.</summary>
    public static int MaxThreads
    {
        get => s_maxThreads;
        set => s_maxThreads = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "Need at least one thread.");
    }

    public static ParallelOptions Options => new() { MaxDegreeOfParallelism = s_maxThreads };
}
