using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;

namespace LlmPress.Tests.Numerics;

/// <summary>The non-parallel collection for tests that change process-wide settings (Parallelism.MaxThreads).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalSettingsCollection
{
    public const string Name = "Numerics global settings";
}

internal static class NumericsTestUtil
{
    /// <summary>Every tier this CPU can run (the per-thread override reaches the lower ones).</summary>
    public static IEnumerable<KernelLevel> Levels()
    {
        for (var level = KernelLevel.Scalar; level <= KernelDispatch.Best; level++) yield return level;
    }

    /// <summary>Forces a kernel tier on this thread until disposed.</summary>
    public static LevelScope Force(KernelLevel level) => new(level);

    public readonly struct LevelScope : IDisposable
    {
        private readonly KernelLevel? _saved;

        public LevelScope(KernelLevel level)
        {
            _saved = KernelDispatch.Override;
            KernelDispatch.Override = level;
        }

        public void Dispose() => KernelDispatch.Override = _saved;
    }

    /// <summary>Sets Parallelism.MaxThreads until disposed (only inside the non-parallel collection).</summary>
    public static ThreadsScope Threads(int threads) => new(threads);

    public readonly struct ThreadsScope : IDisposable
    {
        private readonly int _saved;

        public ThreadsScope(int threads)
        {
            _saved = Parallelism.MaxThreads;
            Parallelism.MaxThreads = threads;
        }

        public void Dispose() => Parallelism.MaxThreads = _saved;
    }

    public static float[] Random(Random rng, long count, float scale = 1f)
    {
        var x = new float[count];
        for (long i = 0; i < count; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return x;
    }

    public static float[] Abs(float[] x)
    {
        var y = new float[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = Math.Abs(x[i]);
        return y;
    }

    /// <summary>
    /// Checks |actual − expected| ≤ bound·tol + tiny elementwise, where bound[i] is the magnitude that rounding
    /// errors scale with (e.g. (|a|·|b|)ᵢⱼ). Reports the first failing index with its values.
    /// </summary>
    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, ReadOnlySpan<float> bound, double tol, string context)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs((double)actual[i] - expected[i]);
            double allowed = bound[i] * tol + 1e-30;
            if (!(err <= allowed))
                Assert.Fail($"{context}: element {i}: expected {expected[i]:R}, got {actual[i]:R}, |err| {err:E3} > allowed {allowed:E3}");
        }
    }

    /// <summary>FP32 machine epsilon (2⁻²³).</summary>
    public const double Eps = 1.1920928955078125e-7;

    public static byte[] ToBytes(float[] values, DType type)
    {
        int size = DTypeInfo.SizeOf(type);
        var bytes = new byte[values.Length * size];
        for (int i = 0; i < values.Length; i++)
        {
            switch (type)
            {
                case DType.F32: BitConverter.TryWriteBytes(bytes.AsSpan(i * 4), values[i]); break;
                case DType.F16: BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), (Half)values[i]); break;
                case DType.BF16: BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), FloatConversion.SingleToBFloat16(values[i])); break;
                default: throw new ArgumentException(type.ToString());
            }
        }
        return bytes;
    }
}
