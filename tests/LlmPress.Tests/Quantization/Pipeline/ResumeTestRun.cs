using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Tests.Quantization.Pipeline;

/// <summary>Journaled stories260K runs that can be stopped after a given layer, and the comparison of two outputs.</summary>
internal static class ResumeTestRun
{
    /// <summary>
    /// Quantizes stories260K into <paramref name="output"/> with a journal (fresh, or opened when <paramref name="resume"/>),
    /// cancelling once <paramref name="stopAfter"/> layers are done (the run then throws OperationCanceledException).
    /// </summary>
    public static QuantizationReport Run(string output, QuantizeOptions options, CalibrationData? calibration, bool resume = false,
        int? stopAfter = null, long? maxMemory = null, Action<int>? layerDone = null)
    {
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        var fingerprint = RunFingerprint.Create(model, options, calibration);
        var journal = resume ? QuantizationJournal.Open(output, fingerprint) : QuantizationJournal.Create(output, fingerprint);
        using var stop = new CancellationTokenSource();
        var settings = new QuantizationRunSettings { Journal = journal, CancellationToken = stop.Token, MaxMemoryBytes = maxMemory };
        var result = QuantizationPipeline.Run(model, options, calibration, done =>
        {
            layerDone?.Invoke(done);
            if (done == stopAfter) stop.Cancel();
        }, settings);
        return QuantizedCheckpointWriter.Write(PipelineTestData.ModelDirectory, model.Store!, result, options, output, overwrite: true);
    }

    /// <summary>An uninterrupted run without a journal: the reference.</summary>
    public static QuantizationReport Reference(string output, QuantizeOptions options, CalibrationData? calibration)
    {
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        var result = QuantizationPipeline.Run(model, options, calibration);
        return QuantizedCheckpointWriter.Write(PipelineTestData.ModelDirectory, model.Store!, result, options, output, overwrite: false);
    }

    /// <summary>
    /// Same bytes in model.safetensors and config.json, and the same per-layer report data to the bit (every field but
    /// the wall time, which no two runs share).
    /// </summary>
    public static void AssertIdentical(string expectedDir, QuantizationReport expected, string actualDir, QuantizationReport actual)
    {
        foreach (var file in new[] { "model.safetensors", "config.json" })
            Assert.True(File.ReadAllBytes(Path.Combine(expectedDir, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(actualDir, file))),
                $"{file} differs");
        Assert.Equal(expected.Layers.Count, actual.Layers.Count);
        for (int i = 0; i < expected.Layers.Count; i++)
            Assert.Equal(expected.Layers[i] with { Seconds = 0 }, actual.Layers[i] with { Seconds = 0 });
        Assert.Equal(expected.TotalBytesAfter, actual.TotalBytesAfter);
        Assert.False(Directory.Exists(Path.Combine(actualDir, QuantizationJournal.DirectoryName)), "the journal is gone once the output is complete");
    }
}
