using LlmPress.Models;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Tests.Quantization.Pipeline;

/// <summary>NVFP4 global scales shared by the linears engines fuse (q/k/v, gate/up).</summary>
public class FusedNvfp4ScaleTests
{
    private static Dictionary<string, float> GlobalScales(QuantizationResult result) =>
        result.Layers.ToDictionary(l => l.Name, l => l.Weight.GlobalScale);

    [Theory]
    [InlineData(QuantMethod.Rtn)]
    [InlineData(QuantMethod.Gptq)]
    public void QkvAndGateUpShareTheSmallestGlobalScaleUnlessAskedNotTo(QuantMethod method)
    {
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        var calibration = method == QuantMethod.Rtn ? null : PipelineTestData.Calibration;
        var shared = GlobalScales(QuantizationPipeline.Run(model, new QuantizeOptions { Method = method, Format = QuantFormat.Nvfp4() }, calibration));
        var own = GlobalScales(QuantizationPipeline.Run(model,
            new QuantizeOptions { Method = method, Format = QuantFormat.Nvfp4(), ShareNvfp4GlobalScale = false }, calibration));
        for (int l = 0; l < 5; l++)
        {
            foreach (var group in new[] { new[] { TensorNames.QueryProj(l), TensorNames.KeyProj(l), TensorNames.ValueProj(l) },
                                          [TensorNames.GateProj(l), TensorNames.UpProj(l)] })
            {
                float expected = group.Min(name => own[name]); // each layer's own g, the smallest wins
                Assert.All(group, name => Assert.Equal(expected, shared[name]));
            }
            Assert.Equal(own[TensorNames.OutputProj(l)], shared[TensorNames.OutputProj(l)]); // not fused: its own
            Assert.Equal(own[TensorNames.DownProj(l)], shared[TensorNames.DownProj(l)]);
        }
        Assert.Contains(own, kv => kv.Value != shared[kv.Key]); // the option changes something
    }
}
