using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Tests.Numerics;

namespace LlmPress.Tests.Models;

[Collection(GlobalSettingsCollection.Name)] // sets Parallelism.MaxThreads
public class SharedInputProjectionTests
{
    private static WeightView RandomWeight(Random random, int rows, int cols, DType type)
    {
        var w = new float[rows * cols];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(random.NextDouble() * 2 - 1);
        if (type == DType.F32) return WeightView.FromFloats(w, rows, cols);
        var bytes = new byte[w.Length * 2];
        for (int i = 0; i < w.Length; i++) BitConverter.TryWriteBytes(bytes.AsSpan(2 * i), FloatConversion.SingleToBFloat16(w[i]));
        return new WeightView(DType.BF16, rows, cols, bytes);
    }

    private static float[] Bias(Random random, int n)
    {
        var b = new float[n];
        for (int i = 0; i < b.Length; i++) b[i] = (float)random.NextDouble();
        return b;
    }

    /// <summary>The q/k/v-like layer sets the test runs: (name, layers).</summary>
    public static TheoryData<string> Sets => new() { "int4", "fp4+int8", "int8", "bf16", "f32+bf16", "mixed", "rotated-int4", "rotated-bf16" };

    private static LinearLayer[] Build(string set, int inFeatures)
    {
        var random = new Random(set.GetHashCode(StringComparison.Ordinal) & 0xFFFF);
        // Over 64 KiB of weights in every set, so the shared pass splits rows over threads; a one-row tail in the last two.
        int[] rows = [300, 97, 97];
        LinearLayer Packed(int j, int bits, int group, bool fp4, int cols, int? block = null) =>
            LinearLayer.FromQuantized($"m{j}", inFeatures, QuantizedMatrixTests.Random(rows[j], cols, bits, group, zeros: !fp4, fp4, seed: j + 7 * bits),
                block, j == 1 ? Bias(random, rows[j]) : null);
        LinearLayer Float(int j, DType type) => new($"m{j}", RandomWeight(random, rows[j], inFeatures, type), j == 2 ? Bias(random, rows[j]) : null);
        return set switch
        {
            "int4" => [Packed(0, 4, 32, false, inFeatures), Packed(1, 4, 32, false, inFeatures), Packed(2, 4, 32, false, inFeatures)],
            "fp4+int8" => [Packed(0, 4, 16, true, inFeatures), Packed(1, 8, 16, false, inFeatures), Packed(2, 4, 32, true, inFeatures)],
            // INT8 the int16-activation kernel takes at decode: groups of 128, of 64 and one per row.
            "int8" => [Packed(0, 8, 128, false, inFeatures), Packed(1, 8, 64, false, inFeatures), Packed(2, 8, inFeatures, false, inFeatures)],
            "bf16" => [Float(0, DType.BF16), Float(1, DType.BF16), Float(2, DType.BF16)],
            "f32+bf16" => [Float(0, DType.F32), Float(1, DType.BF16)],
            "mixed" => [Packed(0, 4, 32, false, inFeatures), Float(1, DType.BF16), Float(2, DType.BF16)], // falls back: separate layers
            "rotated-int4" => [Packed(0, 4, 32, false, 320, 64), Packed(1, 4, 32, false, 320, 64), Packed(2, 4, 32, false, 320, 64)],
            "rotated-bf16" =>
            [
                LinearLayer.Rotated("m0", inFeatures, RandomWeight(random, rows[0], 320, DType.BF16), 64),
                LinearLayer.Rotated("m1", inFeatures, RandomWeight(random, rows[1], 320, DType.BF16), 64, Bias(random, rows[1])),
            ],
            _ => throw new ArgumentException(set),
        };
    }

    [Theory]
    [MemberData(nameof(Sets))]
    public void SharedPassEqualsEachLayersOwnForwardBitForBit(string set)
    {
        const int inFeatures = 260; // eight 32-column chunks and a 4-column tail (rotated sets: padded to 320)
        var layers = Build(set, inFeatures);
        foreach (var level in NumericsTestUtil.Levels())
            using (NumericsTestUtil.Force(level))
                foreach (int threads in new[] { 1, 2, 3 })
                    using (NumericsTestUtil.Threads(threads))
                        foreach (int tokens in new[] { 1, 2, 7, 32, 40 }) // 40: past the GEMV limits, so each layer runs alone
                        {
                            var random = new Random(tokens);
                            var x = new float[tokens * inFeatures];
                            for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 2 - 1);
                            var shared = new float[layers.Length][];
                            for (int j = 0; j < layers.Length; j++) shared[j] = new float[tokens * layers[j].OutFeatures];
                            SharedInputProjection.Forward(layers, x, tokens, shared);
                            for (int j = 0; j < layers.Length; j++)
                            {
                                var alone = new float[tokens * layers[j].OutFeatures];
                                layers[j].Forward(x, tokens, alone);
                                Assert.True(alone.AsSpan().SequenceEqual(shared[j]), $"{set}, {level}, {threads} threads, {tokens} tokens, member {j}");
                            }
                        }
    }

    [Fact]
    public void ReplacingAMembersWeightIsSeenOnTheNextCall()
    {
        var layers = Build("int4", 260);
        var x = new float[260];
        for (int i = 0; i < x.Length; i++) x[i] = MathF.Cos(i);
        var before = new float[layers[1].OutFeatures];
        var outputs = new[] { new float[layers[0].OutFeatures], new float[layers[1].OutFeatures], new float[layers[2].OutFeatures] };
        SharedInputProjection.Forward(layers, x, 1, outputs);
        outputs[1].CopyTo(before, 0);

        // Compression replaces the middle member with a float weight: the set no longer shares a kernel, and the
        // result follows the new weight.
        var replacement = RandomWeight(new Random(5), layers[1].OutFeatures, 260, DType.BF16);
        layers[1].Weight = replacement;
        SharedInputProjection.Forward(layers, x, 1, outputs);
        var expected = new float[layers[1].OutFeatures];
        Gemm.MultiplyByWeight(x, 1, replacement, expected);
        for (int i = 0; i < expected.Length; i++) expected[i] += layers[1].Bias![i];
        Assert.Equal(expected, outputs[1]);
        Assert.NotEqual(before, outputs[1]);
    }

    [Fact]
    public void DecodeBytesCountEveryWeightTheHeadAndTheCache()
    {
        var config = RandomModel.SmolLM2Shape with { LayerCount = 2, VocabSize = 300 };
        var model = RandomModel.Create(config, DType.BF16);
        long weights = 0;
        foreach (var layer in model.Layers)
            foreach (var linear in layer.Linears) weights += (long)linear.OutFeatures * linear.InFeatures * 2;
        long head = 300L * 576 * 2;
        // 32-token prompt, 64 steps: timed steps attend over 34 … 96 positions, 65 on average; K and V, FP32, 2 layers.
        long cache = 2L * 2 * 65 * config.KvDim * 4;
        Assert.Equal(weights + head + cache, LlmPress.Evaluation.SpeedBenchmark.DecodeBytesPerToken(model, 32, 64));
    }
}
