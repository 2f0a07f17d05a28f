namespace LlmPress.Search;

/// <summary>
/// EvoPress (Sieberling, Kuznedelev, Kurtic, Alistarh, arXiv 2410.14649): a (1 + λ) evolutionary search for the
/// level of every layer under a total budget. Each generation mutates the parent λ times by "level switches" — one
/// layer one level up (down), others one level down (up) at exactly the same total cost, so every configuration keeps
/// the starting budget — and selects in stages, successive-halving style: all offspring are scored on a few calibration windows, the
/// best few on more, and so on; the parent joins before the last stage (elitism), whose single survivor is the next
/// parent.
/// </summary>
/// <remarks>
/// Every random choice of generation g comes from a generator seeded by (seed, g), so a run resumed from an
/// <see cref="EvoPressState"/> continues exactly as an uninterrupted one would. Fitness is lower-is-better (KL divergence
/// to the uncompressed model in the CLI).
/// </remarks>
public static class EvoPressSearch
{
    /// <summary>Scores a configuration (a level per layer) on the given calibration windows; lower is better.</summary>
    public delegate double Fitness(ReadOnlySpan<int> levels, ReadOnlySpan<int> windows);

    /// <summary>Runs the search.</summary>
    /// <param name="space">Layers and level costs.</param>
    /// <param name="budget">Largest total cost; the result's cost is the start's (≤ budget).</param>
    /// <param name="fitness">The objective.</param>
    /// <param name="windowCount">Calibration windows available to the fitness (indices 0..windowCount−1).</param>
    /// <param name="options">Generations, offspring, stages, seed.</param>
    /// <param name="start">Optional start (e.g. uniform or the DP's answer); default: the best of
    /// <see cref="EvoPressOptions.InitialCandidates"/> random configurations just under the budget.</param>
    /// <param name="resume">A state saved by <paramref name="generationDone"/>: continue after it (start is ignored).</param>
    /// <param name="generationDone">Called after the start and after every generation (save it to resume).</param>
    /// <param name="cancel">Checked between fitness evaluations.</param>
    /// <exception cref="ArgumentException">A budget outside what the levels can reach, a start over the budget or with
    /// invalid levels, a resume state from another space, or bad options.</exception>
    public static EvoPressState Run(LevelSpace space, double budget, Fitness fitness, int windowCount, EvoPressOptions options,
        int[]? start = null, EvoPressState? resume = null, Action<EvoPressState>? generationDone = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(space);
        ArgumentNullException.ThrowIfNull(fitness);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate(windowCount);
        var (min, max) = space.CostRange();
        if (!(budget >= min * (1 - 1e-12)))
            throw new ArgumentException($"The budget {budget:G6} is below the cheapest configuration ({min:G6}: every layer at its lowest level).");
        budget = Math.Min(budget, max);

        EvoPressState state;
        if (resume is not null)
        {
            if (resume.Parent.Length != space.LayerCount || space.TotalCost(resume.Parent) > budget * (1 + 1e-12))
                throw new ArgumentException("The saved search state does not fit this model's levels or budget; start over without resuming.");
            state = resume;
        }
        else
        {
            var rng = GenerationRandom(options.Seed, 0);
            var windows = SampleWindows(rng, windowCount, options.WindowsPerStage[0]);
            int[] parent;
            double parentFitness;
            if (start is not null)
            {
                if (space.TotalCost(start) > budget * (1 + 1e-12))
                    throw new ArgumentException($"The start configuration costs {space.TotalCost(start):G6}, over the budget {budget:G6}.");
                parent = (int[])start.Clone();
                parentFitness = fitness(parent, windows);
            }
            else
            {
                parent = [];
                parentFitness = double.PositiveInfinity;
                for (int i = 0; i < options.InitialCandidates; i++)
                {
                    cancel.ThrowIfCancellationRequested();
                    var candidate = RandomStart(space, budget, rng);
                    if (i > 0 && candidate.AsSpan().SequenceEqual(parent)) continue;
                    double f = fitness(candidate, windows);
                    if (f < parentFitness) (parent, parentFitness) = (candidate, f);
                }
            }
            state = new EvoPressState(0, parent, parentFitness, [parentFitness]);
            generationDone?.Invoke(state);
        }

        while (state.Generation < options.Generations)
        {
            state = NextGeneration(space, fitness, windowCount, options, state, cancel);
            generationDone?.Invoke(state);
        }
        return state;
    }

    private static EvoPressState NextGeneration(LevelSpace space, Fitness fitness, int windowCount, EvoPressOptions options,
        EvoPressState state, CancellationToken cancel)
    {
        int generation = state.Generation + 1;
        var rng = GenerationRandom(options.Seed, generation);
        var parent = state.Parent;

        // λ distinct offspring, none equal to the parent (a space too small for λ gives fewer).
        var candidates = new List<int[]>();
        for (int attempt = 0; candidates.Count < options.Offspring && attempt < 100 * options.Offspring; attempt++)
        {
            var child = Mutate(space, parent, options.MaxSwitches, rng);
            if (child is null || child.AsSpan().SequenceEqual(parent)) continue;
            bool duplicate = false;
            foreach (var c in candidates) duplicate |= c.AsSpan().SequenceEqual(child);
            if (!duplicate) candidates.Add(child);
        }

        double best = state.ParentFitness;
        int[] winner = parent;
        var scores = new List<(double Fitness, int[] Levels)>();
        int stages = options.SurvivorsPerStage.Count;
        for (int k = 0; k < stages; k++)
        {
            var windows = SampleWindows(rng, windowCount, options.WindowsPerStage[k]);
            if (k == stages - 1) candidates.Add(parent); // elitism: the parent competes in the last stage
            scores.Clear();
            foreach (var c in candidates)
            {
                cancel.ThrowIfCancellationRequested();
                scores.Add((fitness(c, windows), c));
            }
            // Stable order: by fitness, ties keep the candidate order.
            var ranked = scores.Select((s, i) => (s, i)).OrderBy(x => x.s.Fitness).ThenBy(x => x.i).Select(x => x.s).ToList();
            int keep = Math.Min(options.SurvivorsPerStage[k], ranked.Count);
            candidates = ranked.Take(keep).Select(x => x.Levels).ToList();
            if (k == stages - 1) (best, winner) = (ranked[0].Fitness, ranked[0].Levels);
        }
        return new EvoPressState(generation, winner, best, [.. state.History, best]);
    }

    /// <summary>
    /// A level-switch mutation of <paramref name="parent"/>: min(U{1..k}, U{1..k}) switches, each an exchange that keeps
    /// the total cost exactly: one random layer moves a level up (or down), then random other layers move a level the
    /// other way, each chosen among those whose step still fits, until the steps balance. Between layers of one size
    /// this is EvoPress' switch (one up, one down); it also trades across sizes whose steps add up — one attention
    /// projection down for two GQA key/value projections up — which the size-grouped switch cannot reach, and which the
    /// DP's answers use (stories260K at 3 bits: o_proj at 2 bits pays for k_proj at 4). Null when no switch is possible.
    /// </summary>
    public static int[]? Mutate(LevelSpace space, int[] parent, int maxSwitches, Random rng)
    {
        ArgumentNullException.ThrowIfNull(space);
        ArgumentNullException.ThrowIfNull(parent);
        ArgumentNullException.ThrowIfNull(rng);
        int switches = Math.Min(rng.Next(1, maxSwitches + 1), rng.Next(1, maxSwitches + 1));
        var child = (int[])parent.Clone();
        var candidates = new List<int>();
        var moved = new List<int>();
        int done = 0;
        for (int attempt = 0; done < switches && attempt < 8 * switches; attempt++)
            if (TryExchange(space, child, rng, candidates, moved)) done++;
        return done == 0 ? null : child;
    }

    // Changes at most this many layers in one exchange (EvoPress rejects mixed-size mutations touching more than 10).
    private const int MaxExchangeLayers = 10;

    // One cost-neutral exchange on levels (in place); false (levels unchanged) when the steps cannot be balanced.
    private static bool TryExchange(LevelSpace space, int[] levels, Random rng, List<int> candidates, List<int> moved)
    {
        int first = rng.Next(2) == 0 ? 1 : -1; // direction of the first layer's move; the others move the other way
        candidates.Clear();
        for (int l = 0; l < space.LayerCount; l++)
            if (CanMove(space, levels, l, first)) candidates.Add(l);
        if (candidates.Count == 0) return false;
        moved.Clear();
        int start = candidates[rng.Next(candidates.Count)];
        double step = Step(space, levels, start, first), remaining = step;
        levels[start] += first;
        moved.Add(start);
        while (remaining > 1e-9 * step)
        {
            candidates.Clear();
            for (int l = 0; l < space.LayerCount; l++)
                if (!moved.Contains(l) && CanMove(space, levels, l, -first) && Step(space, levels, l, -first) <= remaining * (1 + 1e-9)) candidates.Add(l);
            if (candidates.Count == 0 || moved.Count == MaxExchangeLayers)
            {
                levels[moved[0]] -= first;
                for (int i = 1; i < moved.Count; i++) levels[moved[i]] += first;
                return false;
            }
            int next = candidates[rng.Next(candidates.Count)];
            remaining -= Step(space, levels, next, -first);
            levels[next] -= first;
            moved.Add(next);
        }
        return true;
    }

    private static bool CanMove(LevelSpace space, int[] levels, int layer, int direction) =>
        direction > 0 ? levels[layer] + 1 < space.LevelCount(layer) : levels[layer] > 0;

    // The cost change of moving layer one level in direction (+1 up, −1 down), as a positive amount.
    private static double Step(LevelSpace space, int[] levels, int layer, int direction) =>
        direction > 0 ? space.Cost(layer, levels[layer] + 1) - space.Cost(layer, levels[layer]) : space.Cost(layer, levels[layer]) - space.Cost(layer, levels[layer] - 1);

    // All layers at the lowest common level index whose uniform cost reaches the budget, then random layers one level
    // down until the total fits (EvoPress' initialisation for a non-integer target: from ceil(target) downwards), then
    // random layers up into what is left.
    private static int[] RandomStart(LevelSpace space, double budget, Random rng)
    {
        int top = 0;
        for (int l = 0; l < space.LayerCount; l++) top = Math.Max(top, space.LevelCount(l) - 1);
        var levels = new int[space.LayerCount];
        for (int u = 0; u <= top; u++)
        {
            for (int l = 0; l < levels.Length; l++) levels[l] = Math.Min(u, space.LevelCount(l) - 1);
            if (space.TotalCost(levels) >= budget) break;
        }
        var lowerable = new List<int>();
        while (space.TotalCost(levels) > budget * (1 + 1e-12))
        {
            lowerable.Clear();
            for (int l = 0; l < levels.Length; l++)
                if (levels[l] > 0) lowerable.Add(l);
            levels[lowerable[rng.Next(lowerable.Count)]]--; // non-empty: all-lowest costs ≤ budget
        }
        // Spend what the random lowering left over: random layers one level up while that still fits. The switches keep
        // the cost, so budget left here would stay unused for the whole search (3.476 of 3.5 bits on stories260K).
        var raisable = lowerable;
        while (true)
        {
            raisable.Clear();
            double slack = budget * (1 + 1e-12) - space.TotalCost(levels);
            for (int l = 0; l < levels.Length; l++)
                if (levels[l] + 1 < space.LevelCount(l) && space.Cost(l, levels[l] + 1) - space.Cost(l, levels[l]) <= slack) raisable.Add(l);
            if (raisable.Count == 0) break;
            levels[raisable[rng.Next(raisable.Count)]]++;
        }
        return levels;
    }

    private static int[] SampleWindows(Random rng, int windowCount, int count)
    {
        var all = new int[windowCount];
        for (int i = 0; i < windowCount; i++) all[i] = i;
        rng.Shuffle(all);
        var chosen = all[..count];
        Array.Sort(chosen); // the fitness reads windows in order (same sums for the same set)
        return chosen;
    }

    private static Random GenerationRandom(int seed, int generation) => new(unchecked(seed * 1_000_003 + generation * 7919 + 17));
}
