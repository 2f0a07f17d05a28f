namespace LlmPress.Search;

/// <summary>
/// Settings of <see cref="EvoPressSearch"/>. Defaults are scaled-down versions of EvoPress' quantization scripts
/// (150 generations, 128 offspring, survivors 16 → 4 → 1 on 2,048 → 16,384 → 131,072 tokens), sized in calibration
/// windows so a CPU run on a small model takes minutes: 50 generations, 16 offspring, survivors 4 → 1 on 2 → 8 windows.
/// </summary>
public sealed record EvoPressOptions
{
    /// <summary>Generations. Default 50.</summary>
    public int Generations { get; init; } = 50;

    /// <summary>Offspring per generation (λ). Default 16.</summary>
    public int Offspring { get; init; } = 16;

    /// <summary>
    /// Survivors after each selection stage; the last must be 1 (the new parent). Default [4, 1]. The parent joins the
    /// candidates before the last stage (elitism).
    /// </summary>
    public IReadOnlyList<int> SurvivorsPerStage { get; init; } = [4, 1];

    /// <summary>Calibration windows scored per stage, one entry per stage, non-decreasing. Default [2, 8].</summary>
    public IReadOnlyList<int> WindowsPerStage { get; init; } = [2, 8];

    /// <summary>Largest number of level switches in one mutation; each mutation makes min(U{1..k}, U{1..k}). Default 3.</summary>
    public int MaxSwitches { get; init; } = 3;

    /// <summary>
    /// Without a given start: random configurations generated (from the cheapest level above the budget downwards)
    /// and scored on the first stage's windows; the best starts the search. Default 8.
    /// </summary>
    public int InitialCandidates { get; init; } = 8;

    /// <summary>Seed of every random choice (mutations, windows). Default 0.</summary>
    public int Seed { get; init; }

    /// <summary>Checks the settings.</summary>
    /// <exception cref="ArgumentException">A count out of range or stages that do not fit.</exception>
    public void Validate(int windowCount)
    {
        if (Generations < 0) throw new ArgumentException($"Generations must be ≥ 0, not {Generations}.");
        if (Offspring < 1) throw new ArgumentException($"Offspring must be ≥ 1, not {Offspring}.");
        if (MaxSwitches < 1) throw new ArgumentException($"MaxSwitches must be ≥ 1, not {MaxSwitches}.");
        if (InitialCandidates < 1) throw new ArgumentException($"InitialCandidates must be ≥ 1, not {InitialCandidates}.");
        if (SurvivorsPerStage.Count == 0 || SurvivorsPerStage.Count != WindowsPerStage.Count)
            throw new ArgumentException($"Give survivors and windows for every selection stage ({SurvivorsPerStage.Count} vs {WindowsPerStage.Count}).");
        if (SurvivorsPerStage[^1] != 1) throw new ArgumentException("The last selection stage must keep exactly 1 survivor (the next parent).");
        for (int k = 0; k < SurvivorsPerStage.Count; k++)
        {
            if (SurvivorsPerStage[k] < 1 || (k > 0 && SurvivorsPerStage[k] > SurvivorsPerStage[k - 1]))
                throw new ArgumentException($"Survivors per stage must be ≥ 1 and non-increasing: {string.Join(", ", SurvivorsPerStage)}.");
            if (WindowsPerStage[k] < 1 || WindowsPerStage[k] > windowCount)
                throw new ArgumentException($"Stage {k + 1} scores {WindowsPerStage[k]} windows, but the calibration set has {windowCount}.");
        }
    }
}
