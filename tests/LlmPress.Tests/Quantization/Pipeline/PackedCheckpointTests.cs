using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Tests.Quantization.Pipeline;

/// <summary>Quantized checkpoints whose layers run straight from their codes (packed kernels) instead of FP32 copies.</summary>
public class PackedCheckpointTests
{
    public static TheoryData<string> Formats => new() { "int4-asym-g32", "int8-sym-g128", "mxfp4", "nvfp4", "nvfp4-rot32", "int3-asym-g32" };

    [Theory]
    [MemberData(nameof(Formats))]
    public void LoadedLayersRunFromTheCodesAndMatchTheDequantizedModel(string formatName)
    {
        var format = QuantFormat.Parse(formatName);
        using var dir = new TempDirectory();
        string output = Path.Combine(dir.Path, "q");
        PipelineTestData.Quantize(new QuantizeOptions { Method = QuantMethod.Rtn, Format = format }, output);

        using var packed = LlamaModel.Load(output);
        using var reference = LlamaModel.Load(output);
        bool kernels = format.Kind != QuantKind.Int || format.Bits is 4 or 8;
        long fp32Bytes = 0, heldBytes = 0;
        foreach (var p in packed.Layers.SelectMany(l => l.Linears))
        {
            Assert.Equal(kernels, p.Quantized is not null);
            fp32Bytes += 4L * p.OutFeatures * p.InFeatures;
            heldBytes += p.WeightBytes;
        }
        // The reference runs the same weights as plain FP32 in the original basis (no packed kernel, no rotation).
        PipelineTestData.UseDequantizedWeights(reference);
        // Codes plus FP32 scales (and zero points): at most 3 bits per weight above the code width (NVFP4's 16-column
        // groups cost 2; padding to a rotation block adds up to 1/8).
        double heldBits = 32.0 * heldBytes / fp32Bytes;
        if (kernels) Assert.True(heldBits <= format.Bits + 3, $"packed layers hold {heldBits:0.00} bits/weight");

        int[] tokens = PipelineTestData.EvalTokens[..200];
        var a = packed.Forward(tokens);
        var b = reference.Forward(tokens);
        float max = b.Max(MathF.Abs);
        // Same weights, different summation orders (packed GEMV/decoded-tile GEMM and the Hadamard rotation vs FP32
        // GEMM) through 5 layers: agreement to ~1e-5 of the largest logit; 1e-3 leaves room for the rotation's rounding.
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-3f * max, $"logit {i}: {a[i]} vs {b[i]}");

        // Decode through the KV cache (the GEMV path, m = 1) agrees with the prefill (the tile path, m = 200): with exact
        // FP32 activations to the same 1e-3; with int8 decode activations (the default where the CPU has AVX-512 BW)
        // each activation also moves by up to half its 32-column block's scale (≤ 0.4% of the block's max|x|), which
        // through 5 layers and the LM head measured ≤ 7.7e-3 of the largest logit here: 2e-2 bounds it with margin.
        foreach (var (int8, tolerance) in new[] { (false, 1e-3f), (true, 2e-2f) })
        {
            var saved = DecodeActivations.Override;
            DecodeActivations.Override = int8;
            try
            {
                var cache = new KvCache(packed.Config, 16);
                var scratch = new ForwardScratch(packed.Config);
                scratch.EnsureCapacity(16);
                var logits = new float[packed.Config.VocabSize];
                for (int t = 0; t < 16; t++)
                {
                    var h = packed.ForwardHidden(tokens.AsSpan(t, 1), scratch, cache);
                    packed.ComputeLogits(h, 1, logits);
                }
                float worst = 0;
                for (int v = 0; v < logits.Length; v++) worst = Math.Max(worst, Math.Abs(logits[v] - b[15 * logits.Length + v]) / max);
                Assert.True(worst <= tolerance, $"int8 {int8}: decode logits differ from the prefill's by {worst:E2} of the largest");
            }
            finally
            {
                DecodeActivations.Override = saved;
            }
        }
    }
}
