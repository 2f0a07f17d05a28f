namespace LlmPress.Models;

/// <summary>
/// Keys and values of every layer for one sequence, so generation processes one new token at a time.
/// Keys are stored after RoPE.
/// </summary>
public sealed class KvCache
{
    private readonly float[][] _keys;   // [layer][capacity, kvDim]
    private readonly float[][] _values; // [layer][capacity, kvDim]

    public KvCache(ModelConfig config, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Capacity = capacity;
        KvDim = config.KvDim;
        _keys = new float[config.LayerCount][];
        _values = new float[config.LayerCount][];
        for (int l = 0; l < config.LayerCount; l++)
        {
            _keys[l] = new float[(long)capacity * KvDim];
            _values[l] = new float[(long)capacity * KvDim];
        }
    }

    public int Capacity { get; }
    public int KvDim { get; }

    /// <summary>Positions filled so far (the next token goes at this position).</summary>
    public int Length { get; private set; }

    public Span<float> Keys(int layer) => _keys[layer];
    public Span<float> Values(int layer) => _values[layer];
    public ReadOnlyMemory<float> KeysMemory(int layer) => _keys[layer];
    public ReadOnlyMemory<float> ValuesMemory(int layer) => _values[layer];

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
