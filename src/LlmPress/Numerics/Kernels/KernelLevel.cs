using System.Runtime.Intrinsics.X86;

namespace LlmPress.Numerics.Kernels;

/// <summary>Instruction-set tiers the kernels are written for, lowest first.</summary>
internal enum KernelLevel
{
    Scalar = 0,
    Avx2 = 1,
    Avx512 = 2,
}

/// <summary>
/// Picks the kernel tier. <see cref="Override"/> lets tests run the AVX2 and scalar paths on an AVX-512 machine;
/// a tier above what the CPU supports is clamped to <see cref="Best"/>. The override is per thread: each kernel
/// call reads the level once, on the calling thread, and hands the choice to its worker threads, so tests running
/// in parallel can each force their own tier.
/// </summary>
internal static class KernelDispatch
{
    /// <summary>Best tier this CPU supports.</summary>
    public static readonly KernelLevel Best =
        Avx512F.IsSupported && Avx512F.VL.IsSupported ? KernelLevel.Avx512
        : Avx2.IsSupported && Fma.IsSupported ? KernelLevel.Avx2
        : KernelLevel.Scalar;

    [ThreadStatic] private static KernelLevel? t_override;

    /// <summary>Forces a lower tier for calls made from this thread (null restores <see cref="Best"/>). For tests and benchmarks.</summary>
    public static KernelLevel? Override
    {
        get => t_override;
        set => t_override = value;
    }

    /// <summary>The tier kernels use now.</summary>
    public static KernelLevel Level
    {
        get
        {
            var o = t_override;
            return o is { } level && level < Best ? level : Best;
        }
    }
}
