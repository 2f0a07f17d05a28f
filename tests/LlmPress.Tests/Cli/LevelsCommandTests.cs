using System.Text.Json;
using LlmPress.Models;
using LlmPress.Quantization.Pipeline;
using LlmPress.Search;

namespace LlmPress.Tests.Cli;

/// <summary>`llmpress levels` end to end on stories260K: a small database is built, reported and readable; bad input is one line.</summary>
public class LevelsCommandTests
{
    private static string Model => SharedData.Require("models", "stories260K");
    private static string Text => SharedData.Require("data", "tinystories", "tinystories-10k.txt");

    private static string[] Small(string output, params string[] more) =>
        ["levels", Model, "-o", output, "--calib", Text, "--calib-samples", "4", "--calib-seq-len", "64", .. more];

    [Fact]
    public void Bits_BuildsAReadableDatabase_AndReportsItAsJson()
    {
        using var dir = new TempDirectory();
        string db = dir.File("db");
        var (code, stdout, err) = CliRunner.Run(Small(db, "--kind", "bits", "--levels", "4,2,3", "--group-size", "32", "--json"));
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
        {
            var root = doc.RootElement;
            Assert.Equal("bits", root.GetProperty("kind").GetString());
            Assert.Equal(3.0, root.GetProperty("calibration_level").GetDouble()); // the middle of 2, 3, 4
            var linears = root.GetProperty("linears");
            Assert.Equal(35, linears.GetArrayLength());
            var q = linears[0].GetProperty("levels");
            Assert.Equal("int2-asym-g32", q[0].GetProperty("format").GetString());
            Assert.True(q[0].GetProperty("output_error").GetDouble() > q[2].GetProperty("output_error").GetDouble());
            long total = root.GetProperty("total_bytes").GetInt64();
            Assert.Equal(Directory.GetFiles(db, "layer-*.safetensors").Sum(f => new FileInfo(f).Length), total);
            Assert.True(root.GetProperty("estimated_database_bytes").GetInt64() >= total);
        }
        Assert.False(Directory.Exists(QuantizationJournal.PathIn(db)));
        using var database = LevelDatabase.Open(db);
        using var model = LlamaModel.Load(Model);
        database.CheckModel(model);

        // The table form, and --resume on the finished database does nothing.
        var (code2, table, err2) = CliRunner.Run(Small(db, "--kind", "bits", "--levels", "4,2,3", "--group-size", "32", "--resume"));
        Assert.True(code2 == 0, err2);
        Assert.Contains("already complete", err2);
        Assert.Contains("model.layers.4.mlp.down_proj", table);

        // Existing output without --force/--resume is refused; with --force it is rebuilt.
        var refused = CliRunner.Run(Small(db, "--kind", "bits", "--levels", "2,3"));
        CliRunner.AssertOneLineError(refused.ExitCode, refused.Err, "already exists", "--force");
        var (code3, _, err3) = CliRunner.Run(Small(db, "--kind", "sparsity", "--levels", "0.3,0.6", "--method", "magnitude", "--force"));
        Assert.True(code3 == 0, err3);
        using var sparse = LevelDatabase.Open(db);
        Assert.Equal(LevelKind.Sparsity, sparse.Kind);
        Assert.Equal(5, Directory.GetFiles(db, "layer-*.safetensors").Length);
    }

    [Fact]
    public void DryRun_ShowsTheEstimate_AndMaxDiskRefusesBeforeAnyWork()
    {
        using var dir = new TempDirectory();
        string db = dir.File("db");
        var (code, stdout, err) = CliRunner.Run(Small(db, "--kind", "bits", "--levels", "2,3,4,5,6", "--dry-run", "--json"));
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
            Assert.True(doc.RootElement.GetProperty("estimated_peak_bytes").GetInt64() > doc.RootElement.GetProperty("estimated_database_bytes").GetInt64());
        Assert.False(Directory.Exists(db));

        var (code2, _, err2) = CliRunner.Run(Small(db, "--kind", "bits", "--levels", "2,3,4,5,6", "--max-disk", "100K"));
        CliRunner.AssertOneLineError(code2, err2, "--max-disk", "estimated");
        Assert.False(Directory.Exists(db), "refused before any work: nothing written");
    }

    [Theory]
    [InlineData("--kind", "width", "--levels", "2,3", "unknown kind 'width'; expected bits, sparsity or depth")]
    [InlineData("--kind", "depth", "--levels", "2,3", "omit --levels")]
    [InlineData("--kind", "bits", "--levels", "2,9", "out of range")]
    [InlineData("--kind", "bits", "--levels", "1,2", "out of range")]
    [InlineData("--kind", "bits", "--levels", "2.5", "out of range")]
    [InlineData("--kind", "sparsity", "--levels", "0.5,1", "out of range")]
    [InlineData("--kind", "sparsity", "--levels", "-0.1,0.5", "out of range")]
    [InlineData("--kind", "bits", "--levels", "2,3,2", "twice")]
    [InlineData("--kind", "bits", "--levels", "2,x", "not a number")]
    [InlineData("--kind", "bits", "--levels", "2,3", "--method", "wanda", "gptq or rtn")]
    [InlineData("--kind", "sparsity", "--levels", "0.5", "--sym", "--kind bits only")]
    [InlineData("--kind", "bits", "--levels", "2,3", "--calib-level", "4", "not one of the levels")]
    public void BadInput_IsOneLine(params string[] args)
    {
        using var dir = new TempDirectory();
        var (code, _, err) = CliRunner.Run(["levels", Model, "-o", dir.File("db"), .. args[..^1]]);
        CliRunner.AssertOneLineError(code, err, args[^1]);
        Assert.False(Directory.Exists(dir.File("db")));
    }

    [Fact]
    public void DataAwareMethods_NeedCalib()
    {
        using var dir = new TempDirectory();
        var (code, _, err) = CliRunner.Run("levels", Model, "-o", dir.File("db"), "--kind", "bits", "--levels", "2,3");
        CliRunner.AssertOneLineError(code, err, "--calib", "gptq");
        (code, _, err) = CliRunner.Run("levels", Model, "-o", dir.File("db"), "--kind", "sparsity", "--levels", "0.5", "--method", "wanda");
        CliRunner.AssertOneLineError(code, err, "--calib", "wanda");
        // rtn and magnitude are data-free.
        (code, _, err) = CliRunner.Run("levels", Model, "-o", dir.File("db"), "--kind", "bits", "--levels", "3,8", "--method", "rtn");
        Assert.True(code == 0, err);
    }

    [Fact]
    public void Resume_WithOtherSettings_IsOneLine()
    {
        using var dir = new TempDirectory();
        string db = dir.File("db");
        using (var model = LlamaModel.Load(Model))
        {
            // A journal of another run (other levels) left in the directory.
            var other = LevelDatabaseBuilder.Fingerprint(model, new LevelDatabaseOptions { Levels = [2, 4], QuantMethod = LlmPress.Quantization.Pipeline.QuantMethod.Rtn }, null);
            QuantizationJournal.Create(db, other);
        }
        var (code, _, err) = CliRunner.Run("levels", Model, "-o", db, "--kind", "bits", "--levels", "2,3", "--method", "rtn", "--resume");
        CliRunner.AssertOneLineError(code, err, "different run", "levels");
        (code, _, err) = CliRunner.Run("levels", Model, "-o", db, "--kind", "bits", "--levels", "2,3", "--method", "rtn");
        CliRunner.AssertOneLineError(code, err, "--resume", "--force");
    }
}
