using System.Diagnostics;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Tests.Cli;

/// <summary>
/// The real thing: `llmpress quantize` / `llmpress prune` in a child process, SIGKILLed (no cleanup of any kind runs)
/// as soon as its journal shows some finished layers, resumed and stopped again with Ctrl+C (SIGINT), then resumed to
/// the end — the output must equal an uninterrupted run's to the byte, and its report the same layer results.
/// </summary>
public class KillAndResumeTests
{
    private static string Model => SharedData.Require("models", "stories260K");
    private static string Text => SharedData.Require("data", "tinystories", "tinystories-10k.txt");

    // 32 × 256 tokens: each of the 5 layers takes long enough (~0.3–1 s on 2 busy cores) for the kill to land mid-run.
    private static string[] Args(string verb, string output) => verb == "quantize"
        ? ["quantize", Model, "-o", output, "--method", "gptq", "--format", "int4", "--group-size", "32",
           "--calib", Text, "--calib-samples", "32", "--calib-seq-len", "256"]
        : ["prune", Model, "-o", output, "--method", "magnitude", "--pattern", "2:4", "--calib", Text, "--calib-samples", "32", "--calib-seq-len", "256"];

    [Theory]
    [InlineData("quantize")]
    [InlineData("prune")]
    public void KilledThenInterruptedThenResumedGivesTheUninterruptedBytes(string verb)
    {
        string[] Args(string output) => KillAndResumeTests.Args(verb, output);
        using var dir = new TempDirectory();
        string reference = dir.File("reference"), output = dir.File("out");
        var run = CliRunner.Run(Args(reference));
        Assert.True(run.ExitCode == 0, run.Err);

        int first = StopAfter(Args(output), output, layers: 1, interrupt: false);
        int second = StopAfter([.. Args(output), "--resume"], output, layers: Math.Min(first + 1, 4), interrupt: true);
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
            foreach (var key in new[] { "name", "relative_output_error", "relative_weight_error", "bytes_after" })
                Assert.Equal(la[i].GetProperty(key).GetRawText(), lb[i].GetProperty(key).GetRawText());
        Assert.False(QuantizationJournal.Exists(output));
    }

    // Starts the CLI, kills it (SIGKILL) or interrupts it (SIGINT, as Ctrl+C does) once the journal manifest names
    // `layers` finished layers, and returns how many layers the journal holds afterwards (it may have got further
    // between the poll and the signal; 5 when the run got as far as writing the output, which removes the journal).
    internal static int StopAfter(string[] args, string output, int layers, bool interrupt)
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
        if (interrupt)
        {
            using (var kill = Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
                kill.WaitForExit();
            Assert.True(process.WaitForExit(TimeSpan.FromMinutes(1)), "Ctrl+C did not stop the run");
            string err = process.StandardError.ReadToEnd();
            if (File.Exists(Path.Combine(output, "model.safetensors"))) return 5; // finished before the signal arrived
            Assert.Equal(1, process.ExitCode);
            Assert.Contains("interrupted after", err);
            Assert.Contains("--resume", err);
        }
        else
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
        if (!File.Exists(manifest)) return 5;
        string after = File.ReadAllText(manifest);
        int done = 0;
        while (after.Contains($"layer-{done:D5}.safetensors", StringComparison.Ordinal)) done++;
        Assert.InRange(done, layers, 5);
        return done;
    }
}
