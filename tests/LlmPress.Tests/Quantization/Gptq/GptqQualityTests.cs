using LlmPress.Quantization;
using GptqSolver = LlmPress.Quantization.Gptq;

namespace LlmPress.Tests.Quantization.Gptq;

/// <summary>GPTQ must beat round-to-nearest on the layer output, for every format, on correlated inputs.</summary>
public class GptqQualityTests
{
    private const int Rows = 48, Cols = 128, Tokens = 512;

    private static readonly Lazy<(float[] W, float[] H)> s_layer = new(() => GptqTestData.Layer(Rows, Cols, seed: 21, tokens: Tokens));

    public static TheoryData<string> Formats => new()
    {
        "int4-asym-perchannel", "int4-sym-perchannel", "int4-asym-g32", "int4-sym-g32",
        "int3-asym-perchannel", "int3-sym-perchannel", "int3-asym-g32", "int3-sym-g32",
        "int2-asym-perchannel", "int2-sym-perchannel", "int2-asym-g32", "int2-sym-g32",
        "mxfp4", "nvfp4", "mxfp4-rot32", "nvfp4-rot16",
        "higgs-p1-n16-rot256", "higgs-p1-n4-rot256", "higgs-p2-n256-rot256", "higgs-p2-n16-rot256",
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public void GptqBeatsRoundToNearestOnTheOutput(string name)
    {
        var format = QuantFormat.Parse(name);
        var (w, h) = s_layer.Value;
        var rtn = format.Quantize(w, Rows, Cols).Dequantize();
        var gptq = GptqSolver.Quantize(w, Rows, Cols, h, format);
        double rtnError = LayerError.RelativeOutputError(w, rtn, Rows, Cols, h);
        double gptqError = LayerError.RelativeOutputError(w, gptq.Dequantized, Rows, Cols, h);
        // Rank-8 signal + noise: GPTQ has plenty of correlated columns to push the error into, so it should win clearly.
        Assert.True(gptqError < 0.8 * rtnError, $"{name}: GPTQ {gptqError:G4} vs RTN {rtnError:G4}");
        Assert.Empty(gptq.Warnings);
        // What was packed is what was reported.
        QuantTestData.AssertBitIdentical(gptq.Packed.Dequantize(), gptq.Dequantized, name);
    }

    [Theory]
    [InlineData("int4-asym-perchannel")]
    [InlineData("int3-sym-g32")]
    [InlineData("int2-asym-g32")]
    [InlineData("nvfp4")]
    [InlineData("higgs-p2-n64-rot256")]
    public void ActOrderHelpsOrIsNeutralWhenTheDiagonalIsUneven(string name)
    {
        var format = QuantFormat.Parse(name);
        int rows = 48, cols = 128, tokens = 512;
        var (w, h) = GptqTestData.Layer(rows, cols, seed: 5, tokens: tokens, spread: 1.5); // diag(H) spans ~e^±6
        double plain = LayerError.RelativeOutputError(w, GptqSolver.Quantize(w, rows, cols, h, format).Dequantized, rows, cols, h);
        double act = LayerError.RelativeOutputError(w,
            GptqSolver.Quantize(w, rows, cols, h, format, new GptqOptions { ActOrder = true }).Dequantized, rows, cols, h);
        Assert.True(act <= 1.05 * plain, $"{name}: act-order {act:G4} vs natural order {plain:G4}");
    }
}
