using System.Diagnostics;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Tests.Cli;

/// <summary>
/// The real thing: `llmpress quantize` in a child process, SIGKILLed (no cleanup of any kind runs) as soon as its
/// journal shows some finished layers, then resumed — the output must equal an uninterrupted run's to the byte.
/// </summary>
public class QuantizeKillTests
{
    private static string Model => SharedData.Require("models", "stories260K");
    private static string Text => SharedData.Require("data", "tinystories", "tinystories-10k.txt");

    // 32 × 256 tokens: each of the 5 layers takes long enough (~0.3–1 s on 2 busy cores) for the kill to land mid-run.
    private static string[] Args(string output) =>
        ["quantize", Model, "-o", output, "--method", "gptq", "--format", "int4", "--group-size", "32",
         "--calib", Text, "--calib-samples", "32", "--calib-seq-len", "256"];

    [Fact]
    public void KilledTwiceAndResumedGivesTheUninterruptedBytes()
    {
        using var dir = new TempDirectory();
        string reference = dir.File("reference"), output = dir.File("out");
        var run = CliRunner.Run(Args(reference));
        Assert.True(run.ExitCode == 0, run.Err);

        int first = KillAfter(Args(output), output, layers: 1);
        int second = KillAfter([.. Args(output), "--resume"], output, layers: Math.Min(first + 2, 4));
        Assert.True(second >= first, $"the resumed run lost layers: {first} then {second}");
        Assert.True(first < 5 || second < 5, "neither kill landed before the end of the run");

        var (code, _, err) = CliRunner.Run([.. Args(output), "--resume"]);
        Assert.True(code == 0, err);
        foreach (var file in new[] { "model.safetensors", "config.json" })
            Assert.True(File.ReadAllBytes(Path.Combine(reference, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(output, file))), $"{file} differs");
        Assert.False(QuantizationJournal.Exists(output));
    }

    // Starts the CLI, kills it (SIGKILL) once the journal manifest names `layers` finished layers, and returns how many
    // layers the journal holds afterwards (it may have got further between the poll and the kill; 5 when the run got
    // as far as writing the output, which removes the journal).
    private static int KillAfter(string[] args, string output, int layers)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "llmpress.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        string manifest = Path.Combine(QuantizationJournal.PathIn(output), "manifest.json");
        string marker = $"layer-{layers - 1:D5}.safetensors";
        var clock = Stopwatch.StartNew();
        while (!process.HasExited && clock.Elapsed < TimeSpan.FromMinutes(2))
        {
            string text;
            try { text = File.Exists(manifest) ? File.ReadAllText(manifest) : ""; }
            catch (IOException) { text = ""; }
            if (text.Contains(marker, StringComparison.Ordinal)) break;
            Thread.Sleep(5);
        }
        // (Read stderr only when it has exited: reading a live process's stderr to the end waits for its exit.)
        if (process.HasExited) Assert.Fail($"the run ended before it could be killed: {process.StandardError.ReadToEnd()}");
        process.Kill(entireProcessTree: true);
        process.WaitForExit();
        if (!File.Exists(manifest)) return 5;
        string after = File.ReadAllText(manifest);
        int done = 0;
        while (after.Contains($"layer-{done:D5}.safetensors", StringComparison.Ordinal)) done++;
        Assert.InRange(done, layers, 5);
        return done;
    }
}
