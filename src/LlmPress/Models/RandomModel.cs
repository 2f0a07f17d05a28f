using System.Runtime.InteropServices;
using LlmPress.Numerics;

namespace LlmPress.Models;

/// <summary>
/// In-memory models with random weights (normal, σ = 0.02 as in HF initialisation; norms = 1) in a chosen
/// dtype, for benchmarks and tests that need a realistic shape without a checkpoint.
/// </summary>
public static class RandomModel
{
    /// <summary>The SmolLM2-135M architecture (576 hidden, 30 layers, 9/3 heads, 49152 vocab, tied).</summary>
    public static ModelConfig SmolLM2Shape { get; } = new()
    {
        ModelType = "llama",
        HiddenSize = 576,
        IntermediateSize = 1536,
        LayerCount = 30,
        HeadCount = 9,
        KvHeadCount = 3,
        HeadDim = 64,
        VocabSize = 49152,
        MaxPositions = 8192,
        RmsNormEps = 1e-5,
        RopeTheta = 100000,
        TieWordEmbeddings = true,
        BosTokenId = 1,
        EosTokenIds = [2],
        TorchDtype = "bfloat16",
    };

    public static LlamaModel Create(ModelConfig config, DType dtype = DType.BF16, int seed = 1)
    {
        var rng = new Random(seed);
        var c = config;
        int d = c.HiddenSize;
        var rope = new RotaryEmbedding(c.HeadDim, c.RopeTheta, c.RopeScaling);
        WeightView Matrix(int rows, int cols) => RandomMatrix(rng, rows, cols, dtype);
        LinearLayer Linear(string name, int rows, int cols, bool bias) =>
            new(name, Matrix(rows, cols), bias ? RandomVector(rng, rows) : null);
        RmsNorm Norm() => new(Enumerable.Repeat(1f, d).ToArray(), c.RmsNormEps);

        var embedding = Matrix(c.VocabSize, d);
        var layers = new DecoderLayer[c.LayerCount];
        for (int l = 0; l < c.LayerCount; l++)
            layers[l] = DecoderLayer.Create(l, c, rope, Norm(), Norm(), Linear);
        var head = c.TieWordEmbeddings ? new LinearLayer("lm_head", embedding) : new LinearLayer("lm_head", Matrix(c.VocabSize, d));
        return new LlamaModel(c, embedding, layers, Norm(), head);
    }

    private static float[] RandomVector(Random rng, int n)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = 0.02f * (float)rng.NextGaussian();
        return v;
    }

    private static WeightView RandomMatrix(Random rng, int rows, int cols, DType dtype)
    {
        int count = rows * cols;
        switch (dtype)
        {
            case DType.F32:
                return WeightView.FromFloats(RandomVector(rng, count), rows, cols);
            case DType.BF16:
            {
                var bits = new ushort[count];
                for (int i = 0; i < count; i++) bits[i] = FloatConversion.SingleToBFloat16(0.02f * (float)rng.NextGaussian());
                return new WeightView(dtype, rows, cols, MemoryMarshal.AsBytes(bits.AsSpan()).ToArray());
            }
            case DType.F16:
            {
                var halves = new Half[count];
                for (int i = 0; i < count; i++) halves[i] = (Half)(0.02f * (float)rng.NextGaussian());
                return new WeightView(dtype, rows, cols, MemoryMarshal.AsBytes(halves.AsSpan()).ToArray());
            }
            default:
                throw new ArgumentException($"Random weights can be F32, F16 or BF16, not {dtype}.", nameof(dtype));
        }
    }
}
