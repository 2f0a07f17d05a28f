namespace LlmPress.Gguf;

/// <summary>
/// ggml MXFP4 (block_mxfp4): blocks of 32 weights, 17 bytes = E8M0 exponent e, then 16 bytes where byte j holds
/// element j in its low nibble and element j + 16 in its high nibble. ggml stores the E2M1 values doubled
/// (kvalues_mxfp4 = {0, 1, 2, 3, 4, 6, 8, 12, 0, −1, ...}) and halves the scale (GGML_E8M0_TO_FP32_HALF(e) = 2^(e−128)),
/// so value = kvalues[q]·2^(e−128) = E2M1(q)·2^(e−127): the same codes and exponents as OCP MXFP4, except that code 8
/// (−0) decodes to +0.
/// Quantization follows ggml's quantize_row_mxfp4_ref: e = floor(log2 amax) − 2 + 127 (0 when amax = 0), each element
/// the first code with the smallest |kvalues[q]·d − x|.
/// </summary>
public static class GgmlMxfp4
{
    public const int BlockSize = 32;
    public const int BlockBytes = 17;

    private static readonly sbyte[] s_kvalues = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

    /// <summary>GGML_E8M0_TO_FP32_HALF: 2^(e − 128), subnormal for e &lt; 2.</summary>
    public static float HalfScale(byte e) =>
        BitConverter.UInt32BitsToSingle(e < 2 ? 0x0020_0000u << e : (uint)(e - 1) << 23);

    /// <summary>Quantizes one row x (length a multiple of 32) into <paramref name="blocks"/>.</summary>
    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> blocks)
    {
        for (int b = 0; b < x.Length / BlockSize; b++)
        {
            var v = x.Slice(b * BlockSize, BlockSize);
            var block = blocks.Slice(b * BlockBytes, BlockBytes);
            float amax = 0f;
            foreach (float f in v)
                if (amax < MathF.Abs(f)) amax = MathF.Abs(f);
            // ggml converts the float expression to uint8_t; clamped here so that extreme blocks stay defined.
            byte e = amax > 0f ? (byte)Math.Clamp(MathF.Floor(MathF.Log2(amax)) - 2f + 127f, 0f, 254f) : (byte)0;
            float d = HalfScale(e);
            block[0] = e;
            for (int j = 0; j < BlockSize / 2; j++)
                block[1 + j] = (byte)(BestIndex(v[j], d) | (BestIndex(v[j + 16], d) << 4));
        }
    }

    /// <summary>
    /// ggml's best_index_mxfp4 with the same result and half the work: for x ≥ 0 (−0 included) a negative candidate's
    /// error m·d + x is never below index 0's |x|, and for x &lt; 0 neither is a positive one's, so only index 0 and the
    /// candidates of x's sign are tried; along them the (monotonically rounded) errors fall then rise, so the scan stops
    /// at the first increase. Ties keep the earlier index, as ggml's strict &lt; does.
    /// </summary>
    internal static int BestIndex(float x, float d)
    {
        int best = 0;
        float bestError = MathF.Abs(x);
        int first = x >= 0f || float.IsNaN(x) ? 1 : 9;
        for (int i = first; i < first + 7; i++)
        {
            float error = MathF.Abs(s_kvalues[i] * d - x);
            if (error < bestError)
            {
                best = i;
                bestError = error;
            }
            else if (error > bestError)
            {
                break;
            }
        }
        return best;
    }

    /// <summary>ggml's best_index_mxfp4 literally: the first of the 16 codes with the smallest |kvalues[q]·d − x|.</summary>
    internal static int BestIndexReference(float x, float d)
    {
        int best = 0;
        float bestError = MathF.Abs(s_kvalues[0] * d - x);
        for (int i = 1; i < 16; i++)
        {
            float error = MathF.Abs(s_kvalues[i] * d - x);
            if (error < bestError)
            {
                best = i;
                bestError = error;
            }
        }
        return best;
    }

    /// <summary>ggml's dequantize_row_mxfp4: y = kvalues[q]·2^(e−128).</summary>
    public static void DequantizeRow(ReadOnlySpan<byte> blocks, Span<float> y)
    {
        for (int b = 0; b < y.Length / BlockSize; b++)
        {
            var block = blocks.Slice(b * BlockBytes, BlockBytes);
            float d = HalfScale(block[0]);
            for (int j = 0; j < BlockSize / 2; j++)
            {
                y[b * BlockSize + j] = s_kvalues[block[1 + j] & 0xF] * d;
                y[b * BlockSize + j + 16] = s_kvalues[block[1 + j] >> 4] * d;
            }
        }
    }

    /// <summary>
    /// Writes one block from an LlmPress MXFP4 group (E8M0 scale code and 32 E2M1 codes): the same exponent byte and
    /// codes, moved from LlmPress' nibble order (element 2j low) to ggml's (element j low, j + 16 high).
    /// </summary>
    public static void WriteBlock(byte scale, ReadOnlySpan<byte> codes, Span<byte> block)
    {
        block[0] = scale;
        for (int j = 0; j < BlockSize / 2; j++) block[1 + j] = (byte)((codes[j] & 0xF) | (codes[j + 16] << 4));
    }
}
