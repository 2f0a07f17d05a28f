using System.Numerics.Tensors;

namespace LlmPress.Models;

/// <summary>RMSNorm as in LlamaRMSNorm: y = x / sqrt(mean(x²) + ε) · w, computed in FP32 per token.</summary>
public sealed class RmsNorm(float[] weight, double eps)
{
    /// <summary>[hidden].</summary>
    public float[] Weight { get; } = weight;
    public double Eps { get; } = eps;

    /// <summary>x: [tokenCount, hidden] → y: [tokenCount, hidden] (y may alias x).</summary>
    public void Forward(ReadOnlySpan<float> x, int tokenCount, Span<float> y)
    {
        int d = Weight.Length;
        for (int t = 0; t < tokenCount; t++)
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
