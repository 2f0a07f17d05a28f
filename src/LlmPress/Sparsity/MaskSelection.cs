namespace LlmPress.Sparsity;

/// <summary>
/// Picks the weights to prune from non-negative scores (smaller = less important): the k smallest of a set, or the N
/// smallest of every group of M. Ties go to the lower index, so masks are reproducible and exact in count.
/// </summary>
public static class MaskSelection
{
    /// <summary>
    /// Marks the <paramref name="count"/> smallest of <paramref name="scores"/> in <paramref name="pruned"/> (others are
    /// left as they are). Sorting 64-bit keys (score bits, index) makes the order total: exactly count entries are marked.
    /// </summary>
    /// <param name="scores">Non-negative, finite scores (NaN or negative values throw).</param>
    /// <param name="count">How many to mark, 0 ≤ count ≤ scores.Length.</param>
    /// <param name="pruned">Same length as scores.</param>
    /// <param name="keys">Optional scratch of at least scores.Length elements (allocated when empty).</param>
    /// <exception cref="ArgumentException">Length mismatch, count out of range, or a negative/NaN score.</exception>
    public static void MarkSmallest(ReadOnlySpan<float> scores, long count, Span<bool> pruned, Span<ulong> keys = default)
    {
        if (pruned.Length != scores.Length) throw new ArgumentException($"pruned has {pruned.Length} elements, scores {scores.Length}.", nameof(pruned));
        if (count < 0 || count > scores.Length) throw new ArgumentOutOfRangeException(nameof(count), count, $"must be in [0, {scores.Length}]");
        if (count == 0) return;
        if (keys.IsEmpty) keys = new ulong[scores.Length];
        else keys = keys[..scores.Length];
        for (int i = 0; i < scores.Length; i++) keys[i] = Key(scores[i], i);
        PartitionSmallest(keys, (int)count);
        for (long i = 0; i < count; i++) pruned[(int)(uint)keys[(int)i]] = true;
    }

    /// <summary>
    /// For each group of <paramref name="m"/> consecutive scores, marks the <paramref name="n"/> smallest (ties to the
    /// lower index). scores.Length must be a multiple of m.
    /// </summary>
    /// <exception cref="ArgumentException">Length mismatch, a bad N:M, or a negative/NaN score.</exception>
    public static void MarkNOfM(ReadOnlySpan<float> scores, int n, int m, Span<bool> pruned)
    {
        if (pruned.Length != scores.Length) throw new ArgumentException($"pruned has {pruned.Length} elements, scores {scores.Length}.", nameof(pruned));
        if (m < 1 || n < 0 || n > m) throw new ArgumentOutOfRangeException(nameof(n), $"{n}:{m} is not a valid N:M.");
        if (scores.Length % m != 0) throw new ArgumentException($"{scores.Length} scores are not whole groups of {m}.", nameof(scores));
        Span<ulong> group = m <= 256 ? stackalloc ulong[m] : new ulong[m];
        for (int g = 0; g < scores.Length; g += m)
        {
            for (int i = 0; i < m; i++) group[i] = Key(scores[g + i], i);
            group.Sort();
            for (int i = 0; i < n; i++) pruned[g + (int)(uint)group[i]] = true;
        }
    }

    // Reorders keys so that keys[..count] are the count smallest (in no particular order): quickselect, O(n) expected
    // instead of a full sort's O(n log n) (SparseGPT selects per block, iterative OBS over the whole layer). The keys are
    // distinct, so the chosen set is exactly the sort's first count, whatever the pivots.
    private static void PartitionSmallest(Span<ulong> keys, int count)
    {
        // Invariant: keys[..lo] ≤ keys[lo..hi] ≤ keys[hi + 1..] elementwise, and the count-th smallest is in [lo, hi].
        int lo = 0, hi = keys.Length - 1;
        while (hi - lo > 32)
        {
            // Median of three as the pivot; Hoare partition into [lo, j] ≤ pivot ≤ [j + 1, hi].
            int mid = lo + (hi - lo) / 2;
            ulong a = keys[lo], b = keys[mid], c = keys[hi];
            ulong pivot = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
            int i = lo - 1, j = hi + 1;
            while (true)
            {
                do i++; while (keys[i] < pivot);
                do j--; while (keys[j] > pivot);
                if (i >= j) break;
                (keys[i], keys[j]) = (keys[j], keys[i]);
            }
            if (count - 1 <= j) hi = j; // the count-th smallest is on the left
            else lo = j + 1;
        }
        keys[lo..(hi + 1)].Sort();
    }

    // Non-negative floats order like their bit patterns; the index in the low half breaks ties towards lower indices.
    private static ulong Key(float score, int index)
    {
        if (!(score >= 0)) throw new ArgumentException($"Pruning score {score} at index {index} is negative or NaN; scores must be non-negative.", "scores");
        return ((ulong)BitConverter.SingleToUInt32Bits(score + 0f) << 32) | (uint)index; // + 0f turns −0 into +0
    }
}
