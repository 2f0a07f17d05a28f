using System.Runtime.Intrinsics;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// A 4-bit level table written as small unsigned bytes for <see cref="Int8DotGemv"/>: level(code) = (Bytes[code] −
/// Offset) / Factor exactly, with Factor a power of two and Bytes[code] ≤ <see cref="MaxByte"/>. INT4 (levels 0..15) is
/// the identity (Factor 1, Offset 0); E2M1 (MXFP4/NVFP4, ±{0, ½, 1, 1½, 2, 3, 4, 6}) is ×2 + 12 → 0..24.
/// </summary>
internal sealed class ByteLevels
{
    /// <summary>
    /// Largest byte allowed: vpmaddubsw adds two byte·int8 products into a saturating int16 and the kernel adds the even-
    /// and odd-column results, so 4 · MaxByte · 127 must stay below 32768.
    /// </summary>
    public const int MaxByte = 64;

    private ByteLevels(byte[] bytes, int factor, int offset)
    {
        Bytes = bytes;
        Factor = factor;
        Offset = offset;
        IsIdentity = factor == 1 && offset == 0 && IsIdentityTable(bytes);
        var table = new byte[64];
        for (int i = 0; i < 64; i++) table[i] = bytes[i & 15]; // vpshufb looks up within each 128-bit lane
        Table = Vector512.Create(table);
    }

    /// <summary>[16]: the byte of each code.</summary>
    public byte[] Bytes { get; }
    /// <summary>A power of two: level = (byte − Offset) / Factor.</summary>
    public int Factor { get; }
    public int Offset { get; }
    /// <summary>Bytes[code] = code (INT4): no lookup needed.</summary>
    public bool IsIdentity { get; }
    /// <summary><see cref="Bytes"/> repeated in each 128-bit lane (for vpshufb).</summary>
    public Vector512<byte> Table { get; }

    /// <summary>The byte form of <paramref name="levels"/> ([16]), or null when no factor 1, 2, 4 or 8 makes them small integers.</summary>
    public static ByteLevels? From(float[] levels)
    {
        for (int factor = 1; factor <= 8; factor *= 2)
        {
            bool integers = true;
            double min = double.MaxValue, max = double.MinValue;
            foreach (float level in levels)
            {
                double v = (double)level * factor;
                if (v != Math.Round(v)) integers = false;
                min = Math.Min(min, v);
                max = Math.Max(max, v);
            }
            if (!integers) continue;
            int offset = (int)Math.Max(0, -min);
            if (max + offset > MaxByte) return null;
            var bytes = new byte[16];
            for (int i = 0; i < 16; i++) bytes[i] = (byte)((int)((double)levels[i] * factor) + offset);
            return new ByteLevels(bytes, factor, offset);
        }
        return null;
    }

    private static bool IsIdentityTable(byte[] bytes)
    {
        for (int i = 0; i < 16; i++)
            if (bytes[i] != i) return false;
        return true;
    }
}
