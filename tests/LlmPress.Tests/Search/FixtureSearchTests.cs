using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Search;

namespace LlmPress.Tests.Search;

/// <summary>
/// Bit allocation on a random-weight fixture (tiny-llama3: GQA, llama3 rope scaling, bf16 weights, untied head), which
/// has no tokenizer: calibration and held-out windows are sampled from the model itself. Its layers differ mostly by
/// kind (attention vs MLP, GQA key/value vs query), so the gains over uniform are small (the searches trade nothing
/// on tiny-mistral, whose layers are alike: uniform is optimal there), but both searches must find them on windows
/// they did not calibrate on.
/// </summary>
public class FixtureSearchTests
{
    [Fact]
    public void DpAndEvoPress_BeatUniformInt3_OnHeldOutWindows_OfTinyLlama3()
    {
        using var model = LlamaModel.Load(SharedData.Require("models", "tiny-llama3"));
        var calibration = SelfGeneratedCalibration.Sample(model, 32, 64, seed: 1);
        var held = SelfGeneratedCalibration.Sample(model, 32, 64, seed: 2).Samples;
        using var dir = new TempDirectory();
        using var database = LevelDatabaseBuilder.Build(model, new LevelDatabaseOptions { Levels = [2, 3, 4], CalibrationLevel = 3 }, calibration,
            Path.Combine(dir.Path, "db"));
        var windows = calibration.Samples;
        int[] all = [.. Enumerable.Range(0, windows.Count)], allHeld = [.. Enumerable.Range(0, held.Count)];
        var fitness = new KlDivergenceFitness(model, windows);
        var reference = new KlDivergenceFitness(model, held);
        (double Kl, double Perplexity) HeldOut(int[] levels)
        {
            database.Apply(model, levels);
            var result = (reference.Evaluate(model, allHeld), WindowPerplexity.Evaluate(model, held));
            database.Restore(model);
            return result;
        }

        double budget = SearchBudget.For(database, LevelKind.Bits, 3);
        var uniformLevels = SearchBudget.UniformAt(database, budget)!;
        var uniform = HeldOut(uniformLevels);
        var dp = DpAllocation.Run(model, database, budget, m => fitness.Evaluate(m, all));
        var dpHeld = HeldOut(dp.Levels);
        var evo = EvoPressSearch.Run(database.Space, budget, (levels, w) =>
        {
            database.Apply(model, levels.ToArray());
            return fitness.Evaluate(model, w);
        }, windows.Count, new EvoPressOptions { Generations = 10, Offspring = 8, WindowsPerStage = [4, windows.Count] }, uniformLevels,
            cancel: TestContext.Current.CancellationToken);
        database.Restore(model);
        var evoHeld = HeldOut(evo.Parent);
        TestContext.Current.TestOutputHelper!.WriteLine($"uniform {uniform}, dp {dpHeld} (predicted {dp.Predicted} / {dp.PredictedCorrected}), evopress {evoHeld} ({evo.History[0]} -> {evo.ParentFitness})");

        // Held-out KL (0.0540 uniform, 0.0514 both searches when written). Perplexity is reported, not asserted: on 2,000
        // sampled tokens its noise (the spread of −log p) exceeds the 0.3% it moves here.
        Assert.True(dpHeld.Kl < 0.98 * uniform.Kl, $"dp {dpHeld.Kl} vs uniform {uniform.Kl}");
        Assert.True(evoHeld.Kl < 0.98 * uniform.Kl, $"evopress {evoHeld.Kl} vs uniform {uniform.Kl}");
        Assert.True(evo.ParentFitness < evo.History[0]);
        Assert.True(database.Space.TotalCost(dp.Levels) <= budget && database.Space.TotalCost(evo.Parent) <= budget * (1 + 1e-12));
    }
}
