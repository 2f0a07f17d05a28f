using System.Text;

namespace LlmPress.Tokenization;

/// <summary>
/// tokenizers' <c>ByteFallback</c> decoder: runs of "&lt;0xNN&gt;" tokens become the text their bytes encode; a
/// run that is not valid UTF-8 becomes one U+FFFD per byte.
/// </summary>
internal sealed class ByteFallbackTokenDecoder : TokenDecoder
{
    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public override void DecodeChain(List<string> tokens)
    {
        var output = new List<string>(tokens.Count);
        var bytes = new List<byte>();
        foreach (string token in tokens)
        {
            if (TryParseByteToken(token, out byte b))
            {
                bytes.Add(b);
                continue;
            }
            Flush(bytes, output);
            output.Add(token);
        }
        Flush(bytes, output);
        tokens.Clear();
        tokens.AddRange(output);
    }

    /// <summary>Parses "&lt;0xNN&gt;" (either hex case, as Rust's from_str_radix accepts).</summary>
    internal static bool TryParseByteToken(string token, out byte value)
    {
        value = 0;
        return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out value);
    }

    private static void Flush(List<byte> bytes, List<string> output)
    {
        if (bytes.Count == 0) return;
        try
        {
            output.Add(s_strictUtf8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes)));
        }
        catch (DecoderFallbackException)
        {
            for (int i = 0; i < bytes.Count; i++) output.Add("\uFFFD");
        }
        bytes.Clear();
    }
}
