using System.Text.Json;

namespace LlmPress.Tests.Cli;

/// <summary>`llmpress quantize` end to end on stories260K, and its refusals (exit 1, one line, nothing written).</summary>
public class QuantizeCommandTests
{
    private static string Model => SharedData.Require("models", "stories260K");
    private static string Text => SharedData.Require("data", "tinystories", "tinystories-10k.txt");

    private static string[] Calib => ["--calib", Text, "--calib-samples", "16", "--calib-seq-len", "128"];

    private static void AssertNothingWritten(TempDirectory dir) =>
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));

    [Fact]
    public void GptqWritesAModelThatEvalAndGenerateLoad()
    {
        using var dir = new TempDirectory();
        string output = Path.Combine(dir.Path, "gptq4");
        var (code, stdout, err) = CliRunner.Run(["quantize", Model, "-o", output, "--method", "gptq", "--format", "int4", "--group-size", "32", .. Calib, "--json"]);
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
        {
            Assert.Equal("int4-asym-g32", doc.RootElement.GetProperty("format").GetString());
            Assert.Equal(35, doc.RootElement.GetProperty("layers").GetArrayLength());
            Assert.Equal(16, doc.RootElement.GetProperty("calibration").GetProperty("samples").GetInt32());
        }
        Assert.True(File.Exists(Path.Combine(output, "report.json")));

        var eval = CliRunner.Run("eval", output, "--data", Text, "--seq-len", "256", "--max-windows", "4", "--json");
        Assert.True(eval.ExitCode == 0, eval.Err);
        using (var doc = JsonDocument.Parse(eval.Out))
            Assert.InRange(doc.RootElement.GetProperty("perplexity").GetDouble(), 1, 10);
        var gen = CliRunner.Run("generate", output, "-p", "Once upon a time", "-n", "8", "--json");
        Assert.True(gen.ExitCode == 0, gen.Err);
    }

    [Fact]
    public void MrGptqDefaultsToNvfp4With32WideRotationsAndEvalRunsIt()
    {
        using var dir = new TempDirectory();
        string output = Path.Combine(dir.Path, "mr");
        var (code, stdout, err) = CliRunner.Run(["quantize", Model, "-o", output, "--method", "mr-gptq", .. Calib, "--keep", "layers\\.4\\.", "--json"]);
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
        {
            Assert.Equal("mr-gptq", doc.RootElement.GetProperty("method").GetString());
            Assert.Equal("nvfp4-rot32", doc.RootElement.GetProperty("format").GetString());
            Assert.Equal(28, doc.RootElement.GetProperty("layers").GetArrayLength()); // layer 4's seven linears kept
        }
        var eval = CliRunner.Run("eval", output, "--data", Text, "--seq-len", "256", "--max-windows", "4", "--base", Model, "--json");
        Assert.True(eval.ExitCode == 0, eval.Err);
        using (var doc = JsonDocument.Parse(eval.Out))
            Assert.InRange(doc.RootElement.GetProperty("kl_divergence").GetDouble(), 0, 0.5);
    }

    [Theory]
    [InlineData("--rotation-block", "24", "power of two")]
    [InlineData("--keep", "(unclosed", "regular expression")]
    public void BadMrGptqOptionsAreRefused(string option, string value, string message)
    {
        using var dir = new TempDirectory();
        var (code, _, err) = CliRunner.Run(["quantize", Model, "-o", Path.Combine(dir.Path, "out"), "--method", "mr-gptq", .. Calib, option, value]);
        CliRunner.AssertOneLineError(code, err, message);
        AssertNothingWritten(dir);
    }

    [Fact]
    public void RtnTablePrintsEveryLayer()
    {
        using var dir = new TempDirectory();
        string output = Path.Combine(dir.Path, "rtn");
        var (code, stdout, err) = CliRunner.Run("quantize", Model, "-o", output, "--format", "int8", "--sym");
        Assert.True(code == 0, err);
        Assert.Contains("rtn int8-sym-g128", stdout);
        Assert.Contains("model.layers.4.mlp.down_proj", stdout);
        Assert.Contains("bits/weight", stdout);
        Assert.DoesNotContain("output err", stdout); // no calibration, no output error
    }

    [Fact]
    public void GptqWithoutCalibIsRefused()
    {
        using var dir = new TempDirectory();
        var (code, _, err) = CliRunner.Run("quantize", Model, "-o", Path.Combine(dir.Path, "out"), "--method", "gptq");
        CliRunner.AssertOneLineError(code, err, "--calib");
        AssertNothingWritten(dir);
    }

    [Fact]
    public void ExistingOutputIsRefusedAndUntouched()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("keep.txt"), "mine");
        var (code, _, err) = CliRunner.Run("quantize", Model, "-o", dir.Path);
        CliRunner.AssertOneLineError(code, err, dir.Path, "--force");
        Assert.Equal(["keep.txt"], dir.FileNames());
        Assert.Equal("mine", File.ReadAllText(dir.File("keep.txt")));

        var forced = CliRunner.Run("quantize", Model, "-o", dir.Path, "--force");
        Assert.True(forced.ExitCode == 0, forced.Err);
        Assert.Contains("model.safetensors", dir.FileNames());
        Assert.DoesNotContain("keep.txt", dir.FileNames());
    }

    [Fact]
    public void UnknownFormatIsRefused()
    {
        using var dir = new TempDirectory();
        var (code, _, err) = CliRunner.Run("quantize", Model, "-o", Path.Combine(dir.Path, "out"), "--format", "int5");
        CliRunner.AssertOneLineError(code, err, "int5", "--format");
        AssertNothingWritten(dir);
    }

    [Fact]
    public void GroupSizeForAFixedGroupFormatIsRefusedWithoutOutput()
    {
        using var dir = new TempDirectory();
        var (code, _, err) = CliRunner.Run("quantize", Model, "-o", Path.Combine(dir.Path, "out"), "--format", "mxfp4", "--group-size", "64");
        CliRunner.AssertOneLineError(code, err, "--group-size", "mxfp4");
        AssertNothingWritten(dir);
    }

    [Fact]
    public void HiggsMethodNeedsAHiggsFormat()
    {
        using var dir = new TempDirectory();
        var (code, _, err) = CliRunner.Run("quantize", Model, "-o", Path.Combine(dir.Path, "out"), "--method", "higgs", "--format", "int4");
        CliRunner.AssertOneLineError(code, err, "higgs", "int4");
        AssertNothingWritten(dir);
    }

    [Fact]
    public void ShortCalibrationTextIsRefused()
    {
        using var dir = new TempDirectory();
        string text = dir.File("short.txt");
        File.WriteAllText(text, "Once upon a time there was a cat.");
        string output = Path.Combine(dir.Path, "out");
        var (code, _, err) = CliRunner.Run("quantize", Model, "-o", output, "--method", "gptq", "--calib", text, "--calib-seq-len", "128");
        CliRunner.AssertOneLineError(code, err, "short.txt", "--calib-seq-len");
        Assert.False(Directory.Exists(output));
        Assert.Equal(["short.txt"], dir.FileNames());
        Assert.Single(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void FailureMidRunLeavesNoOutput()
    {
        using var dir = new TempDirectory();
        string model = CliRunner.CopyModel(dir, "stories260K");
        // A NaN in layer 3's down_proj: layers 0-2 quantize, then RTN refuses the weight.
        PoisonWeight(Path.Combine(model, "model.safetensors"), "model.layers.3.mlp.down_proj.weight");
        string output = Path.Combine(dir.Path, "out");
        var (code, _, err) = CliRunner.Run("quantize", model, "-o", output);
        CliRunner.AssertOneLineError(code, err, "model.layers.3.mlp.down_proj", "NaN");
        Assert.Equal(["stories260K"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
    }

    // Overwrites the first float of an F32 tensor with NaN in place.
    private static void PoisonWeight(string file, string tensor)
    {
        long offset;
        using (var store = LlmPress.IO.TensorStore.Open(file))
        {
            var info = store.GetInfo(tensor);
            Assert.Equal(LlmPress.Numerics.DType.F32, info.DType);
            offset = info.DataOffset;
        }
        using var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = offset; // absolute: header included
        stream.Write(BitConverter.GetBytes(float.NaN));
    }
}

public class EvalAgainstBaseTests
{
    [Fact]
    public void EvalWithBaseReportsKlAndTop1AgainstTheOriginal()
    {
        string model = SharedData.Require("models", "stories260K");
        string text = SharedData.Require("data", "tinystories", "tinystories-10k.txt");
        using var dir = new TempDirectory();
        string output = Path.Combine(dir.Path, "rtn3");
        var (code, _, err) = CliRunner.Run("quantize", model, "-o", output, "--method", "rtn", "--format", "int3", "--group-size", "32");
        Assert.True(code == 0, err);

        (code, var stdout, err) = CliRunner.Run("eval", output, "--base", model, "--data", text, "--seq-len", "128", "--max-windows", "4", "--json");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        double kl = root.GetProperty("kl_divergence").GetDouble();
        double top1 = root.GetProperty("top1_agreement").GetDouble();
        Assert.InRange(kl, 1e-4, 2.0);            // 3-bit RTN moves the distributions, but not wildly
        Assert.InRange(top1, 0.3, 0.9999);
        Assert.True(root.GetProperty("max_kl_divergence").GetDouble() >= kl);

        // The base perplexity is the plain eval of the base model on the same windows.
        (code, stdout, err) = CliRunner.Run("eval", model, "--data", text, "--seq-len", "128", "--max-windows", "4", "--json");
        Assert.True(code == 0, err);
        using var plain = JsonDocument.Parse(stdout);
        Assert.Equal(plain.RootElement.GetProperty("perplexity").GetDouble(), root.GetProperty("base_perplexity").GetDouble(), 1e-6);
    }
}

public class InspectQuantizedTests
{
    [Fact]
    public void InspectCountsQuantizedWeightsAsParametersAndNamesTheFormat()
    {
        string model = SharedData.Require("models", "stories260K");
        using var dir = new TempDirectory();
        string output = Path.Combine(dir.Path, "rtn4");
        var (code, _, err) = CliRunner.Run("quantize", model, "-o", output, "--method", "rtn", "--format", "int4", "--group-size", "32");
        Assert.True(code == 0, err);

        (code, var stdout, err) = CliRunner.Run("inspect", output, "--json");
        Assert.True(code == 0, err);
        using var quantized = JsonDocument.Parse(stdout);
        (code, stdout, err) = CliRunner.Run("inspect", model, "--json");
        Assert.True(code == 0, err);
        using var original = JsonDocument.Parse(stdout);

        Assert.Equal(original.RootElement.GetProperty("parameters").GetInt64(), quantized.RootElement.GetProperty("parameters").GetInt64());
        string quantization = quantized.RootElement.GetProperty("quantization").GetString()!;
        Assert.Contains("int4-asym-g32 on 35 linear layers", quantization);
        Assert.Equal(JsonValueKind.Null, original.RootElement.GetProperty("quantization").ValueKind);
    }
}

public class QuantizeLmHeadTests
{
    [Fact]
    public void AnInt8HeadIsReportedCountedByInspectAndRunsInGenerate()
    {
        string model = SharedData.Require("models", "stories260K");
        using var dir = new TempDirectory();
        string output = Path.Combine(dir.Path, "h8");
        var (code, stdout, err) = CliRunner.Run("quantize", model, "-o", output, "--format", "int4", "--lm-head", "int8", "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
        {
            var layers = doc.RootElement.GetProperty("layers");
            Assert.Equal(36, layers.GetArrayLength());
            Assert.Equal("lm_head", layers[35].GetProperty("name").GetString());
            Assert.Equal("int8-asym-g128", layers[35].GetProperty("format").GetString());
        }
        (code, stdout, err) = CliRunner.Run("inspect", output, "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
            Assert.Contains("on 36 linear layers", doc.RootElement.GetProperty("quantization").GetString()!);
        (code, stdout, err) = CliRunner.Run("generate", output, "--prompt", "Once upon a time", "--max-tokens", "8");
        Assert.True(code == 0, err);
        Assert.StartsWith("Once upon a time", stdout);
    }

    [Fact]
    public void AnUnknownHeadFormatIsRefusedWithoutOutput()
    {
        string model = SharedData.Require("models", "stories260K");
        using var dir = new TempDirectory();
        var (code, _, err) = CliRunner.Run("quantize", model, "-o", Path.Combine(dir.Path, "x"), "--lm-head", "int9");
        CliRunner.AssertOneLineError(code, err, "--lm-head: unknown format 'int9'");
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}

public class QuantizeDryRunTests
{
    [Fact]
    public void DryRunPrintsThePlanAndWritesNothing()
    {
        string model = SharedData.Require("models", "stories260K");
        string text = SharedData.Require("data", "tinystories", "tinystories-10k.txt");
        using var dir = new TempDirectory();
        string output = Path.Combine(dir.Path, "plan");
        var (code, stdout, err) = CliRunner.Run("quantize", model, "-o", output, "--method", "gptq", "--format", "int4", "--group-size", "32",
            "--calib", text, "--calib-samples", "16", "--calib-seq-len", "128", "--dry-run", "--json");
        Assert.True(code == 0, err);
        Assert.False(Directory.Exists(output));
        using var plan = JsonDocument.Parse(stdout);
        var root = plan.RootElement;
        Assert.True(root.GetProperty("dry_run").GetBoolean());
        Assert.Equal(35, root.GetProperty("layers").GetArrayLength());
        Assert.Equal(16, root.GetProperty("calibration_samples").GetInt32());
        Assert.True(root.GetProperty("estimated_seconds").GetDouble() > 0);
        // Activations alone are 16 × 128 × 64 floats; the estimate includes them and the mapped checkpoint.
        Assert.True(root.GetProperty("estimated_peak_bytes").GetInt64() > new FileInfo(Path.Combine(model, "model.safetensors")).Length);

        // The planned sizes are the real run's sizes.
        (code, stdout, err) = CliRunner.Run("quantize", model, "-o", output, "--method", "gptq", "--format", "int4", "--group-size", "32",
            "--calib", text, "--calib-samples", "16", "--calib-seq-len", "128", "--json");
        Assert.True(code == 0, err);
        using var report = JsonDocument.Parse(stdout);
        var totals = report.RootElement.GetProperty("totals");
        Assert.Equal(totals.GetProperty("average_bits_per_weight").GetDouble(), root.GetProperty("average_bits_per_weight").GetDouble(), 0.01);
        double actualBytes = totals.GetProperty("total_bytes_after").GetInt64();
        Assert.Equal(actualBytes, root.GetProperty("output_bytes").GetInt64(), 0.01 * actualBytes);
    }
}
