using LlmPress.IO;

namespace LlmPress.Tests.Cli;

/// <summary>Every kind of bad input gives exit code 1 and one line on stderr naming what and where, no stack trace.</summary>
public class CliBadInputTests
{
    [Fact]
    public void MissingModelDirectory()
    {
        var (code, _, err) = CliRunner.Run("inspect", "/nonexistent/model");
        CliRunner.AssertOneLineError(code, err, "/nonexistent/model", "not found");
    }

    [Fact]
    public void TruncatedSafetensors()
    {
        using var dir = new TempDirectory();
        string model = CliRunner.CopyModel(dir, "stories260K");
        string weights = Path.Combine(model, "model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, bytes[..(bytes.Length / 2)]);
        var (code, _, err) = CliRunner.Run("inspect", model);
        CliRunner.AssertOneLineError(code, err, "model.safetensors");
    }

    [Fact]
    public void HeaderThatLiesAboutOffsets()
    {
        using var dir = new TempDirectory();
        string model = CliRunner.CopyModel(dir, "stories260K");
        string weights = Path.Combine(model, "model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        long headerLength = BitConverter.ToInt64(bytes, 0);
        string header = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
        // Move the first data_offsets' end far past the file, keeping the header length unchanged.
        int at = header.IndexOf("\"data_offsets\":[", StringComparison.Ordinal);
        Assert.True(at >= 0, "expected compact safetensors JSON");
        int comma = header.IndexOf(',', at + 16), close = header.IndexOf(']', comma);
        string end = header[(comma + 1)..close];
        string lie = new string('9', end.Length);
        header = header[..(comma + 1)] + lie + header[close..];
        System.Text.Encoding.UTF8.GetBytes(header).CopyTo(bytes, 8);
        File.WriteAllBytes(weights, bytes);
        var (code, _, err) = CliRunner.Run("inspect", model);
        CliRunner.AssertOneLineError(code, err, "model.safetensors");
    }

    [Fact]
    public void CorruptHeaderLength()
    {
        using var dir = new TempDirectory();
        string model = CliRunner.CopyModel(dir, "stories260K");
        string weights = Path.Combine(model, "model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        BitConverter.GetBytes(long.MaxValue / 2).CopyTo(bytes, 0);
        File.WriteAllBytes(weights, bytes);
        var (code, _, err) = CliRunner.Run("eval", model, "--data", SharedData.Require("data", "tinystories", "tinystories-10k.txt"));
        CliRunner.AssertOneLineError(code, err, "model.safetensors");
    }

    [Fact]
    public void UnsupportedArchitecture()
    {
        using var dir = new TempDirectory();
        string model = CliRunner.CopyModel(dir, "stories260K");
        string config = Path.Combine(model, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"llama\"", "\"falcon\""));
        var (code, _, err) = CliRunner.Run("inspect", model);
        CliRunner.AssertOneLineError(code, err, "config.json", "falcon", "not supported");
    }

    [Fact]
    public void MissingTensor()
    {
        using var dir = new TempDirectory();
        string model = CliRunner.CopyModel(dir, "tiny-mistral");
        string weights = Path.Combine(model, "model.safetensors");
        // Rewrite the checkpoint without one tensor.
        var kept = new List<TensorToWrite>();
        using (var file = SafeTensorsFile.Open(weights))
            foreach (var t in file.Tensors)
                if (t.Name != "model.layers.1.mlp.up_proj.weight")
                    kept.Add(new TensorToWrite(t.Name, t.DType, t.Shape, file.GetData(t.Name).ToArray()));
        SafeTensorsWriter.Write(weights, kept);
        var (code, _, err) = CliRunner.Run("inspect", model);
        CliRunner.AssertOneLineError(code, err, "model.layers.1.mlp.up_proj.weight");
    }

    [Fact]
    public void TextShorterThanOneWindow()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("short.txt"), "Once upon a time.");
        var (code, _, err) = CliRunner.Run("eval", SharedData.Require("models", "stories260K"), "--data", dir.File("short.txt"), "--seq-len", "256");
        CliRunner.AssertOneLineError(code, err, "short.txt", "fewer than one window of 256");
    }

    [Fact]
    public void MissingDataFile()
    {
        var (code, _, err) = CliRunner.Run("eval", SharedData.Require("models", "stories260K"), "--data", "/nonexistent.txt");
        CliRunner.AssertOneLineError(code, err, "/nonexistent.txt");
    }

    [Fact]
    public void VerboseShowsTheStackTrace()
    {
        var (code, _, err) = CliRunner.Run("inspect", "/nonexistent/model", "--verbose");
        Assert.Equal(1, code);
        Assert.Contains("   at ", err);
    }
}
