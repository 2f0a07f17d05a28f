using System.Buffers;

namespace LlmPress.Tokenization;

/// <summary>Per-call buffers of one <see cref="Tokenizer.Encode"/>: pooled, so encoding allocates little per piece.</summary>
internal sealed class EncodeScratch : IDisposable
{
    private byte[] _bytes = ArrayPool<byte>.Shared.Rent(1024);
    private char[] _chars = ArrayPool<char>.Shared.Rent(1024);

    public List<TextPiece> Pieces { get; } = new();

    public List<TextSegment> Segments { get; } = new();

    /// <summary>A byte buffer of at least <paramref name="length"/> bytes (contents not preserved).</summary>
    public byte[] Bytes(int length)
    {
        if (_bytes.Length < length)
        {
            ArrayPool<byte>.Shared.Return(_bytes);
            _bytes = ArrayPool<byte>.Shared.Rent(length);
        }
        return _bytes;
    }

    /// <summary>A char buffer of at least <paramref name="length"/> chars (contents not preserved).</summary>
    public char[] Chars(int length)
    {
        if (_chars.Length < length)
        {
            ArrayPool<char>.Shared.Return(_chars);
            _chars = ArrayPool<char>.Shared.Rent(length);
        }
        return _chars;
    }

    public void Dispose()
    {
        ArrayPool<byte>.Shared.Return(_bytes);
        ArrayPool<char>.Shared.Return(_chars);
        _bytes = [];
        _chars = [];
    }
}
