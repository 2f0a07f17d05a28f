using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace LlmPress.Tokenization;

/// <summary>
/// A byte-pair-encoding model as defined by Hugging Face tokenizers' <c>BPE</c>: vocabulary, ranked merges,
/// unknown-token and byte-fallback handling. Encodes one pre-token ("word") at a time; thread-safe.
/// </summary>
/// <remarks>
/// Merging follows tokenizers' <c>Word::merge_all</c> exactly: repeatedly apply the applicable merge with the lowest
/// rank, leftmost first on ties. Short words use an array scan (O(n²) but tiny n, no heap), long ones (a whole
/// SentencePiece text can be one word) a priority queue over a linked list (O(n log n)); both pick the same merges.
/// </remarks>
internal sealed class BpeModel
{
    private const int CacheCapacity = 1 << 17;     // words; when full, new words are simply not cached
    private const int MaxCachedWordLength = 256;   // chars, like tokenizers' MAX_LENGTH
    private const int ShortWordSymbols = 96;       // array scan below this, heap above
    private const int DirectCharIds = 0x400;       // chars below this (ASCII, Latin, byte-level alphabet) use an array

    private readonly VocabularyIndex _vocab;
    private readonly string?[] _idToToken;          // [maxVocabId + 1]; null for unused ids
    private readonly BpeMergeTable _merges;
    private readonly int[] _directCharIds;          // [DirectCharIds]: id of the single-char token, or -1
    private readonly Dictionary<int, int> _codePointIds; // single-code-point tokens at or above DirectCharIds
    private readonly int[]? _byteFallbackIds;       // [256]: id of "<0xNN>", or -1; null without byte_fallback
    private readonly int _unkId;                    // -1 without unk_token
    private readonly bool _fuseUnk;
    private readonly bool _ignoreMerges;
    private readonly string? _prefix;               // continuing_subword_prefix (null when empty)
    private readonly string? _suffix;               // end_of_word_suffix (null when empty)
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;
    private int _cacheCount;

    /// <param name="vocab">Token → id.</param>
    /// <param name="idToToken">[maxVocabId + 1]: the token of each id, null for ids the vocabulary skips.</param>
    /// <param name="merges">The merge rules.</param>
    /// <param name="options">The model's scalar settings.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // one pass over the vocabulary per load
    public BpeModel(VocabularyIndex vocab, string?[] idToToken, BpeMergeTable merges, BpeOptions options)
    {
        _vocab = vocab;
        _idToToken = idToToken;
        _merges = merges;
        _fuseUnk = options.FuseUnk;
        _ignoreMerges = options.IgnoreMerges;
        _prefix = string.IsNullOrEmpty(options.ContinuingSubwordPrefix) ? null : options.ContinuingSubwordPrefix;
        _suffix = string.IsNullOrEmpty(options.EndOfWordSuffix) ? null : options.EndOfWordSuffix;
        _unkId = options.UnkToken is not null && vocab.TryGetId(options.UnkToken, out int unk) ? unk : -1;
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();

        _directCharIds = new int[DirectCharIds];
        Array.Fill(_directCharIds, -1);
        _codePointIds = new Dictionary<int, int>();
        for (int id = 0; id < idToToken.Length; id++)
        {
            string? token = idToToken[id];
            if (token is null) continue;
            if (token.Length == 1 && token[0] < DirectCharIds) _directCharIds[token[0]] = id;
            else if (Rune.TryGetRuneAt(token, 0, out Rune rune) && rune.Utf16SequenceLength == token.Length)
                _codePointIds[rune.Value] = id;
        }

        if (options.ByteFallback)
        {
            _byteFallbackIds = new int[256];
            Span<char> name = stackalloc char[6];
            for (int b = 0; b < 256; b++)
            {
                // tokenizers spells byte tokens "<0x0A>": upper-case hex, two digits.
                $"<0x{b:X2}>".AsSpan().CopyTo(name);
                _byteFallbackIds[b] = vocab.TryGetId(name, out int id) ? id : -1;
            }
        }
    }

    /// <summary>Maximum vocabulary id + 1.</summary>
    public int IdCount => _idToToken.Length;

    public bool TryGetId(ReadOnlySpan<char> token, out int id) => _vocab.TryGetId(token, out id);

    /// <summary>The vocabulary string of <paramref name="id"/>, or null when the id is not in the vocabulary.</summary>
    public string? GetToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    /// <summary>Appends the ids of one pre-token (already normalized and, for byte-level models, byte-mapped).</summary>
    [SkipLocalsInit] // the 2 KB symbol buffer is written before it is read
    public void Encode(ReadOnlySpan<char> word, List<int> ids)
    {
        if (word.IsEmpty) return;
        if (_ignoreMerges && _vocab.TryGetId(word, out int whole))
        {
            ids.Add(whole);
            return;
        }
        bool cacheable = word.Length <= MaxCachedWordLength;
        if (cacheable && _cacheBySpan.TryGetValue(word, out int[]? cached))
        {
            ids.AddRange(cached);
            return;
        }

        // Byte fallback can turn one char into 4 symbols, a surrogate pair into 4 for 2 chars.
        int capacity = word.Length * 4;
        int[]? rented = null;
        Span<int> symbols = capacity <= 512 ? stackalloc int[512] : (rented = ArrayPool<int>.Shared.Rent(capacity));
        try
        {
            int count = SplitIntoSymbols(word, symbols);
            count = count <= ShortWordSymbols
                ? MergeShort(symbols[..count])
                : MergeLong(symbols[..count]);
            ReadOnlySpan<int> result = symbols[..count];
            int start = ids.Count;
            CollectionsMarshal.SetCount(ids, start + count);
            result.CopyTo(CollectionsMarshal.AsSpan(ids)[start..]);
            if (cacheable && Volatile.Read(ref _cacheCount) < CacheCapacity && _cache.TryAdd(word.ToString(), result.ToArray()))
                Interlocked.Increment(ref _cacheCount);
        }
        finally
        {
            if (rented is not null) ArrayPool<int>.Shared.Return(rented);
        }
    }

    /// <summary>Encodes with the heap merge regardless of length; lets tests compare the two merge paths.</summary>
    internal int[] EncodeWithHeapForTesting(ReadOnlySpan<char> word)
    {
        var symbols = new int[Math.Max(1, word.Length * 4)];
        int count = SplitIntoSymbols(word, symbols);
        count = MergeLong(symbols.AsSpan(0, count));
        return symbols.AsSpan(0, count).ToArray();
    }

    // tokenizers' BPE::merge_word before merging: one symbol per char (code point), unknown chars become their
    // UTF-8 bytes' "<0xNN>" tokens (byte_fallback) or the unknown token (fused when fuse_unk), else are dropped.
    private int SplitIntoSymbols(ReadOnlySpan<char> word, Span<int> symbols)
    {
        int count = 0;
        int pendingUnk = 0; // number of pending unknown chars (fused into one token when fuse_unk)
        for (int i = 0; i < word.Length;)
        {
            int charLength = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            ReadOnlySpan<char> ch = word.Slice(i, charLength);
            bool isFirst = i == 0;
            i += charLength;
            bool isLast = i == word.Length;

            int id = LookupSymbol(ch, isFirst, isLast, out string? decorated);
            if (id >= 0)
            {
                if (pendingUnk > 0)
                {
                    symbols[count++] = _unkId;
                    pendingUnk = 0;
                }
                symbols[count++] = id;
                continue;
            }
            if (_byteFallbackIds is not null && TryAppendBytes(decorated is null ? ch : decorated, symbols, ref count))
                continue; // as in tokenizers, a pending unknown token stays pending across byte tokens
            if (_unkId >= 0)
            {
                if (pendingUnk > 0 && !_fuseUnk) symbols[count++] = _unkId;
                pendingUnk++;
            }
        }
        if (pendingUnk > 0) symbols[count++] = _unkId;
        return count;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int LookupSymbol(ReadOnlySpan<char> ch, bool isFirst, bool isLast, out string? decorated)
    {
        decorated = null;
        if ((_prefix is null || isFirst) && (_suffix is null || !isLast))
        {
            if (ch.Length == 1 && ch[0] < DirectCharIds) return _directCharIds[ch[0]];
            int cp = ch.Length == 2 ? char.ConvertToUtf32(ch[0], ch[1]) : ch[0];
            return _codePointIds.TryGetValue(cp, out int id) ? id : -1;
        }
        decorated = string.Concat(isFirst ? "" : _prefix, ch, isLast ? _suffix : "");
        return _vocab.TryGetId(decorated, out int decoratedId) ? decoratedId : -1;
    }

    private bool TryAppendBytes(ReadOnlySpan<char> text, Span<int> symbols, ref int count)
    {
        int maxBytes = Encoding.UTF8.GetMaxByteCount(text.Length);
        Span<byte> bytes = maxBytes <= 64 ? stackalloc byte[64] : new byte[maxBytes];
        int byteCount = Encoding.UTF8.GetBytes(text, bytes);
        int[] fallback = _byteFallbackIds!;
        for (int b = 0; b < byteCount; b++)
            if (fallback[bytes[b]] < 0) return false;
        if (count + byteCount > symbols.Length) return false; // only possible with very long affixes
        for (int b = 0; b < byteCount; b++) symbols[count++] = fallback[bytes[b]];
        return true;
    }

    // Array scan: ranks[i] is the rank of the pair (symbols[i], symbols[i + 1]).
    [SkipLocalsInit]
    private int MergeShort(Span<int> symbols)
    {
        int n = symbols.Length;
        if (n < 2) return n;
        BpeMergeTable merges = _merges;
        Span<int> ranks = stackalloc int[ShortWordSymbols];
        Span<int> mergedIds = stackalloc int[ShortWordSymbols];
        for (int i = 0; i < n - 1; i++) merges.TryGet(symbols[i], symbols[i + 1], out ranks[i], out mergedIds[i]);

        while (n > 1)
        {
            int best = int.MaxValue, at = -1;
            for (int i = 0; i < n - 1; i++)
            {
                if (ranks[i] < best)
                {
                    best = ranks[i];
                    at = i;
                }
            }
            if (at < 0) break;

            symbols[at] = mergedIds[at];
            int tail = n - at - 2; // symbols after the removed right half
            symbols.Slice(at + 2, tail).CopyTo(symbols[(at + 1)..]);
            ranks.Slice(at + 2, Math.Max(0, tail - 1)).CopyTo(ranks[(at + 1)..]);
            mergedIds.Slice(at + 2, Math.Max(0, tail - 1)).CopyTo(mergedIds[(at + 1)..]);
            n--;
            if (at > 0) merges.TryGet(symbols[at - 1], symbols[at], out ranks[at - 1], out mergedIds[at - 1]);
            if (at < n - 1) merges.TryGet(symbols[at], symbols[at + 1], out ranks[at], out mergedIds[at]);
        }
        return n;
    }

    // tokenizers' heap merge: entries are (rank, position of the left symbol); an entry is stale when its left
    // symbol was absorbed or the pair now there no longer merges into the same id.
    private int MergeLong(Span<int> symbols)
    {
        int n = symbols.Length;
        if (n < 2) return n;
        BpeMergeTable merges = _merges;
        int[] next = ArrayPool<int>.Shared.Rent(n);
        int[] prev = ArrayPool<int>.Shared.Rent(n);
        try
        {
            var queue = new PriorityQueue<int, long>(n);
            for (int i = 0; i < n; i++)
            {
                next[i] = i + 1 < n ? i + 1 : -1;
                prev[i] = i - 1;
                if (i + 1 < n && merges.TryGet(symbols[i], symbols[i + 1], out int rank, out int merged))
                    queue.Enqueue(merged, Priority(rank, i));
            }

            while (queue.TryDequeue(out int mergedId, out long priority))
            {
                int pos = (int)(priority & 0xFFFFFFFF);
                if (symbols[pos] < 0) continue;          // absorbed into its left neighbour
                int right = next[pos];
                if (right < 0) continue;
                if (!merges.TryGet(symbols[pos], symbols[right], out _, out int current) || current != mergedId) continue;

                symbols[pos] = mergedId;
                symbols[right] = -1;
                int after = next[right];
                next[pos] = after;
                if (after >= 0) prev[after] = pos;

                int before = prev[pos];
                if (before >= 0 && merges.TryGet(symbols[before], mergedId, out int rank, out int merged))
                    queue.Enqueue(merged, Priority(rank, before));
                if (after >= 0 && merges.TryGet(mergedId, symbols[after], out rank, out merged))
                    queue.Enqueue(merged, Priority(rank, pos));
            }

            int count = 0;
            for (int i = 0; i >= 0; i = next[i]) symbols[count++] = symbols[i];
            return count;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(next);
            ArrayPool<int>.Shared.Return(prev);
        }
    }

    private static long Priority(int rank, int position) => ((long)rank << 32) | (uint)position;
}
