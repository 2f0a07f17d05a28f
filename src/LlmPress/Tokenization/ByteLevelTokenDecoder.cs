using System.Buffers;
using System.Text;

namespace LlmPress.Tokenization;

/// <summary>
/// tokenizers' <c>ByteLevel</c> decoder: maps every token's characters back to bytes (a token with a character
/// outside the byte alphabet, e.g. an added token with a space, contributes its UTF-8 instead) and decodes all
/// bytes at once as UTF-8, invalid sequences becoming U+FFFD (like Rust's <c>from_utf8_lossy</c>).
/// </summary>
internal sealed class ByteLevelTokenDecoder : TokenDecoder
{
    public override void DecodeChain(List<string> tokens)
    {
        int capacity = 0;
        foreach (string token in tokens) capacity += token.Length * 3;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(16, capacity));
        try
        {
            int count = 0;
            foreach (string token in tokens) count += AppendBytes(token, buffer.AsSpan(count));
            tokens.Clear();
            tokens.Add(Encoding.UTF8.GetString(buffer, 0, count));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Writes the bytes <paramref name="token"/> stands for; returns how many.</summary>
    internal static int AppendBytes(string token, Span<byte> destination)
    {
        for (int i = 0; i < token.Length; i++)
        {
            if (!ByteLevelMapping.TryToByte(token[i], out byte b))
                return Encoding.UTF8.GetBytes(token, destination);
            destination[i] = b;
        }
        return token.Length;
    }
}
