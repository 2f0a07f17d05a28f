using System.Buffers.Binary;

namespace LlmPress.Gguf;

/// <summary>
/// ggml Q8_0 (ggml-common.h block_q8_0): blocks of 32 weights, 34 bytes = FP16 d, then 32 int8 q; value = q·d.
/// Quantization follows ggml's quantize_row_q8_0_ref exactly: amax = max |x|, d = amax/127, id = d ≠ 0 ? 1/d : 0,
/// q = roundf(x·id) (half away from zero), d stored as FP16 (round to nearest even).
/// </summary>
public static class GgmlQ8_0
{
    public const int BlockSize = 32;
    public const int BlockBytes = 34;

    /// <summary>Quantizes one row x (length a multiple of 32) into <paramref name="blocks"/> (length/32 · 34 bytes).</summary>
    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> blocks)
    {
        for (int b = 0; b < x.Length / BlockSize; b++)
        {
            var v = x.Slice(b * BlockSize, BlockSize);
            var block = blocks.Slice(b * BlockBytes, BlockBytes);
            float amax = 0f;
            foreach (float f in v) amax = MathF.Max(amax, MathF.Abs(f));
            float d = amax / 127f;
            float id = d != 0f ? 1f / d : 0f;
            BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
            for (int j = 0; j < BlockSize; j++) block[2 + j] = (byte)(sbyte)MathF.Round(v[j] * id, MidpointRounding.AwayFromZero);
        }
    }

    /// <summary>ggml's dequantize_row_q8_0: y = q·d with d widened from FP16.</summary>
    public static void DequantizeRow(ReadOnlySpan<byte> blocks, Span<float> y)
    {
        for (int b = 0; b < y.Length / BlockSize; b++)
        {
            var block = blocks.Slice(b * BlockBytes, BlockBytes);
            float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
            for (int j = 0; j < BlockSize; j++) y[b * BlockSize + j] = (sbyte)block[2 + j] * d;
        }
    }

    /// <summary>
    /// Writes one block from an LlmPress int8-sym code group: codes c in [0, 255] with zero point 128 and FP16 scale s
    /// are exactly q = c − 128 (in [−128, 127]) with d = s, since s·(c − 128) = q·d.
    /// </summary>
    public static void WriteBlock(Half scale, ReadOnlySpan<byte> codes, Span<byte> block)
    {
        BinaryPrimitives.WriteHalfLittleEndian(block, scale);
        for (int j = 0; j < BlockSize; j++) block[2 + j] = (byte)(sbyte)(codes[j] - 128);
    }
}
