using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace LlmPress.Models;

/// <summary>RMSNorm as in LlamaRMSNorm: y = x / sqrt(mean(x²) + ε) · w, computed in FP32 per token.</summary>
public sealed class RmsNorm(float[] weight, double eps)
{
    /// <summary>[hidden].</summary>
    public float[] Weight { get; } = weight;
    public double Eps { get; } = eps;

    /// <summary>x: [tokenCount, hidden] → y: [tokenCount, hidden] (y may alias x). Tokens are split over threads
    /// for prefill-sized inputs (each token is normalised whole by one thread, so the result is the same).</summary>
    public unsafe void Forward(ReadOnlySpan<float> x, int tokenCount, Span<float> y)
    {
        int d = Weight.Length;
        if (tokenCount < 256)
        {
            ForwardRows(x, y, 0, tokenCount);
            return;
        }
        if (x.Length < tokenCount * d || y.Length < tokenCount * d) throw new ArgumentException("x or y is shorter than [tokenCount, hidden].");
        fixed (float* px = x, py = y)
        {
            nint ax = (nint)px, ay = (nint)py;
            RowParallel.For(tokenCount, (first, count) => ForwardRows(
                new ReadOnlySpan<float>((float*)ax + (nint)first * d, count * d),
                new Span<float>((float*)ay + (nint)first * d, count * d), 0, count));
        }
    }

    // Fully optimized at once: every decode step calls it twice per layer (Tier0 code ran the first tokens slower).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ForwardRows(ReadOnlySpan<float> x, Span<float> y, int first, int count)
    {
        int d = Weight.Length;
        for (int t = first; t < first + count; t++)
        {
            var xr = x.Slice(t * d, d);
            var yr = y.Slice(t * d, d);
            float meanSquare = TensorPrimitives.SumOfSquares(xr) / d;
            float scale = (float)(1.0 / Math.Sqrt(meanSquare + Eps));
            TensorPrimitives.Multiply(xr, scale, yr);
            TensorPrimitives.Multiply(yr, Weight, yr);
        }
    }
}
