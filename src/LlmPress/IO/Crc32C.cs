using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace LlmPress.IO;

/// <summary>
/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78; iSCSI, ext4, RocksDB): a checksum that catches every burst
/// error up to 32 bits and any odd number of flipped bits, at memory speed with the SSE4.2 instruction (8 bytes per
/// cycle-ish); a table-driven fallback gives the same values elsewhere. Used where SHA-256 would cost seconds per
/// gigabyte and only accidental corruption (a truncated or damaged journal file) has to be caught.
/// </summary>
public static class Crc32C
{
    private const uint Polynomial = 0x82F63B78;
    private static readonly uint[] s_table = BuildTable();

    /// <summary>The CRC of <paramref name="data"/> continued from <paramref name="crc"/> (0 for a fresh checksum).</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        uint c = ~crc;
        int i = 0;
        if (Sse42.X64.IsSupported)
        {
            var words = MemoryMarshal.Cast<byte, ulong>(data);
            ulong c64 = c;
            foreach (ulong w in words) c64 = Sse42.X64.Crc32(c64, w);
            c = (uint)c64;
            i = words.Length * 8;
        }
        for (; i < data.Length; i++) c = s_table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
        return ~c;
    }

    /// <summary>The table-driven reference (no SSE4.2), for tests.</summary>
    internal static uint AppendReference(uint crc, ReadOnlySpan<byte> data)
    {
        uint c = ~crc;
        foreach (byte b in data) c = s_table[(c ^ b) & 0xFF] ^ (c >> 8);
        return ~c;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? Polynomial ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }
}
