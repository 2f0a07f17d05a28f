using System.Globalization;

namespace LlmPress.IO;

/// <summary>
/// Memory sizes as users type them: a number with an optional unit K, M, G or T (binary: 1K = 1024 bytes, as in
/// java -Xmx and docker --memory), optionally followed by "B" or "iB", case-insensitive: "4G", "1500M", "2.5GiB",
/// "65536".
/// </summary>
public static class ByteSize
{
    /// <summary>Parses <paramref name="text"/>; false for anything else, including zero, negative or overflowing sizes.</summary>
    public static bool TryParse(string? text, out long bytes)
    {
        bytes = 0;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var s = text.Trim().AsSpan();
        if (s.EndsWith("ib", StringComparison.OrdinalIgnoreCase)) s = s[..^2];
        else if (s.EndsWith("b", StringComparison.OrdinalIgnoreCase)) s = s[..^1];
        long unit = 1;
        if (s.Length > 0)
        {
            unit = char.ToUpperInvariant(s[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, 'T' => 1L << 40, _ => 1 };
            if (unit != 1) s = s[..^1];
        }
        if (!double.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double value)) return false;
        double total = Math.Floor(value * unit);
        if (!(total >= 1) || total >= long.MaxValue) return false;
        bytes = (long)total;
        return true;
    }
}
