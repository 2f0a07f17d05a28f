using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace LlmPress.Tokenization;

/// <summary>Throw helpers for the tokenizer: messages name the file, the JSON field and what is supported.</summary>
[StackTraceHidden]
internal static class TokenizerThrow
{
    [DoesNotReturn]
    public static void InvalidData(string file, string message) =>
        throw new InvalidDataException($"{file}: {message}");

    [DoesNotReturn]
    public static T InvalidData<T>(string file, string message) =>
        throw new InvalidDataException($"{file}: {message}");

    [DoesNotReturn]
    public static void InvalidJson(string file, Exception inner) =>
        throw new InvalidDataException($"{file}: invalid JSON ({inner.Message})", inner);

    [DoesNotReturn]
    public static void Unsupported(string file, string field, string? value, string supported) =>
        throw new InvalidDataException(
            $"{file}: {field} '{value ?? "null"}' is not supported (supported: {supported})");

    [DoesNotReturn]
    public static void MissingField(string file, string field, string expected) =>
        throw new InvalidDataException($"{file}: {field} is missing or is not {expected}");

    [DoesNotReturn]
    public static void FileNotFound(string path, string hint) =>
        throw new FileNotFoundException($"{path}: not found. {hint}", path);

    [DoesNotReturn]
    public static void TokenIdOutOfRange(int id, int vocabSize) =>
        throw new ArgumentOutOfRangeException(nameof(id), id, $"Token id {id} is not in this tokenizer (vocabulary size {vocabSize}).");
}
