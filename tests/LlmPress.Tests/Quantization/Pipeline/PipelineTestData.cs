using LlmPress.Calibration;
using LlmPress.Evaluation;
using LlmPress.Models;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Quantization.Pipeline;

/// <summary>stories260K, TinyStories calibration (16 × 128, seed 0) and perplexity windows shared by the pipeline tests.</summary>
internal static class PipelineTestData
{
    public const int EvalWindow = 256;
    public const int EvalWindows = 16;

    public static string ModelDirectory => SharedData.Require("models", "stories260K");
    public static string TextFile => SharedData.Require("data", "tinystories", "tinystories-10k.txt");

    private static readonly Lazy<(CalibrationData Calibration, int[] EvalTokens)> s_data = new(() =>
    {
        var tokenizer = Tokenizer.Load(Path.Combine(ModelDirectory, "tokenizer.json"));
        string text = File.ReadAllText(TextFile);
        int[] tokens = [1, .. tokenizer.Encode(text)];
        // Calibrate on the first half, evaluate on the last windows of the second half.
        int half = tokens.Length / 2;
        var calibration = CalibrationData.FromTokens(tokens.AsSpan(0, half), 16, 128, seed: 0, source: "tinystories-10k.txt");
        int[] eval = tokens[^(EvalWindow * EvalWindows)..];
        return (calibration, eval);
    });

    public static CalibrationData Calibration => s_data.Value.Calibration;
    public static int[] EvalTokens => s_data.Value.EvalTokens;

    public static QuantizeOptions Options(QuantMethod method, int bits) =>
        new() { Method = method, Format = QuantFormat.Int(bits, 32, symmetric: false) };

    /// <summary>Quantizes stories260K into <paramref name="output"/> and returns the written report.</summary>
    public static QuantizationReport Quantize(QuantizeOptions options, string output, bool overwrite = false)
    {
        using var model = LlamaModel.Load(ModelDirectory);
        var result = QuantizationPipeline.Run(model, options, Calibration);
        return QuantizedCheckpointWriter.Write(ModelDirectory, model.Store!, result, options, output, overwrite);
    }

    public static double Perplexity(string directory)
    {
        using var model = LlamaModel.Load(directory);
        return PerplexityEvaluator.Evaluate(model, EvalTokens, EvalWindow, EvalWindows).Perplexity;
    }

    /// <summary>
    /// Replaces every quantized linear of a loaded LlmPress checkpoint by its dequantized weight in the original basis
    /// as plain FP32 (no packed kernel, no online rotation): the reference exporters' outputs are compared with.
    /// </summary>
    public static void UseDequantizedWeights(LlamaModel model)
    {
        if (model.Directory is not { } dir || QuantizedCheckpoint.TryLoad(dir) is not { } checkpoint) return;
        foreach (var linear in model.Layers.SelectMany(l => l.Linears))
            if (checkpoint.IsQuantized(linear.Name))
                linear.Weight = LlmPress.Numerics.WeightView.FromFloats(
                    checkpoint.ReadPacked(model.Store!, linear.Name, linear.OutFeatures, linear.InFeatures).Dequantize(), linear.OutFeatures, linear.InFeatures);
    }
}
