namespace LlmPress.Search;

/// <summary>
/// Where an <see cref="EvoPressSearch"/> stands after a generation: enough to resume bit-identically (every random
/// choice of generation g comes from a generator seeded by (seed, g), so nothing else is needed).
/// </summary>
/// <param name="Generation">Generations finished (0 = only the start chosen).</param>
/// <param name="Parent">The current best configuration: a level per layer.</param>
/// <param name="ParentFitness">Its fitness on the last stage's windows of that generation (lower is better).</param>
/// <param name="History">Best fitness per finished generation, entry 0 = the start.</param>
public sealed record EvoPressState(int Generation, int[] Parent, double ParentFitness, IReadOnlyList<double> History);
