namespace LlmPress.Quantization;

/// <summary>
/// Dense little-endian bit streams of b-bit codes (b in 1..8): code i occupies bits [i·b, i·b + b) of the stream, bit k
/// of the stream being bit (k mod 8) of byte k / 8. For b = 4 this is "element 2j in the low nibble"; for b = 8 one
/// byte per code. The bits after the last code in the last byte are zero.
/// </summary>
public static class BitPacking
{
    /// <summary>Bytes needed for <paramref name="count"/> codes of <paramref name="bits"/> bits.</summary>
    public static int PackedLength(int count, int bits) => (int)(((long)count * bits + 7) / 8);

    /// <summary>Packs the low <paramref name="bits"/> bits of each code into exactly PackedLength(codes.Length, bits) bytes of <paramref name="packed"/>.</summary>
    public static void Pack(ReadOnlySpan<byte> codes, int bits, Span<byte> packed)
    {
        if ((uint)(bits - 1) >= 8) QuantThrow.ArgumentOutOfRange_PackBits(bits);
        int length = PackedLength(codes.Length, bits);
        if (packed.Length < length) QuantThrow.Argument_DestinationTooShort(nameof(packed), length, packed.Length);
        packed = packed[..length];
        switch (bits)
        {
            case 8:
                codes.CopyTo(packed);
                return;
            case 4:
            {
                int pairs = codes.Length / 2;
                for (int j = 0; j < pairs; j++)
                    packed[j] = (byte)((codes[2 * j] & 0xF) | (codes[2 * j + 1] << 4));
                if ((codes.Length & 1) != 0) packed[pairs] = (byte)(codes[^1] & 0xF);
                return;
            }
            default:
            {
                uint mask = (1u << bits) - 1;
                ulong buffer = 0;
                int filled = 0, o = 0;
                foreach (byte code in codes)
                {
                    buffer |= (ulong)(code & mask) << filled;
                    filled += bits;
                    while (filled >= 8)
                    {
                        packed[o++] = (byte)buffer;
                        buffer >>= 8;
                        filled -= 8;
                    }
                }
                if (filled > 0) packed[o] = (byte)buffer;
                return;
            }
        }
    }

    /// <summary>Code number <paramref name="index"/> of a stream of <paramref name="bits"/>-bit codes.</summary>
    public static int Read(ReadOnlySpan<byte> packed, int bits, int index)
    {
        if ((uint)(bits - 1) >= 8) QuantThrow.ArgumentOutOfRange_PackBits(bits);
        long bit = (long)index * bits;
        int first = (int)(bit >> 3);
        int window = packed[first];
        if (first + 1 < packed.Length) window |= packed[first + 1] << 8; // a code spans at most two bytes
        return (window >> (int)(bit & 7)) & ((1 << bits) - 1);
    }

    /// <summary>Unpacks codes.Length codes of <paramref name="bits"/> bits from <paramref name="packed"/>.</summary>
    public static void Unpack(ReadOnlySpan<byte> packed, int bits, Span<byte> codes)
    {
        if ((uint)(bits - 1) >= 8) QuantThrow.ArgumentOutOfRange_PackBits(bits);
        int length = PackedLength(codes.Length, bits);
        if (packed.Length < length) QuantThrow.Argument_DestinationTooShort(nameof(packed), length, packed.Length);
        switch (bits)
        {
            case 8:
                packed[..codes.Length].CopyTo(codes);
                return;
            case 4:
            {
                int pairs = codes.Length / 2;
                for (int j = 0; j < pairs; j++)
                {
                    byte b = packed[j];
                    codes[2 * j] = (byte)(b & 0xF);
                    codes[2 * j + 1] = (byte)(b >> 4);
                }
                if ((codes.Length & 1) != 0) codes[^1] = (byte)(packed[pairs] & 0xF);
                return;
            }
            default:
            {
                uint mask = (1u << bits) - 1;
                ulong buffer = 0;
                int filled = 0, p = 0;
                for (int i = 0; i < codes.Length; i++)
                {
                    while (filled < bits)
                    {
                        buffer |= (ulong)packed[p++] << filled;
                        filled += 8;
                    }
                    codes[i] = (byte)(buffer & mask);
                    buffer >>= bits;
                    filled -= bits;
                }
                return;
            }
        }
    }
}
