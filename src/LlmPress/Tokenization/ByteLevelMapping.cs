namespace LlmPress.Tokenization;

/// <summary>
/// GPT-2's reversible byte ↔ character mapping used by byte-level BPE vocabularies: printable Latin-1 bytes map to
/// themselves, the other 68 bytes (controls, space, 0x7F–0xA0, 0xAD) to U+0100 onwards, so 0x20 becomes 'Ġ' and
/// 0x0A becomes 'Ċ'.
/// </summary>
internal static class ByteLevelMapping
{
    // Byte → mapped char; mapped chars are all below U+0144, so the reverse table is a small array.
    private static readonly char[] s_byteToChar = BuildByteToChar();
    private static readonly short[] s_charToByte = BuildCharToByte(s_byteToChar);

    /// <summary>The character that stands for <paramref name="value"/> in byte-level vocabularies.</summary>
    public static char ToChar(byte value) => s_byteToChar[value];

    /// <summary>The byte a byte-level character stands for, or false when <paramref name="c"/> is not one.</summary>
    public static bool TryToByte(char c, out byte value)
    {
        short[] table = s_charToByte;
        if (c < table.Length && table[c] >= 0)
        {
            value = (byte)table[c];
            return true;
        }
        value = 0;
        return false;
    }

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    private static short[] BuildCharToByte(char[] byteToChar)
    {
        var table = new short[324];
        Array.Fill(table, (short)-1);
        for (int b = 0; b < 256; b++) table[byteToChar[b]] = (short)b;
        return table;
    }
}
