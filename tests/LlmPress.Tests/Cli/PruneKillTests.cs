namespace LlmPress.Tests.Cli;

/// <summary>
/// `llmpress prune` in a child process, SIGKILLed once its journal shows a finished layer, resumed and stopped with
/// Ctrl+C, then resumed to the end: the output equals an uninterrupted run's to the byte. Magnitude pruning with
/// calibration text carries the calibration state across the kills (the next layer's inputs in the journal; the
/// reported output errors depend on them).
/// </summary>
public class PruneKillTests
{
    private static string Model => SharedData.Require("models", "stories260K");
    private static string Text => SharedData.Require("data", "tinystories", "tinystories-10k.txt");

    // 32 × 256 tokens, as the quantize kill test: each layer's calibration passes take long enough for the kill to land.
    private static string[] Args(string output) =>
        ["prune", Model, "-o", output, "--method", "magnitude", "--pattern", "2:4", "--calib", Text, "--calib-samples", "32", "--calib-seq-len", "256"];

    [Fact]
    public void KilledThenInterruptedThenResumedGivesTheUninterruptedBytes()
    {
        using var dir = new TempDirectory();
        string reference = dir.File("reference"), output = dir.File("out");
        var run = CliRunner.Run(Args(reference));
        Assert.True(run.ExitCode == 0, run.Err);

        int first = QuantizeKillTests.StopAfter(Args(output), output, layers: 1, interrupt: false);
        int second = QuantizeKillTests.StopAfter([.. Args(output), "--resume"], output, layers: Math.Min(first + 1, 4), interrupt: true);
        Assert.True(second >= first, $"the resumed run lost layers: {first} then {second}");
        Assert.True(first < 5 || second < 5, "neither kill landed before the end of the run");

        var (code, _, err) = CliRunner.Run([.. Args(output), "--resume"]);
        Assert.True(code == 0, err);
        foreach (var file in new[] { "model.safetensors", "config.json" })
            Assert.True(File.ReadAllBytes(Path.Combine(reference, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(output, file))), $"{file} differs");
        using var a = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(reference, "report.json")));
        using var b = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "report.json")));
        var la = a.RootElement.GetProperty("layers").EnumerateArray().ToArray();
        var lb = b.RootElement.GetProperty("layers").EnumerateArray().ToArray();
        Assert.Equal(la.Length, lb.Length);
        for (int i = 0; i < la.Length; i++)
            foreach (var key in new[] { "name", "relative_output_error", "relative_weight_error", "pruned_weights", "bytes_after" })
                Assert.Equal(la[i].GetProperty(key).GetRawText(), lb[i].GetProperty(key).GetRawText());
        Assert.False(LlmPress.Quantization.Pipeline.QuantizationJournal.Exists(output));
    }
}
