using System.Text.Json;
using LlmPress.Models;
using LlmPress.Search;

namespace LlmPress.Tests.Cli;

/// <summary>A depth database of stories260K (`levels --kind depth`, 8 × 64 TinyStories tokens), built once.</summary>
public sealed class DepthDatabaseFixture : IDisposable
{
    private readonly TempDirectory _dir = new();
    private string? _db;

    public string Database
    {
        get
        {
            if (_db is null)
            {
                string db = _dir.File("depth-db");
                var (code, _, err) = CliRunner.Run("levels", SearchCommandTests.Model, "-o", db, "--kind", "depth", "--calib", SearchCommandTests.Text,
                    "--calib-samples", "8", "--calib-seq-len", "64");
                Assert.True(code == 0, err);
                _db = db;
            }
            return _db;
        }
    }

    public void Dispose() => _dir.Dispose();
}

/// <summary>
/// `levels --kind depth` and `search --drop-blocks K` end to end on stories260K (5 layers, 10 sub-blocks): the written
/// checkpoints drop exactly K units, load in `eval`, and compute the in-memory candidate's logits exactly; dp drops the
/// K smallest single-drop increases and reports predicted vs measured; K = 0 changes nothing; bad K, a database of the
/// wrong kind and misplaced options are one-line errors.
/// </summary>
public class DepthSearchCommandTests(DepthDatabaseFixture fixture) : IClassFixture<DepthDatabaseFixture>
{
    private static string Model => SearchCommandTests.Model;
    private static string Text => SearchCommandTests.Text;

    private string[] Search(string output, string method, int k, params string[] more) =>
        ["search", Model, "--db", fixture.Database, "--drop-blocks", k.ToString(System.Globalization.CultureInfo.InvariantCulture), "--method", method, "-o", output,
         "--calib", Text, "--calib-samples", "6", "--calib-seq-len", "64", "--json", .. more];

    private static JsonElement RunJson(string[] args)
    {
        var (code, stdout, err) = CliRunner.Run(args);
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        return doc.RootElement.Clone();
    }

    private static int[] DroppedUnits(JsonElement report) => [.. report.GetProperty("dropped").EnumerateArray().Select(d => d.GetProperty("unit").GetInt32())];

    // The checkpoint's logits equal the dense model's with the same units skipped in memory.
    private static void AssertComputesTheCandidate(string output, int[] dropped)
    {
        int[] tokens = [1, 403, 261, 378, 425, 314, 13, 284, 359, 306];
        using var dense = LlamaModel.Load(Model);
        DepthUnits.Apply(dense, DepthUnits.Dropping(10, dropped));
        using var pruned = LlamaModel.Load(output);
        Assert.Equal(dense.Forward(tokens), pruned.Forward(tokens));
    }

    [Fact]
    public void Levels_Depth_RecordsEveryUnitsSingleDropEffect()
    {
        var (code, stdout, err) = CliRunner.Run("levels", Model, "-o", "unused", "--kind", "depth", "--calib", Text, "--dry-run", "--json");
        Assert.True(code == 0, err);
        Assert.Contains("\"units\": 10", stdout);
        var database = DepthDatabase.Open(fixture.Database);
        Assert.Equal(10, database.UnitCount);
        Assert.Equal("model.layers.4.mlp", database.Manifest.Units[9].Name);
        Assert.All(database.Manifest.Units, u => Assert.True(u.DropKl > 0 && u.DropPerplexity > 0 && u.RelativeUpdate > 0, u.Name));
    }

    [Fact]
    public void EvoPress_DropsExactlyK_AndTheCheckpointLoadsAndMatches()
    {
        using var dir = new TempDirectory();
        string output = dir.File("evo");
        var report = RunJson(Search(output, "evopress", 2, "--generations", "4", "--offspring", "6"));
        var dropped = DroppedUnits(report);
        Assert.Equal(2, dropped.Length);
        var curve = report.GetProperty("curve").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(5, curve.Length);
        for (int g = 1; g < curve.Length; g++) Assert.True(curve[g] <= curve[g - 1]);
        // It starts from the 2 units with the smallest single-drop KL, so it is never worse than that baseline.
        double kl = report.GetProperty("measured").GetProperty("kl").GetDouble();
        Assert.Equal(report.GetProperty("fitness_final").GetDouble(), kl, 1e-9); // measured on the same calibration windows
        Assert.True(kl <= report.GetProperty("baselines").GetProperty("drop_smallest_single_kl").GetProperty("kl").GetDouble() + 1e-12);
        AssertComputesTheCandidate(output, dropped);
        Assert.True(File.Exists(Path.Combine(output, "search.md")));

        var (code, stdout, err) = CliRunner.Run("eval", output, "--data", Text, "--base", Model, "--seq-len", "64", "--max-windows", "4", "--json");
        Assert.True(code == 0, err);
        Assert.Contains("kl_divergence", stdout);
    }

    [Fact]
    public void EvoPress_Resumed_EqualsAnUninterruptedRun()
    {
        using var dir = new TempDirectory();
        var whole = RunJson(Search(dir.File("whole"), "evopress", 3, "--generations", "4", "--offspring", "4"));
        RunJson(Search(dir.File("parts"), "evopress", 3, "--generations", "2", "--offspring", "4"));
        var resumed = RunJson(Search(dir.File("parts"), "evopress", 3, "--generations", "4", "--offspring", "4", "--resume"));
        Assert.Equal(DroppedUnits(whole), DroppedUnits(resumed));
        Assert.Equal(whole.GetProperty("curve").ToString(), resumed.GetProperty("curve").ToString());
    }

    [Fact]
    public void Dp_DropsTheKSmallestSingleDropIncreases_AndReportsPredictedAndMeasured()
    {
        using var dir = new TempDirectory();
        string output = dir.File("dp");
        var report = RunJson(Search(output, "dp", 4));
        var dropped = DroppedUnits(report);
        var single = report.GetProperty("single_drop").EnumerateArray().Select(u => u.GetProperty("kl").GetDouble()).ToArray();
        Assert.Equal(DepthSearch.DropSmallest(single, 4), DepthUnits.Dropping(10, dropped));
        double predicted = report.GetProperty("dp_predicted_metric_calibration").GetDouble();
        Assert.Equal(dropped.Sum(u => single[u]), predicted, 1e-12);
        Assert.True(report.GetProperty("dp_measured_metric_calibration").GetDouble() > 0);
        int removed = report.GetProperty("removed_layers").GetArrayLength();
        using (var pruned = LlamaModel.Load(output)) Assert.Equal(5 - removed, pruned.Config.LayerCount);
        AssertComputesTheCandidate(output, dropped);
    }

    [Fact]
    public void DropZero_KeepsEveryUnit()
    {
        using var dir = new TempDirectory();
        string output = dir.File("zero");
        var report = RunJson(Search(output, "dp", 0));
        Assert.Empty(DroppedUnits(report));
        Assert.Equal(0, report.GetProperty("measured").GetProperty("kl").GetDouble(), 12);
        using var pruned = LlamaModel.Load(output);
        Assert.Equal(5, pruned.Config.LayerCount);
        Assert.Empty(pruned.Config.DroppedBlocks);
    }

    [Theory]
    [InlineData(11, "drop 0 to 10")]
    [InlineData(-1, "drop 0 to 10")]
    public void KOutOfRange_IsAOneLineError(int k, string message)
    {
        using var dir = new TempDirectory();
        var (code, _, err) = CliRunner.Run(Search(dir.File("out"), "dp", k));
        CliRunner.AssertOneLineError(code, err, message);
        Assert.False(Directory.Exists(dir.File("out")));
    }

    [Fact]
    public void WrongDatabaseKind_AndMisplacedOptions_AreOneLineErrors()
    {
        using var dir = new TempDirectory();
        // --drop-blocks with a bit-level database.
        string bits = dir.File("bits");
        Directory.CreateDirectory(bits);
        File.WriteAllText(Path.Combine(bits, "levels.json"), """{"format_version": 1, "kind": "bits"}""");
        var (code, _, err) = CliRunner.Run("search", Model, "--db", bits, "--drop-blocks", "2", "-o", dir.File("a"), "--calib", Text);
        CliRunner.AssertOneLineError(code, err, "not a depth database", "--target-bits");
        // --target-bits with a depth database.
        (code, _, err) = CliRunner.Run("search", Model, "--db", fixture.Database, "--target-bits", "3", "-o", dir.File("b"), "--calib", Text);
        CliRunner.AssertOneLineError(code, err, "--target-bits", "depth database", "--drop-blocks");
        // A depth database without --drop-blocks.
        (code, _, err) = CliRunner.Run("search", Model, "--db", fixture.Database, "-o", dir.File("c"), "--calib", Text);
        CliRunner.AssertOneLineError(code, err, "give --drop-blocks K");
        // levels --kind depth with --levels, or without --calib.
        (code, _, err) = CliRunner.Run("levels", Model, "-o", dir.File("d"), "--kind", "depth", "--levels", "0,1", "--calib", Text);
        CliRunner.AssertOneLineError(code, err, "--levels 0,1", "omit --levels");
        (code, _, err) = CliRunner.Run("levels", Model, "-o", dir.File("e"), "--kind", "depth");
        CliRunner.AssertOneLineError(code, err, "--calib");
        // levels --kind bits still needs --levels.
        (code, _, err) = CliRunner.Run("levels", Model, "-o", dir.File("f"), "--kind", "bits", "--method", "rtn");
        CliRunner.AssertOneLineError(code, err, "--levels is required");
        Assert.Equal(["bits"], Directory.GetDirectories(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void ADatabaseOfAnotherModel_IsAOneLineError()
    {
        using var dir = new TempDirectory();
        var (code, _, err) = CliRunner.Run("search", SharedData.Require("models", "tiny-llama3"), "--db", fixture.Database, "--drop-blocks", "1", "-o", dir.File("x"),
            "--calib", Text, "--calib-samples", "2", "--calib-seq-len", "16");
        CliRunner.AssertOneLineError(code, err, "another model");
        Assert.False(Directory.Exists(dir.File("x")));
    }
}
