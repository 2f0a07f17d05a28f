namespace LlmPress.Models;

/// <summary>
/// Where a key or value row sits in a buffer: position p of KV head h starts at p·<see cref="RowStride"/> +
/// h·<see cref="HeadStride"/>, headDim floats long.
/// </summary>
public readonly record struct KvLayout(int RowStride, long HeadStride)
{
    /// <summary>[positions, kvHeads · headDim]: a k/v projection's output as it comes, each position's heads side by side.</summary>
    public static KvLayout Interleaved(int kvHeadCount, int headDim) => new(kvHeadCount * headDim, headDim);

    /// <summary>
    /// [kvHeads, capacity, headDim]: each head's positions one contiguous run (<see cref="KvCache"/>), so a decode
    /// step reads each head's keys and values as one stream.
    /// </summary>
    public static KvLayout HeadMajor(int capacity, int headDim) => new(headDim, (long)capacity * headDim);

    /// <summary>Floats a buffer needs to hold <paramref name="positions"/> positions of <paramref name="kvHeadCount"/> heads.</summary>
    public long RequiredLength(int positions, int kvHeadCount, int headDim) =>
        positions <= 0 ? 0 : (long)(positions - 1) * RowStride + (kvHeadCount - 1) * HeadStride + headDim;
}
