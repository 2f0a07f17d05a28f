using System.Text.Json;
using LlmPress.Models;
using LlmPress.Search;

namespace LlmPress.Tests.Cli;

/// <summary>A GPTQ bit-level database of stories260K (2, 3, 4 bits, calibration level 3, 16 × 128 TinyStories tokens), built once with `llmpress levels`.</summary>
public sealed class SearchDatabaseFixture : IDisposable
{
    private readonly TempDirectory _dir = new();
    private string? _db;

    public string Database
    {
        get
        {
            if (_db is null)
            {
                string db = _dir.File("db");
                var (code, _, err) = CliRunner.Run("levels", SearchCommandTests.Model, "-o", db, "--kind", "bits", "--levels", "2,3,4", "--calib-level", "3",
                    "--calib", SearchCommandTests.Text, "--calib-samples", "16", "--calib-seq-len", "128");
                Assert.True(code == 0, err);
                _db = db;
            }
            return _db;
        }
    }

    public void Dispose() => _dir.Dispose();
}

/// <summary>
/// `llmpress search` end to end on stories260K at an average of 3 bits: EvoPress never ends worse than its uniform
/// start and improves on it, the DP answer fits the budget and beats uniform int3 in KL and perplexity, the written
/// checkpoint loads and computes exactly what the database's configuration computes, a resumed search equals an
/// uninterrupted one, and bad targets or a foreign model are one-line errors.
/// </summary>
public class SearchCommandTests(SearchDatabaseFixture fixture) : IClassFixture<SearchDatabaseFixture>
{
    internal static string Model => SharedData.Require("models", "stories260K");
    internal static string Text => SharedData.Require("data", "tinystories", "tinystories-10k.txt");

    private string[] Search(string output, string method, params string[] more) =>
        ["search", Model, "--db", fixture.Database, "--target-bits", "3", "--method", method, "-o", output, "--calib", Text,
         "--calib-samples", "16", "--calib-seq-len", "128", "--json", .. more];

    private static JsonElement RunJson(string[] args)
    {
        var (code, stdout, err) = CliRunner.Run(args);
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        return doc.RootElement.Clone();
    }

    private static int[] Levels(JsonElement report) =>
        [.. report.GetProperty("layers").EnumerateArray().Select(l => (int)l.GetProperty("level").GetDouble())];

    [Fact]
    public void EvoPress_NeverEndsWorseThanItsUniformStart_AndImprovesOnIt()
    {
        using var dir = new TempDirectory();
        var run = RunJson(Search(dir.File("a"), "evopress", "--generations", "10", "--offspring", "8"));
        double start = run.GetProperty("fitness_start").GetDouble();
        // The start is uniform int3, scored on all calibration windows like the reported uniform baseline (same
        // windows, same reference; the two computations differ only in summation order, hence 1e-9).
        Assert.Equal(run.GetProperty("uniform").GetProperty("kl").GetDouble(), start, 1e-9);
        var curve = run.GetProperty("curve").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(11, curve.Length);
        for (int g = 1; g < curve.Length; g++) Assert.True(curve[g] <= curve[g - 1], $"generation {g}: {curve[g]} > {curve[g - 1]}"); // elitism, same windows
        // Exchanges across layer sizes leave uniform int3 within a few generations (seeded: deterministic).
        double final = run.GetProperty("fitness_final").GetDouble();
        Assert.True(final < start, $"final {final}, start {start}");
        Assert.Equal(final, run.GetProperty("measured").GetProperty("kl").GetDouble(), 1e-9);
        Assert.Equal(3.0, run.GetProperty("average_bits_nominal").GetDouble(), 12);
    }

    [Fact]
    public void Dp_FitsTheBudget_BeatsUniform_AndTheCheckpointComputesTheChosenConfiguration()
    {
        using var dir = new TempDirectory();
        string output = dir.File("dp");
        var report = RunJson(Search(output, "dp"));
        Assert.True(report.GetProperty("cost").GetDouble() <= report.GetProperty("budget").GetDouble());
        var measured = report.GetProperty("measured");
        var uniform = report.GetProperty("uniform");
        Assert.True(measured.GetProperty("kl").GetDouble() < uniform.GetProperty("kl").GetDouble());
        Assert.True(measured.GetProperty("perplexity").GetDouble() < uniform.GetProperty("perplexity").GetDouble());
        var levels = Levels(report);
        Assert.Contains(2, levels);
        Assert.Contains(4, levels);

        // The checkpoint loads (mixed int2/3/4 per quantization_config.layer_formats) and its logits equal the base
        // model with the database's chosen levels applied: the same codes, dequantized the same way, so exactly equal.
        using var loaded = LlamaModel.Load(output);
        using var base_ = LlamaModel.Load(Model);
        using var db = LevelDatabase.Open(fixture.Database);
        db.Apply(base_, [.. levels.Select(bits => bits - 2)]);
        int[] tokens = [1, 400, 57, 300, 22, 9, 481, 77, 100, 3, 260, 45];
        Assert.Equal(base_.Forward(tokens), loaded.Forward(tokens));
        Assert.True(File.Exists(Path.Combine(output, "search.json")));
        Assert.True(File.Exists(Path.Combine(output, "report.json")));

        // eval reads it like any quantized checkpoint.
        var (code, _, err) = CliRunner.Run("eval", output, "--data", Text, "--seq-len", "128", "--max-windows", "2", "--base", Model);
        Assert.True(code == 0, err);
    }

    [Fact]
    public void Resume_AfterThreeGenerations_EqualsAnUninterruptedSixGenerationRun()
    {
        using var dir = new TempDirectory();
        string resumed = dir.File("resumed");
        RunJson(Search(resumed, "evopress", "--generations", "3", "--offspring", "4"));
        Assert.True(File.Exists(Path.Combine(resumed, ".search", "state.json")));
        var continued = RunJson(Search(resumed, "evopress", "--generations", "6", "--offspring", "4", "--resume"));
        var straight = RunJson(Search(dir.File("straight"), "evopress", "--generations", "6", "--offspring", "4"));
        Assert.Equal(Levels(straight), Levels(continued));
        Assert.Equal(7, continued.GetProperty("curve").GetArrayLength());
        Assert.Equal(straight.GetProperty("curve").EnumerateArray().Select(e => e.GetDouble()),
            continued.GetProperty("curve").EnumerateArray().Select(e => e.GetDouble()));

        // Other settings than the saved state's: one line, nothing replaced.
        var (code, _, err) = CliRunner.Run(Search(resumed, "evopress", "--generations", "6", "--offspring", "2", "--resume"));
        CliRunner.AssertOneLineError(code, err, "other settings");
    }

    [Fact]
    public void BadTargets_AndAForeignModel_AreOneLineErrors()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out");
        var (code, _, err) = CliRunner.Run(["search", Model, "--db", fixture.Database, "--target-bits", "1.5", "-o", output, "--calib", Text]);
        CliRunner.AssertOneLineError(code, err, "--target-bits 1.5", "from 2 to 4");
        (code, _, err) = CliRunner.Run(["search", Model, "--db", fixture.Database, "--target-bits", "4.5", "-o", output, "--calib", Text]);
        CliRunner.AssertOneLineError(code, err, "from 2 to 4");
        (code, _, err) = CliRunner.Run(["search", Model, "--db", fixture.Database, "--target-sparsity", "0.5", "-o", output, "--calib", Text]);
        CliRunner.AssertOneLineError(code, err, "--target-bits");
        (code, _, err) = CliRunner.Run(["search", SharedData.Require("models", "tiny-llama3"), "--db", fixture.Database, "--target-bits", "3", "-o", output, "--calib", Text]);
        CliRunner.AssertOneLineError(code, err, "database built from another model");
        (code, _, err) = CliRunner.Run(["search", Model, "--db", fixture.Database, "--target-bits", "3", "--target-sparsity", "0.5", "-o", output, "--calib", Text]);
        CliRunner.AssertOneLineError(code, err, "exactly one");
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void Sparsity_DpWritesADensePrunedCheckpoint_ThatComputesTheChosenConfiguration()
    {
        using var dir = new TempDirectory();
        string db = dir.File("db"), output = dir.File("out");
        var (code, _, err) = CliRunner.Run("levels", Model, "-o", db, "--kind", "sparsity", "--levels", "0.3,0.5,0.7", "--method", "magnitude");
        Assert.True(code == 0, err);
        (code, _, err) = CliRunner.Run(["search", Model, "--db", db, "--target-sparsity", "0.8", "-o", output, "--calib", Text, "--method", "dp"]);
        CliRunner.AssertOneLineError(code, err, "--target-sparsity 0.8", "from 0.3 to 0.7");
        var report = RunJson(["search", Model, "--db", db, "--target-sparsity", "0.5", "--method", "dp", "-o", output, "--calib", Text,
            "--calib-samples", "4", "--calib-seq-len", "64", "--json"]);
        // Weights kept ≤ (1 − 0.5)·Σnumel: the achieved sparsity is at least the target.
        Assert.True(report.GetProperty("sparsity").GetDouble() >= 0.5 - 1e-12);
        using var database = LevelDatabase.Open(db);
        var sparsities = report.GetProperty("layers").EnumerateArray().Select(l => l.GetProperty("level").GetDouble()).ToArray();
        int[] levels = [.. sparsities.Select(x => database.Levels.ToList().IndexOf(x))];
        using var loaded = LlamaModel.Load(output);
        using var base_ = LlamaModel.Load(Model);
        database.Apply(base_, levels);
        int[] tokens = [1, 400, 57, 300, 22, 9, 481, 77];
        Assert.Equal(base_.Forward(tokens), loaded.Forward(tokens));
    }

    [Fact]
    public void Sweep_MeasuresUniformDpAndEvoPress_AndPlotsThem()
    {
        using var dir = new TempDirectory();
        string output = dir.File("sweep"), plot = dir.File("plot.svg");
        var report = RunJson(["search", Model, "--db", fixture.Database, "--sweep", "2.5,3", "--plot", plot, "-o", output, "--calib", Text,
            "--calib-samples", "8", "--calib-seq-len", "64", "--generations", "3", "--offspring", "4", "--json"]);
        var points = report.GetProperty("points").EnumerateArray().ToArray();
        Assert.Equal(3, points.Count(p => p.GetProperty("series").GetString() == "uniform"));
        Assert.Equal(2, points.Count(p => p.GetProperty("series").GetString() == "dp"));
        Assert.Equal(2, points.Count(p => p.GetProperty("series").GetString() == "evopress"));
        // Every searched point stays within its target's budget; uniform KL falls with the bits.
        foreach (var p in points.Where(p => p.GetProperty("series").GetString() != "uniform"))
            Assert.True(p.GetProperty("x").GetDouble() <= p.GetProperty("target").GetDouble() + 1e-12);
        var uniform = points.Where(p => p.GetProperty("series").GetString() == "uniform").Select(p => p.GetProperty("kl").GetDouble()).ToArray();
        Assert.True(uniform[0] > uniform[1] && uniform[1] > uniform[2]);
        string svg = File.ReadAllText(plot);
        Assert.StartsWith("<svg", svg.TrimStart());
        foreach (var name in new[] { "uniform", "dp", "evopress" }) Assert.Contains(name, svg);
        Assert.True(File.Exists(Path.Combine(output, "sweep.json")));
    }
}
