using LlmPress.Numerics;

namespace LlmPress.Models;

/// <summary>
/// Keys and values of every layer for one sequence, so generation processes one new token at a time. Keys are stored
/// after RoPE. Each layer's buffers are [kvHeads, capacity, headDim] (<see cref="KvLayout.HeadMajor"/>): a decode step
/// reads each KV head's keys and values as one contiguous stream from memory, where the projections' interleaved
/// [position, kvHeads · headDim] rows would make it gather headDim-float pieces kvHeads apart (with the cache cold,
/// attention over 256 keys took ~35% less time with each head's rows contiguous, over 1,024 keys ~45%; 9 heads of 64,
/// 3 KV heads, one thread). Values are FP32, or BF16 (rounded once when written) for half the memory and traffic;
/// <see cref="CausalAttention.Forward(ReadOnlyMemory{float}, KvCache, int, int, int, int, int?, Memory{float})"/> reads either.
/// </summary>
public sealed class KvCache
{
    private readonly float[][]? _keys;    // F32: [layer][kvHeads, capacity, headDim]
    private readonly float[][]? _values;
    private readonly ushort[][]? _keyBits;   // BF16: [layer][kvHeads, capacity, headDim]
    private readonly ushort[][]? _valueBits;
    private float[]? _widenedKeys, _widenedValues; // BF16 prefill: one layer widened to FP32, reused

    /// <param name="config">The model (layers, KV heads, head width).</param>
    /// <param name="capacity">Positions the cache holds.</param>
    /// <param name="storage">F32 (the default: keys and values kept exactly as computed) or BF16 (half the memory and half
    /// the bytes a decode step reads from the cache; keys and values rounded to nearest even once, when written).</param>
    public KvCache(ModelConfig config, int capacity, DType storage = DType.F32)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        if (storage is not (DType.F32 or DType.BF16))
            throw new ArgumentException($"A KV cache stores f32 or bf16, not {storage.ToString().ToLowerInvariant()}.", nameof(storage));
        Capacity = capacity;
        KvHeadCount = config.KvHeadCount;
        HeadDim = config.HeadDim;
        StorageType = storage;
        Layout = KvLayout.HeadMajor(capacity, HeadDim);
        long length = (long)KvHeadCount * capacity * HeadDim;
        if (length > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(capacity), $"A KV cache of {capacity} positions needs {length} values per layer, more than one array holds.");
        if (storage == DType.F32)
        {
            _keys = new float[config.LayerCount][];
            _values = new float[config.LayerCount][];
            for (int l = 0; l < config.LayerCount; l++)
            {
                _keys[l] = new float[length];
                _values[l] = new float[length];
            }
        }
        else
        {
            _keyBits = new ushort[config.LayerCount][];
            _valueBits = new ushort[config.LayerCount][];
            for (int l = 0; l < config.LayerCount; l++)
            {
                _keyBits[l] = new ushort[length];
                _valueBits[l] = new ushort[length];
            }
        }
        MemoryBytes = 2L * config.LayerCount * length * (storage == DType.F32 ? sizeof(float) : sizeof(ushort));
    }

    public int Capacity { get; }
    public int KvHeadCount { get; }
    public int HeadDim { get; }

    /// <summary>How keys and values are stored: F32 or BF16.</summary>
    public DType StorageType { get; }

    /// <summary>Bytes the keys and values of all layers take.</summary>
    public long MemoryBytes { get; }

    /// <summary>How each layer's keys and values are laid out.</summary>
    public KvLayout Layout { get; }

    /// <summary>Positions filled so far (the next token goes at this position).</summary>
    public int Length { get; private set; }

    /// <summary>F32 cache: layer <paramref name="layer"/>'s keys, [kvHeads, capacity, headDim].</summary>
    public ReadOnlySpan<float> Keys(int layer) => KeysMemory(layer).Span;

    /// <summary>F32 cache: layer <paramref name="layer"/>'s values, [kvHeads, capacity, headDim].</summary>
    public ReadOnlySpan<float> Values(int layer) => ValuesMemory(layer).Span;

    public ReadOnlyMemory<float> KeysMemory(int layer) => (_keys ?? throw NotF32())[layer];
    public ReadOnlyMemory<float> ValuesMemory(int layer) => (_values ?? throw NotF32())[layer];

    /// <summary>BF16 cache: layer <paramref name="layer"/>'s keys as BF16 bits, [kvHeads, capacity, headDim].</summary>
    internal ushort[] KeyBits(int layer) => (_keyBits ?? throw new InvalidOperationException("This KV cache stores f32."))[layer];

    /// <summary>BF16 cache: layer <paramref name="layer"/>'s values as BF16 bits, [kvHeads, capacity, headDim].</summary>
    internal ushort[] ValueBits(int layer) => (_valueBits ?? throw new InvalidOperationException("This KV cache stores f32."))[layer];

    private static InvalidOperationException NotF32() => new("This KV cache stores bf16; read it through CausalAttention.Forward(queries, cache, layer, ...).");

    /// <summary>
    /// Stores <paramref name="count"/> positions' keys and values, each [count, kvHeads · headDim] as the projections
    /// give them, at positions <paramref name="start"/>.. of layer <paramref name="layer"/> (BF16: rounded to nearest even).
    /// </summary>
    public void Write(int layer, int start, int count, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        int d = HeadDim, kvDim = KvHeadCount * d;
        if (start < 0 || count < 0 || start + count > Capacity)
            throw new ArgumentOutOfRangeException(nameof(count), $"Positions {start}..{start + count} are outside the cache's capacity {Capacity}.");
        if (keys.Length < count * kvDim || values.Length < count * kvDim)
            throw new ArgumentException($"keys/values are shorter than [{count}, {kvDim}].");
        for (int h = 0; h < KvHeadCount; h++)
        {
            int head = (int)(h * Layout.HeadStride);
            for (int t = 0; t < count; t++)
            {
                int to = head + (start + t) * d, from = t * kvDim + h * d;
                if (_keys is not null)
                {
                    keys.Slice(from, d).CopyTo(_keys[layer].AsSpan(to, d));
                    values.Slice(from, d).CopyTo(_values![layer].AsSpan(to, d));
                }
                else
                {
                    FloatConversion.SingleToBFloat16(keys.Slice(from, d), _keyBits![layer].AsSpan(to, d));
                    FloatConversion.SingleToBFloat16(values.Slice(from, d), _valueBits![layer].AsSpan(to, d));
                }
            }
        }
    }

    /// <summary>
    /// BF16 cache: layer <paramref name="layer"/>'s first <paramref name="positions"/> positions widened (exactly) to
    /// FP32 in <see cref="Layout"/>, for attention paths that read FP32 (prefill over a cache). The buffers are the
    /// cache's own, reused by the next call.
    /// </summary>
    internal (float[] Keys, float[] Values) Widen(int layer, int positions)
    {
        long length = Layout.HeadStride * KvHeadCount;
        _widenedKeys ??= new float[length];
        _widenedValues ??= new float[length];
        for (int h = 0; h < KvHeadCount; h++)
        {
            int head = (int)(h * Layout.HeadStride), count = positions * HeadDim;
            FloatConversion.BFloat16ToSingle(KeyBits(layer).AsSpan(head, count), _widenedKeys.AsSpan(head, count));
            FloatConversion.BFloat16ToSingle(ValueBits(layer).AsSpan(head, count), _widenedValues.AsSpan(head, count));
        }
        return (_widenedKeys, _widenedValues);
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
