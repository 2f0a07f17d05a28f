using System.Diagnostics;
using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Search;
using LlmPress.Tokenization;

namespace LlmPress.Bench;

/// <summary>
/// `bench depth-baselines MODEL CALIB K OUT [samples] [seqlen]`: the reference points of `search --drop-blocks K` on a
/// small model, on the same calibration windows as the search (seed 0): KL to the dense model of EVERY set of K
/// sub-blocks (exhaustive, C(units, K) configurations), so a search's answer can be ranked against the true optimum;
/// writes the exhaustive optimum and the naive "drop the last K" as checkpoints OUT/optimum-K and OUT/last-K for `eval`.
/// </summary>
internal static class DepthBaselines
{
    public static void Run(string modelPath, string calibPath, int k, string output, int samples, int length)
    {
        using var model = LlamaModel.Load(modelPath);
        var tokenizer = Tokenizer.Load(Path.Combine(modelPath, "tokenizer.json"));
        var calibration = CalibrationData.FromText(tokenizer, File.ReadAllText(calibPath), model.Config.BosTokenId ?? tokenizer.BosTokenId, samples,
            Math.Min(length, model.Config.MaxPositions), 0, calibPath);
        var windows = calibration.Samples;
        var every = Enumerable.Range(0, windows.Count).ToArray();
        var fitness = new KlDivergenceFitness(model, windows);
        int units = DepthUnits.Count(model.Layers.Count);
        var clock = Stopwatch.StartNew();
        var all = new List<(double Kl, int[] Dropped)>();
        foreach (var set in Subsets(units, k))
        {
            DepthUnits.Apply(model, DepthUnits.Dropping(units, set));
            all.Add((fitness.Evaluate(model, every), set));
        }
        DepthUnits.Restore(model);
        all.Sort((a, b) => a.Kl.CompareTo(b.Kl));
        Console.WriteLine($"{all.Count} sets of {k} of {units} sub-blocks scored in {clock.Elapsed.TotalSeconds:0.0} s on {windows.Count} × {windows[0].Length} tokens");
        for (int i = 0; i < Math.Min(5, all.Count); i++)
            Console.WriteLine($"  #{i + 1}: KL {all[i].Kl:0.00000}  {string.Join(", ", all[i].Dropped.Select(DepthUnits.Name))}");
        var last = Enumerable.Range(units - k, k).ToArray();
        int lastRank = all.FindIndex(x => x.Dropped.SequenceEqual(last));
        Console.WriteLine($"  drop last {k}: KL {all[lastRank].Kl:0.00000} (rank {lastRank + 1} of {all.Count}); worst set KL {all[^1].Kl:0.00000}");
        DepthCheckpointWriter.Write(modelPath, model.Store!, model.Layers.Count, DepthUnits.Dropping(units, all[0].Dropped), Path.Combine(output, $"optimum-{k}"), overwrite: true);
        DepthCheckpointWriter.Write(modelPath, model.Store!, model.Layers.Count, DepthUnits.Dropping(units, last), Path.Combine(output, $"last-{k}"), overwrite: true);
        Console.WriteLine($"  wrote {Path.Combine(output, $"optimum-{k}")} and {Path.Combine(output, $"last-{k}")}");
    }

    // Every k-subset of 0..n−1 in lexicographic order.
    private static IEnumerable<int[]> Subsets(int n, int k)
    {
        var set = Enumerable.Range(0, k).ToArray();
        while (true)
        {
            yield return (int[])set.Clone();
            int i = k - 1;
            while (i >= 0 && set[i] == n - k + i) i--;
            if (i < 0) yield break;
            set[i]++;
            for (int j = i + 1; j < k; j++) set[j] = set[j - 1] + 1;
        }
    }
}
