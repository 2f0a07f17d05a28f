using System.Buffers.Binary;

namespace LlmPress.Gguf;

/// <summary>
/// ggml Q4_0 (block_q4_0): blocks of 32 weights, 18 bytes = FP16 d, then 16 bytes where byte j holds element j in its
/// low nibble and element j + 16 in its high nibble; value = (q − 8)·d.
/// Quantization follows ggml's quantize_row_q4_0_ref exactly: max = the value of largest magnitude (first one on
/// ties), d = max/−8, id = d ≠ 0 ? 1/d : 0, q = min(15, (int8)(x·id + 8.5)) (truncation toward zero).
/// </summary>
public static class GgmlQ4_0
{
    public const int BlockSize = 32;
    public const int BlockBytes = 18;

    /// <summary>Quantizes one row x (length a multiple of 32) into <paramref name="blocks"/>.</summary>
    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> blocks)
    {
        for (int b = 0; b < x.Length / BlockSize; b++)
        {
            var v = x.Slice(b * BlockSize, BlockSize);
            var block = blocks.Slice(b * BlockBytes, BlockBytes);
            float amax = 0f, max = 0f;
            foreach (float f in v)
            {
                if (amax < MathF.Abs(f))
                {
                    amax = MathF.Abs(f);
                    max = f;
                }
            }
            float d = max / -8f;
            float id = d != 0f ? 1f / d : 0f;
            BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
            for (int j = 0; j < BlockSize / 2; j++)
            {
                int q0 = Math.Min(15, (int)(sbyte)(int)(v[j] * id + 8.5f));
                int q1 = Math.Min(15, (int)(sbyte)(int)(v[j + 16] * id + 8.5f));
                block[2 + j] = (byte)(q0 | (q1 << 4));
            }
        }
    }

    /// <summary>ggml's dequantize_row_q4_0: y = (q − 8)·d.</summary>
    public static void DequantizeRow(ReadOnlySpan<byte> blocks, Span<float> y)
    {
        for (int b = 0; b < y.Length / BlockSize; b++)
        {
            var block = blocks.Slice(b * BlockBytes, BlockBytes);
            float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
            for (int j = 0; j < BlockSize / 2; j++)
            {
                y[b * BlockSize + j] = ((block[2 + j] & 0xF) - 8) * d;
                y[b * BlockSize + j + 16] = ((block[2 + j] >> 4) - 8) * d;
            }
        }
    }

    /// <summary>
    /// Writes one block from an LlmPress int4-sym code group (codes in [0, 15], zero point 8, FP16 scale s): the same
    /// codes with d = s, moved from LlmPress' order (element 2j low nibble) to ggml's (element j low, j + 16 high).
    /// </summary>
    public static void WriteBlock(Half scale, ReadOnlySpan<byte> codes, Span<byte> block)
    {
        BinaryPrimitives.WriteHalfLittleEndian(block, scale);
        for (int j = 0; j < BlockSize / 2; j++) block[2 + j] = (byte)((codes[j] & 0xF) | (codes[j + 16] << 4));
    }
}
