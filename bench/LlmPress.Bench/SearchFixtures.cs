using System.Diagnostics;
using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Search;

namespace LlmPress.Bench;

/// <summary>
/// `bench search-fixtures [MODEL_DIR ...] [--bits B] [--windows N]`: `search`'s bit allocation on the random-weight fixtures, which
/// have no tokenizer: calibration and evaluation windows are sampled from the model itself (N × 128 each, default 64,
/// different seeds). Per model: a GPTQ g128 database of bits 2–6 (calibration level 3), then uniform, DP (database
/// sensitivities, KL metric) and EvoPress (50 generations × 16, started at uniform) at B bits (default 3), each
/// measured on the held-out windows: KL to the uncompressed model and perplexity of the windows.
/// </summary>
internal static class SearchFixtures
{
    public static void Run(string[] args)
    {
        double bits = 3;
        int windows = 64;
        var models = new List<string>();
        for (int i = 0; i < args.Length; i++)
            if (args[i] == "--bits") bits = double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture);
            else if (args[i] == "--windows") windows = int.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture);
            else models.Add(args[i]);
        if (models.Count == 0)
            foreach (string name in new[] { "tiny-llama3", "tiny-qwen2", "tiny-mistral" })
                models.Add(Path.Combine("..", "shared", "models", name));
        Console.WriteLine($"| model | linears | uniform int{bits:0.#} KL / ppl | dp KL / ppl (predicted KL first order / corrected) | evopress KL / ppl (calibration curve) | base ppl |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (string path in models) RunOne(path, bits, windows);
    }

    private static void RunOne(string path, double bits, int windowCount)
    {
        var clock = Stopwatch.StartNew();
        using var model = LlamaModel.Load(path);
        int length = Math.Min(128, model.Config.MaxPositions);
        var calibration = SelfGeneratedCalibration.Sample(model, windowCount, length, seed: 1);
        var held = SelfGeneratedCalibration.Sample(model, windowCount, length, seed: 2).Samples;
        using var dir = new TempDir();
        using var database = LevelDatabaseBuilder.Build(model, new LevelDatabaseOptions { Levels = [2, 3, 4, 5, 6], CalibrationLevel = 3 }, calibration, dir.Path);

        var windows = calibration.Samples;
        var all = Enumerable.Range(0, windows.Count).ToArray();
        var fitness = new KlDivergenceFitness(model, windows);
        var reference = new KlDivergenceFitness(model, held);
        var everyHeld = Enumerable.Range(0, held.Count).ToArray();
        double basePerplexity = WindowPerplexity.Evaluate(model, held);
        (double Kl, double Ppl) Measure(int[] levels)
        {
            database.Apply(model, levels);
            var result = (reference.Evaluate(model, everyHeld), WindowPerplexity.Evaluate(model, held));
            database.Restore(model);
            return result;
        }

        double budget = SearchBudget.For(database, LevelKind.Bits, bits);
        var uniformLevels = SearchBudget.UniformAt(database, budget);
        var uniform = uniformLevels is null ? (double.NaN, double.NaN) : Measure(uniformLevels);

        Func<LlamaModel, double> metric = m => fitness.Evaluate(m, all);
        var dp = DpAllocation.Run(model, database, budget, metric);
        var dpMeasured = Measure(dp.Levels);

        var options = new EvoPressOptions { Generations = 50, Offspring = 16, WindowsPerStage = [4, windows.Count] };
        var state = EvoPressSearch.Run(database.Space, budget, (levels, w) =>
        {
            database.Apply(model, levels.ToArray());
            return fitness.Evaluate(model, w);
        }, windows.Count, options, uniformLevels);
        database.Restore(model);
        var evo = Measure(state.Parent);
        double evoStart = uniformLevels is null ? state.History[0] : MeasureCalibration(uniformLevels);

        Console.WriteLine($"| {Path.GetFileName(Path.GetFullPath(path))} | {database.Linears.Count} | {uniform.Item1:0.0000} / {uniform.Item2:0.00} "
            + $"| {dpMeasured.Kl:0.0000} / {dpMeasured.Ppl:0.00} ({dp.Predicted:0.0000} / {dp.PredictedCorrected:0.0000}; calibration measured {MeasureCalibration(dp.Levels):0.0000}) "
            + $"| {evo.Kl:0.0000} / {evo.Ppl:0.00} ({evoStart:0.0000} → {state.ParentFitness:0.0000}) | {basePerplexity:0.00} |");
        Console.Error.WriteLine($"{path}: {clock.Elapsed.TotalSeconds:0.0} s");

        double MeasureCalibration(int[] levels)
        {
            database.Apply(model, levels);
            double kl = fitness.Evaluate(model, all);
            database.Restore(model);
            return kl;
        }
    }

    private sealed class TempDir : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "llmpress-search-fixtures-" + Guid.NewGuid().ToString("N"));
        public void Dispose()
        {
            if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
        }
    }
}
