using LlmPress.Models;

namespace LlmPress.Search;

/// <summary>
/// The search space of depth pruning (EvoPress §4.2): unit u is sub-block u mod 2 (0 = self_attn, 1 = mlp) of decoder
/// layer u / 2, so a model with L layers has 2L units. Each unit has two levels in cost order: 0 = dropped (cost 0) and
/// 1 = kept (cost 1), so "drop K" is the budget units − K and EvoPress' level switch (one unit up, one down at equal
/// cost) is exactly a swap of a dropped and a kept unit: every candidate drops exactly K.
/// </summary>
public static class DepthUnits
{
    /// <summary>Level index of a dropped unit.</summary>
    public const int Dropped = 0;

    /// <summary>Level index of a kept unit.</summary>
    public const int Kept = 1;

    /// <summary>Units of a model with <paramref name="layers"/> decoder layers.</summary>
    public static int Count(int layers) => 2 * layers;

    /// <summary>Decoder layer of unit <paramref name="unit"/>.</summary>
    public static int LayerOf(int unit) => unit / 2;

    /// <summary>Sub-block of unit <paramref name="unit"/>.</summary>
    public static DecoderBlock BlockOf(int unit) => unit % 2 == 0 ? DecoderBlock.SelfAttention : DecoderBlock.Mlp;

    /// <summary>The unit's module name: "model.layers.3.self_attn", "model.layers.3.mlp".</summary>
    public static string Name(int unit) => $"model.layers.{LayerOf(unit)}.{DroppedBlock.BlockText(BlockOf(unit))}";

    /// <summary>The space: per unit, levels {dropped, kept} costing {0, 1}.</summary>
    public static LevelSpace Space(int layers)
    {
        int units = Count(layers);
        var names = new string[units];
        var costs = new double[units][];
        for (int u = 0; u < units; u++)
        {
            names[u] = Name(u);
            costs[u] = [0, 1];
        }
        return new LevelSpace(names, costs);
    }

    /// <summary>The budget (units kept) of dropping <paramref name="dropBlocks"/> of the units of a <paramref name="layers"/>-layer model.</summary>
    /// <exception cref="ArgumentException">K outside 0..units (the message gives the range).</exception>
    public static double Budget(int layers, int dropBlocks)
    {
        int units = Count(layers);
        if ((uint)dropBlocks > (uint)units)
            throw new ArgumentException($"--drop-blocks {dropBlocks}: the model has {units} sub-blocks ({layers} layers × attention and MLP); drop 0 to {units}.");
        return units - dropBlocks;
    }

    /// <summary>Number of dropped units in <paramref name="levels"/>.</summary>
    public static int DroppedCount(ReadOnlySpan<int> levels)
    {
        int count = 0;
        foreach (int level in levels)
            if (level == Dropped) count++;
        return count;
    }

    /// <summary>The configuration dropping exactly <paramref name="units"/> (others kept) among <paramref name="count"/> units.</summary>
    public static int[] Dropping(int count, IEnumerable<int> units)
    {
        var levels = new int[count];
        Array.Fill(levels, Kept);
        foreach (int u in units) levels[u] = Dropped;
        return levels;
    }

    /// <summary>
    /// Makes <paramref name="model"/>'s layers skip the dropped units of <paramref name="levels"/> (one level per unit,
    /// <see cref="Dropped"/> or <see cref="Kept"/>) and run the kept ones; replaces any previous configuration.
    /// </summary>
    /// <exception cref="ArgumentException">Not one level per unit, or a level other than 0 and 1.</exception>
    public static void Apply(LlamaModel model, ReadOnlySpan<int> levels)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (levels.Length != Count(model.Layers.Count))
            throw new ArgumentException($"A depth configuration has one level per sub-block ({Count(model.Layers.Count)}), not {levels.Length}.", nameof(levels));
        for (int u = 0; u < levels.Length; u++)
            if (levels[u] is not (Dropped or Kept)) throw new ArgumentException($"{Name(u)}: level {levels[u]} is neither dropped (0) nor kept (1).", nameof(levels));
        for (int l = 0; l < model.Layers.Count; l++)
        {
            model.Layers[l].SkipAttention = levels[2 * l] == Dropped;
            model.Layers[l].SkipMlp = levels[2 * l + 1] == Dropped;
        }
    }

    /// <summary>Runs every sub-block of <paramref name="model"/> again.</summary>
    public static void Restore(LlamaModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (var layer in model.Layers)
        {
            layer.SkipAttention = false;
            layer.SkipMlp = false;
        }
    }
}
