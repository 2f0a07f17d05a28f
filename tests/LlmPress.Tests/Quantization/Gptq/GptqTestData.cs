using LlmPress.Numerics;
using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization.Gptq;

internal static class GptqTestData
{
    /// <summary>
    /// Calibration-like inputs X [tokens, cols]: a rank-<paramref name="rank"/> signal Z·A plus independent noise, so
    /// columns are strongly correlated (as LLM activations are); column c is scaled by exp(spread·N(0, 1)) to make
    /// diag(H) uneven.
    /// </summary>
    public static float[] CorrelatedInputs(int tokens, int cols, int seed, int rank = 8, double noise = 0.3, double spread = 0)
    {
        var rng = new Random(seed);
        var a = new double[rank * cols];
        for (int i = 0; i < a.Length; i++) a[i] = rng.NextGaussian();
        var scale = new double[cols];
        for (int c = 0; c < cols; c++) scale[c] = Math.Exp(spread * rng.NextGaussian());
        var x = new float[tokens * cols];
        var z = new double[rank];
        for (int t = 0; t < tokens; t++)
        {
            for (int k = 0; k < rank; k++) z[k] = rng.NextGaussian();
            for (int c = 0; c < cols; c++)
            {
                double v = noise * rng.NextGaussian();
                for (int k = 0; k < rank; k++) v += z[k] * a[k * cols + c];
                x[t * cols + c] = (float)(v * scale[c]);
            }
        }
        return x;
    }

    public static float[] Hessian(float[] x, int tokens, int cols)
    {
        var acc = new HessianAccumulator(cols);
        acc.Add(x, tokens);
        return acc.GetHessian();
    }

    /// <summary>A random layer with a correlated-input Hessian.</summary>
    public static (float[] Weight, float[] Hessian) Layer(int rows, int cols, int seed, int tokens = 256, double spread = 0)
    {
        var w = QuantTestData.Gaussian(rows, cols, seed, sigma: 0.05f);
        var x = CorrelatedInputs(tokens, cols, seed + 1000, spread: spread);
        return (w, Hessian(x, tokens, cols));
    }
}
