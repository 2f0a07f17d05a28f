using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;
using LlmPress.Tests.Numerics;

namespace LlmPress.Tests.Models;

/// <summary>Which forwards of a packed layer take int8 activations: single tokens when enabled, never several.</summary>
public class DecodeActivationsTests
{
    [Fact]
    public void SingleTokenForwardsTakeInt8ActivationsOnlyWhenEnabled()
    {
        if (!Int8DotGemv.IsSupported) Assert.Skip("needs AVX-512 BW");
        var w = QuantizedMatrixTests.Random(40, 320, 4, 64, zeros: true, fp4: false, seed: 9);
        var layer = LinearLayer.FromQuantized("l", 320, w, rotationBlockSize: null);
        var x = NumericsTestUtil.Random(new Random(4), 2 * 320);
        float[] Direct(int m, bool int8)
        {
            var y = new float[m * 40];
            Gemm.MultiplyByQuantized(x.AsSpan(0, m * 320), m, w, y, int8Activations: int8);
            return y;
        }
        float[] Forward(int tokens, bool? int8)
        {
            var saved = DecodeActivations.Override;
            DecodeActivations.Override = int8;
            try
            {
                var y = new float[tokens * 40];
                layer.Forward(x, tokens, y);
                return y;
            }
            finally
            {
                DecodeActivations.Override = saved;
            }
        }
        Assert.NotEqual(Direct(1, int8: true), Direct(1, int8: false)); // the two paths differ, so the checks below mean something
        Assert.Equal(Direct(1, int8: true), Forward(1, int8: true));
        Assert.Equal(Direct(1, int8: false), Forward(1, int8: false));
        Assert.Equal(Direct(2, int8: false), Forward(2, int8: true)); // several tokens: always exact
    }
}
