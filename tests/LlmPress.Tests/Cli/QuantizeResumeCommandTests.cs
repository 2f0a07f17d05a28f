using System.Text.Json;
using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Cli;

/// <summary>`llmpress quantize --resume / --max-memory` on stories260K: resumed and spilled runs write the same bytes.</summary>
public class QuantizeResumeCommandTests
{
    private static string Model => SharedData.Require("models", "stories260K");
    private static string Text => SharedData.Require("data", "tinystories", "tinystories-10k.txt");

    private static string[] Gptq(string output) =>
        ["quantize", Model, "-o", output, "--method", "gptq", "--format", "int4", "--group-size", "32",
         "--calib", Text, "--calib-samples", "8", "--calib-seq-len", "128", "--seed", "3"];

    // What the CLI does up to the interruption: the same calibration windows and fingerprint, stopped after `layers`.
    private static void Interrupt(string output, int layers)
    {
        using var model = LlamaModel.Load(Model);
        var tokenizer = Tokenizer.Load(Path.Combine(Model, "tokenizer.json"));
        var calibration = CalibrationData.FromText(tokenizer, File.ReadAllText(Text), model.Config.BosTokenId ?? tokenizer.BosTokenId, 8, 128, 3);
        var options = new QuantizeOptions { Method = QuantMethod.Gptq, Format = QuantFormat.Int(4, 32, symmetric: false) };
        var journal = QuantizationJournal.Create(output, RunFingerprint.Create(model, options, calibration));
        using var stop = new CancellationTokenSource();
        Assert.Throws<OperationCanceledException>(() => QuantizationPipeline.Run(model, options, calibration,
            done => { if (done == layers) stop.Cancel(); }, new QuantizationRunSettings { Journal = journal, CancellationToken = stop.Token }));
    }

    private static void AssertSameModel(string expected, string actual)
    {
        foreach (var file in new[] { "model.safetensors", "config.json" })
            Assert.True(File.ReadAllBytes(Path.Combine(expected, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(actual, file))), $"{file} differs");
        using var a = JsonDocument.Parse(File.ReadAllText(Path.Combine(expected, "report.json")));
        using var b = JsonDocument.Parse(File.ReadAllText(Path.Combine(actual, "report.json")));
        var la = a.RootElement.GetProperty("layers").EnumerateArray().ToArray();
        var lb = b.RootElement.GetProperty("layers").EnumerateArray().ToArray();
        Assert.Equal(la.Length, lb.Length);
        for (int i = 0; i < la.Length; i++)
            foreach (var key in new[] { "name", "format", "bits_per_weight", "relative_weight_error", "relative_output_error", "bytes_after" })
                Assert.Equal(la[i].GetProperty(key).GetRawText(), lb[i].GetProperty(key).GetRawText());
        Assert.False(Directory.Exists(Path.Combine(actual, QuantizationJournal.DirectoryName)));
    }

    [Fact]
    public void InterruptedRunIsRefusedWithoutResumeAndResumesBitIdentically()
    {
        using var dir = new TempDirectory();
        string reference = dir.File("reference"), output = dir.File("out");
        var run = CliRunner.Run(Gptq(reference));
        Assert.True(run.ExitCode == 0, run.Err);
        Interrupt(output, 2);

        var (code, _, err) = CliRunner.Run(Gptq(output));
        CliRunner.AssertOneLineError(code, err, output, "--resume", "--force");
        Assert.Equal([QuantizationJournal.DirectoryName], Directory.GetFileSystemEntries(output).Select(Path.GetFileName));

        (code, _, err) = CliRunner.Run([.. Gptq(output), "--resume"]);
        Assert.True(code == 0, err);
        Assert.Contains("2 of 5 layers already done", err);
        AssertSameModel(reference, output);

        // Resuming a finished run does nothing and says so.
        var before = File.GetLastWriteTimeUtc(Path.Combine(output, "model.safetensors"));
        (code, var stdout, err) = CliRunner.Run([.. Gptq(output), "--resume", "--json"]);
        Assert.True(code == 0, err);
        Assert.Contains("already complete", err);
        using (var doc = JsonDocument.Parse(stdout)) Assert.Equal(35, doc.RootElement.GetProperty("layers").GetArrayLength());
        Assert.Equal(before, File.GetLastWriteTimeUtc(Path.Combine(output, "model.safetensors")));
        // … unless it is a different run.
        (code, _, err) = CliRunner.Run("quantize", Model, "-o", output, "--resume");
        CliRunner.AssertOneLineError(code, err, "gptq int4-asym-g32", "rtn int4-asym-g128", "--force");
    }

    [Fact]
    public void ResumeWithOtherSettingsIsRefusedNamingTheDifference()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out");
        Interrupt(output, 1);
        var args = Gptq(output);
        args[Array.IndexOf(args, "--seed") + 1] = "4";
        var (code, _, err) = CliRunner.Run([.. args, "--resume"]);
        CliRunner.AssertOneLineError(code, err, "different run", "seed 3", "seed 4", "--force");
        Assert.True(QuantizationJournal.Exists(output));

        // --force discards the journal and starts over.
        (code, _, err) = CliRunner.Run([.. args, "--force"]);
        Assert.True(code == 0, err);
        Assert.False(QuantizationJournal.Exists(output));
    }

    [Fact]
    public void ResumeWithoutJournalStartsFresh()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out");
        var (code, _, err) = CliRunner.Run("quantize", Model, "-o", output, "--resume");
        Assert.True(code == 0, err);
        Assert.Contains("no journal to resume; starting from the first layer", err);
        Assert.True(File.Exists(Path.Combine(output, "model.safetensors")));
    }

    [Fact]
    public void ResumeOfAForeignDirectoryIsRefusedAndUntouched()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("keep.txt"), "mine");
        var (code, _, err) = CliRunner.Run("quantize", Model, "-o", dir.Path, "--resume");
        CliRunner.AssertOneLineError(code, err, "no journal", "--force");
        Assert.Equal(["keep.txt"], dir.FileNames());
    }

    [Fact]
    public void ForceAndResumeTogetherAreRefused()
    {
        using var dir = new TempDirectory();
        var (code, _, err) = CliRunner.Run("quantize", Model, "-o", dir.File("out"), "--resume", "--force");
        CliRunner.AssertOneLineError(code, err, "--force", "--resume");
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Theory]
    [InlineData("lots")]
    [InlineData("4X")]
    [InlineData("0")]
    public void BadMaxMemoryIsRefused(string value)
    {
        using var dir = new TempDirectory();
        var (code, _, err) = CliRunner.Run("quantize", Model, "-o", dir.File("out"), "--max-memory", value);
        CliRunner.AssertOneLineError(code, err, "--max-memory", $"'{value}'", "4G");
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void MaxMemorySpillsActivationsWithTheSameResult()
    {
        using var dir = new TempDirectory();
        string inRam = dir.File("ram"), spilled = dir.File("spilled");
        var (code, stdout, err) = CliRunner.Run([.. Gptq(spilled), "--max-memory", "1M", "--dry-run", "--json"]);
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
        {
            Assert.Equal(1L << 20, doc.RootElement.GetProperty("max_memory_bytes").GetInt64());
            long activations = doc.RootElement.GetProperty("activation_bytes").GetInt64();
            Assert.Equal(8L * 128 * (64 + 172) * 4, activations);
            Assert.Equal(activations, doc.RootElement.GetProperty("spilled_bytes").GetInt64());
        }
        (code, stdout, err) = CliRunner.Run([.. Gptq(spilled), "--max-memory", "1M", "--dry-run"]);
        Assert.True(code == 0, err);
        Assert.Contains("spilled to disk under --max-memory 1.00 MiB", stdout);
        Assert.False(Directory.Exists(spilled));

        Assert.Equal(0, CliRunner.Run(Gptq(inRam)).ExitCode);
        (code, _, err) = CliRunner.Run([.. Gptq(spilled), "--max-memory", "1M"]);
        Assert.True(code == 0, err);
        AssertSameModel(inRam, spilled);
    }

    [Fact]
    public void HelpExplainsResumeAndMaxMemory()
    {
        var (code, stdout, _) = CliRunner.Run("quantize", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--resume", stdout);
        Assert.Contains("--max-memory", stdout);
        Assert.Contains("no limit", stdout);
    }
}
