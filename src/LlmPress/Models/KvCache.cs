namespace LlmPress.Models;

/// <summary>
/// Keys and values of every layer for one sequence, so generation processes one new token at a time. Keys are stored
/// after RoPE. Each layer's buffers are [kvHeads, capacity, headDim] (<see cref="KvLayout.HeadMajor"/>): a decode step
/// reads each KV head's keys and values as one contiguous stream from memory, where the projections' interleaved
/// [position, kvHeads · headDim] rows would make it gather headDim-float pieces kvHeads apart (with the cache cold,
/// attention over 256 keys took ~35% less time with each head's rows contiguous, over 1,024 keys ~45%; 9 heads of 64,
/// 3 KV heads, one thread).
/// </summary>
public sealed class KvCache
{
    private readonly float[][] _keys;   // [layer][kvHeads, capacity, headDim]
    private readonly float[][] _values; // [layer][kvHeads, capacity, headDim]

    public KvCache(ModelConfig config, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Capacity = capacity;
        KvHeadCount = config.KvHeadCount;
        HeadDim = config.HeadDim;
        Layout = KvLayout.HeadMajor(capacity, HeadDim);
        long length = (long)KvHeadCount * capacity * HeadDim;
        if (length > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(capacity), $"A KV cache of {capacity} positions needs {length} floats per layer, more than one array holds.");
        _keys = new float[config.LayerCount][];
        _values = new float[config.LayerCount][];
        for (int l = 0; l < config.LayerCount; l++)
        {
            _keys[l] = new float[length];
            _values[l] = new float[length];
        }
    }

    public int Capacity { get; }
    public int KvHeadCount { get; }
    public int HeadDim { get; }

    /// <summary>How <see cref="Keys"/> and <see cref="Values"/> are laid out.</summary>
    public KvLayout Layout { get; }

    /// <summary>Positions filled so far (the next token goes at this position).</summary>
    public int Length { get; private set; }

    /// <summary>Layer <paramref name="layer"/>'s keys, [kvHeads, capacity, headDim].</summary>
    public ReadOnlySpan<float> Keys(int layer) => _keys[layer];

    /// <summary>Layer <paramref name="layer"/>'s values, [kvHeads, capacity, headDim].</summary>
    public ReadOnlySpan<float> Values(int layer) => _values[layer];

    public ReadOnlyMemory<float> KeysMemory(int layer) => _keys[layer];
    public ReadOnlyMemory<float> ValuesMemory(int layer) => _values[layer];

    /// <summary>
    /// Stores <paramref name="count"/> positions' keys and values, each [count, kvHeads · headDim] as the projections
    /// give them, at positions <paramref name="start"/>.. of layer <paramref name="layer"/>.
    /// </summary>
    public void Write(int layer, int start, int count, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        int d = HeadDim, kvDim = KvHeadCount * d;
        if (start < 0 || count < 0 || start + count > Capacity)
            throw new ArgumentOutOfRangeException(nameof(count), $"Positions {start}..{start + count} are outside the cache's capacity {Capacity}.");
        if (keys.Length < count * kvDim || values.Length < count * kvDim)
            throw new ArgumentException($"keys/values are shorter than [{count}, {kvDim}].");
        Span<float> k = _keys[layer], v = _values[layer];
        for (int h = 0; h < KvHeadCount; h++)
        {
            int head = (int)(h * Layout.HeadStride);
            for (int t = 0; t < count; t++)
            {
                int to = head + (start + t) * d, from = t * kvDim + h * d;
                keys.Slice(from, d).CopyTo(k.Slice(to, d));
                values.Slice(from, d).CopyTo(v.Slice(to, d));
            }
        }
    }

    /// <summary>Marks <paramref name="tokenCount"/> more positions as filled, after every layer has written them.</summary>
    public void Advance(int tokenCount)
    {
        if (Length + tokenCount > Capacity)
            throw new InvalidOperationException($"KV cache full: {Length} + {tokenCount} positions exceed its capacity {Capacity}.");
        Length += tokenCount;
    }

    /// <summary>Forgets everything after <paramref name="length"/> positions (start a new sequence with 0).</summary>
    public void Truncate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Length);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
    }
}
