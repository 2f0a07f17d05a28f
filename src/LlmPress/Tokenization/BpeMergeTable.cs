using System.Numerics;
using System.Runtime.CompilerServices;

namespace LlmPress.Tokenization;

/// <summary>
/// Merge rules of a BPE model: (leftId, rightId) → (rank, mergedId), looked up with the pair packed into one
/// 64-bit key in an open-addressing table.
/// </summary>
/// <remarks>
/// Look-ups dominate BPE encoding (one per adjacent pair, and two more per merge), so this avoids the modulo and
/// the chained buckets of <see cref="Dictionary{TKey, TValue}"/>: a power-of-two table with linear probing, at
/// most half full.
/// </remarks>
internal sealed class BpeMergeTable
{
    private const long EmptyKey = -1;

    private readonly long[] _keys;      // (left << 32) | right, or EmptyKey
    private readonly long[] _values;    // (rank << 32) | mergedId
    private readonly int _mask;

    /// <summary>Builds the table; for a pair listed twice the later rule wins, as in Hugging Face tokenizers.</summary>
    /// <param name="merges">(leftId, rightId, mergedId) in rank order (rank = index).</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs once per load over all merges
    public BpeMergeTable(ReadOnlySpan<(int Left, int Right, int Merged)> merges)
    {
        int capacity = (int)Math.Max(16, BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, merges.Length) * 2));
        _keys = new long[capacity];
        _values = new long[capacity];
        Array.Fill(_keys, EmptyKey);
        _mask = capacity - 1;
        for (int rank = 0; rank < merges.Length; rank++)
        {
            (int left, int right, int merged) = merges[rank];
            long key = Pack(left, right);
            int slot = Slot(key);
            while (_keys[slot] != EmptyKey && _keys[slot] != key) slot = (slot + 1) & _mask;
            if (_keys[slot] == EmptyKey) Count++;
            _keys[slot] = key;
            _values[slot] = ((long)rank << 32) | (uint)merged;
        }
    }

    /// <summary>Number of distinct pairs.</summary>
    public int Count { get; }

    /// <summary>Finds the rule merging <paramref name="left"/> with <paramref name="right"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGet(int left, int right, out int rank, out int merged)
    {
        long key = Pack(left, right);
        long[] keys = _keys;
        int slot = Slot(key);
        while (true)
        {
            long k = keys[slot];
            if (k == key)
            {
                long v = _values[slot];
                rank = (int)(v >> 32);
                merged = (int)v;
                return true;
            }
            if (k == EmptyKey)
            {
                rank = int.MaxValue;
                merged = -1;
                return false;
            }
            slot = (slot + 1) & _mask;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long Pack(int left, int right) => ((long)left << 32) | (uint)right;

    // Fibonacci hashing spreads the structured (small-id) keys over the table.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Slot(long key) => (int)((ulong)(key * -7046029254386353131L) >> 32) & _mask;
}
