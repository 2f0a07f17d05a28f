using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using LlmPress.Numerics;

namespace LlmPress.IO;

/// <summary>
/// Every exception the IO layer throws, one method per failure. Each message is one line that starts with the file it is
/// about, names the tensor and byte offsets involved, gives expected vs actual values, and ends with a hint.
/// </summary>
[StackTraceHidden]
internal static class IOThrow
{
    // ---- opening files ----

    [DoesNotReturn]
    public static void FileNotFoundException_File(string path) =>
        throw new FileNotFoundException($"{path}: file not found.", path);

    [DoesNotReturn]
    public static void ArgumentException_IsDirectory(string path) =>
        throw new ArgumentException(
            $"{path}: is a directory, not a .safetensors file; open a checkpoint directory with TensorStore.Open.", nameof(path));

    [DoesNotReturn]
    public static void FileNotFoundException_NoCheckpoint(string directory) =>
        throw new FileNotFoundException(
            $"{directory}: no model.safetensors or model.safetensors.index.json in this directory; " +
            "point at a Hugging Face checkpoint folder or at a .safetensors file.", Path.Combine(directory, "model.safetensors"));

    [DoesNotReturn]
    public static void NotSupportedException_TensorTooLarge(string path, string name, long byteLength) =>
        throw new NotSupportedException(
            $"{path}: tensor '{Show(name)}' has {byteLength} bytes, more than one Memory<byte> can address ({int.MaxValue}); " +
            "tensors over 2 GiB cannot be viewed whole.");

    // ---- the 8-byte prefix and the header ----

    [DoesNotReturn]
    public static void InvalidDataException_FileTooShort(string path, long fileLength) =>
        throw new InvalidDataException(
            $"{path}: file is {fileLength} bytes, shorter than the 8-byte header-length prefix; the file is truncated or not a safetensors file.");

    [DoesNotReturn]
    public static void InvalidDataException_HeaderTooLarge(string path, ulong headerLength) =>
        throw new InvalidDataException(
            $"{path}: header length {headerLength} (bytes 0..8) exceeds the safetensors limit of {SafeTensorsHeader.MaxHeaderLength} bytes; " +
            "the file is corrupt or not a safetensors file.");

    [DoesNotReturn]
    public static void InvalidDataException_HeaderPastEnd(string path, ulong headerLength, long fileLength) =>
        throw new InvalidDataException(
            $"{path}: header length {headerLength} (bytes 0..8) exceeds the {fileLength - 8} bytes after the prefix; " +
            "the file is truncated or not a safetensors file.");

    [DoesNotReturn]
    public static void InvalidDataException_HeaderNotUtf8(string path, long headerLength, long badOffset) =>
        throw new InvalidDataException(
            $"{path}: header (bytes 8..{8 + headerLength}) is not valid UTF-8 (bad byte at offset {badOffset}); the file is corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_HeaderNotJson(string path, long headerLength, Exception error) =>
        throw new InvalidDataException(
            $"{path}: header (bytes 8..{8 + headerLength}) is not valid JSON{DescribeJsonError(error, baseOffset: 8)}; the file is corrupt.", error);

    [DoesNotReturn]
    public static void InvalidDataException_HeaderNotObject(string path, JsonValueKind kind) =>
        throw new InvalidDataException(
            $"{path}: header is a JSON {Describe(kind)}, expected an object mapping tensor names to dtype/shape/data_offsets; the file is corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_DuplicateTensor(string path, string name) =>
        throw new InvalidDataException(
            $"{path}: header lists '{Show(name)}' twice; tensor names must be unique, so the file is corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_MetadataNotObject(string path, JsonValueKind kind) =>
        throw new InvalidDataException(
            $"{path}: '__metadata__' is a JSON {Describe(kind)}, expected an object of string values.");

    [DoesNotReturn]
    public static void InvalidDataException_MetadataValueNotString(string path, string key, JsonValueKind kind) =>
        throw new InvalidDataException(
            $"{path}: '__metadata__' entry '{Show(key)}' is a JSON {Describe(kind)}, expected a string (safetensors metadata is string to string).");

    // ---- one tensor's header entry ----

    [DoesNotReturn]
    public static void InvalidDataException_EntryNotObject(string path, string name, JsonValueKind kind) =>
        throw new InvalidDataException(
            $"{path}: tensor '{Show(name)}' is a JSON {Describe(kind)} in the header, expected an object with dtype, shape and data_offsets.");

    [DoesNotReturn]
    public static void InvalidDataException_MissingField(string path, string name, string field) =>
        throw new InvalidDataException(
            $"{path}: tensor '{Show(name)}' has no '{field}' in the header; every tensor needs dtype, shape and data_offsets.");

    [DoesNotReturn]
    public static void InvalidDataException_DuplicateField(string path, string name, string field) =>
        throw new InvalidDataException(
            $"{path}: tensor '{Show(name)}' lists '{field}' twice in the header; the file is corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_BadDType(string path, string name, string dtype) =>
        throw new InvalidDataException(
            $"{path}: tensor '{Show(name)}' has dtype '{Show(dtype)}', which LlmPress does not support " +
            "(expected F32, F16, BF16, F64, I8, U8, I16, U16, I32, U32, I64, U64 or BOOL).");

    [DoesNotReturn]
    public static void InvalidDataException_DTypeNotString(string path, string name, JsonValueKind kind) =>
        throw new InvalidDataException(
            $"{path}: tensor '{Show(name)}' dtype is a JSON {Describe(kind)}, expected a string such as \"F32\".");

    [DoesNotReturn]
    public static void InvalidDataException_BadShape(string path, string name, string rawShape) =>
        throw new InvalidDataException(
            $"{path}: tensor '{Show(name)}' shape {Abbreviate(rawShape)} is not an array of non-negative integers; the header is corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_BadOffsets(string path, string name, string rawOffsets) =>
        throw new InvalidDataException(
            $"{path}: tensor '{Show(name)}' data_offsets {Abbreviate(rawOffsets)} is not [begin, end] with non-negative integers; the header is corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_OffsetsReversed(string path, string name, long begin, long end) =>
        throw new InvalidDataException(
            $"{path}: tensor '{Show(name)}' data_offsets [{begin}, {end}] end before they begin; the header is corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_SizeOverflow(string path, string name, DType type, ReadOnlySpan<long> shape) =>
        throw new InvalidDataException(
            $"{path}: tensor '{Show(name)}' {DTypeInfo.SafeTensorsName(type)} {TensorInfo.FormatShape(shape)} has more bytes than fit in 64 bits; the header is corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_SizeMismatch(string path, string name, DType type, ReadOnlySpan<long> shape,
        long begin, long end, long expectedBytes) =>
        throw new InvalidDataException(
            $"{path}: tensor '{Show(name)}' data_offsets [{begin}, {end}] hold {end - begin} bytes but " +
            $"{DTypeInfo.SafeTensorsName(type)} {TensorInfo.FormatShape(shape)} needs {expectedBytes}; the header is corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_ExceedsData(string path, string name, long begin, long end, long dataLength) =>
        throw new InvalidDataException(
            $"{path}: tensor '{Show(name)}' data_offsets [{begin}, {end}] exceed the data section ({dataLength} bytes); " +
            "the file is truncated or corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_Overlap(string path, string name, long begin, long end,
        string previousName, long previousBegin, long previousEnd, long dataStart) =>
        throw new InvalidDataException(
            $"{path}: tensor '{Show(name)}' data_offsets [{begin}, {end}] overlap tensor '{Show(previousName)}' [{previousBegin}, {previousEnd}] " +
            $"(absolute byte {dataStart + begin}); the header is corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_Gap(string path, string name, long begin, long gapStart, string? previousName, long dataStart) =>
        throw new InvalidDataException(
            $"{path}: data bytes [{gapStart}, {begin}) (absolute {dataStart + gapStart}) before tensor '{Show(name)}' " +
            $"{(previousName is null ? "at the start of the data section" : $"and after tensor '{Show(previousName)}'")} belong to no tensor; " +
            "safetensors requires the tensors to cover the data section without holes, so the header is corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_TrailingBytes(string path, long coveredBytes, long dataLength, long dataStart) =>
        throw new InvalidDataException(
            $"{path}: the tensors cover {coveredBytes} bytes but the data section has {dataLength} " +
            $"({dataLength - coveredBytes} unclaimed bytes from absolute offset {dataStart + coveredBytes}); " +
            "the file has trailing garbage or the header is corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_TensorNotInFile(string path, string name) =>
        throw new InvalidDataException($"{path}: tensor '{Show(name)}' not found.");

    // ---- checkpoints (TensorStore) ----

    [DoesNotReturn]
    public static void InvalidDataException_TensorNotFound(string fileName, string name, string checkpoint) =>
        throw new InvalidDataException($"{fileName}: tensor '{Show(name)}' not found (checkpoint {checkpoint}).");

    [DoesNotReturn]
    public static void InvalidDataException_ShapeMismatch(TensorInfo info, string expectedShape, string checkpoint) =>
        throw new InvalidDataException(
            $"{Path.GetFileName(info.FilePath)}: tensor '{Show(info.Name)}' has shape {info.ShapeText} but {expectedShape} was expected " +
            $"(checkpoint {checkpoint}); the model config does not match the weights.");

    [DoesNotReturn]
    public static void InvalidDataException_NotFloat(TensorInfo info, string checkpoint) =>
        throw new InvalidDataException(
            $"{Path.GetFileName(info.FilePath)}: tensor '{Show(info.Name)}' is {DTypeInfo.SafeTensorsName(info.DType)} {info.ShapeText}, " +
            $"expected F32, F16 or BF16 (checkpoint {checkpoint}); only floating-point weights can be read as floats.");

    [DoesNotReturn]
    public static void InvalidDataException_IndexNotJson(string indexPath, Exception error) =>
        throw new InvalidDataException($"{indexPath}: not valid JSON{DescribeJsonError(error)}; the shard index is corrupt.", error);

    [DoesNotReturn]
    public static void InvalidDataException_IndexNoWeightMap(string indexPath) =>
        throw new InvalidDataException(
            $"{indexPath}: no \"weight_map\" object mapping tensor names to shard files; the shard index is corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_IndexEntryNotString(string indexPath, string name, JsonValueKind kind) =>
        throw new InvalidDataException(
            $"{indexPath}: weight_map entry for tensor '{Show(name)}' is a JSON {Describe(kind)}, expected a shard file name.");

    [DoesNotReturn]
    public static void InvalidDataException_IndexDuplicate(string indexPath, string name) =>
        throw new InvalidDataException($"{indexPath}: weight_map lists tensor '{Show(name)}' twice; the shard index is corrupt.");

    [DoesNotReturn]
    public static void InvalidDataException_IndexBadShardName(string indexPath, string name, string shard) =>
        throw new InvalidDataException(
            $"{indexPath}: weight_map maps tensor '{Show(name)}' to '{Show(shard)}', which is not a file name inside the checkpoint directory.");

    [DoesNotReturn]
    public static void FileNotFoundException_MissingShard(string indexPath, string shardPath, string name) =>
        throw new FileNotFoundException(
            $"{indexPath}: shard '{Path.GetFileName(shardPath)}' (holding tensor '{Show(name)}') is missing; the checkpoint download is incomplete.",
            shardPath);

    [DoesNotReturn]
    public static void InvalidDataException_ShardLacksTensor(string indexPath, string name, string shardPath) =>
        throw new InvalidDataException(
            $"{indexPath}: weight_map maps tensor '{Show(name)}' to '{Path.GetFileName(shardPath)}', but that shard has no such tensor; " +
            "the index and the shards do not belong together.");

    // ---- writing ----

    [DoesNotReturn]
    public static void ArgumentException_BadTensorToWrite(string path, string name, string problem) =>
        throw new ArgumentException($"{path}: cannot write tensor '{Show(name)}': {problem}.", "tensors");

    // ---- helpers ----

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Null => "null",
        _ => "value",
    };

    /// <summary>Where the JSON went wrong: an absolute file offset when the text is one line (safetensors headers are).</summary>
    private static string DescribeJsonError(Exception error, long? baseOffset = null) => error switch
    {
        JsonException { LineNumber: 0, BytePositionInLine: long position } when baseOffset is long start =>
            $" (error at absolute byte {start + position})",
        JsonException { LineNumber: long line, BytePositionInLine: long position } =>
            $" (error at line {line + 1}, byte {position + 1} of the line)",
        InvalidOperationException => " (a string in it cannot be decoded, e.g. a lone UTF-16 surrogate escape)",
        _ => "",
    };

    /// <summary>
    /// A name from a file as it may appear in a one-line message: control characters escaped (a corrupt header can hold
    /// "\n" in a tensor name) and very long names cut.
    /// </summary>
    private static string Show(string text, int maxLength = 200)
    {
        if (text.Length <= maxLength && !text.AsSpan().ContainsAnyInRange('\0', '\x1f')) return text;
        var shown = new System.Text.StringBuilder();
        foreach (char c in text.Length <= maxLength ? text : text[..maxLength])
        {
            if (c < ' ') shown.Append($"\\u{(int)c:x4}");
            else shown.Append(c);
        }
        if (text.Length > maxLength) shown.Append($"... ({text.Length} characters)");
        return shown.ToString();
    }

    private static string Abbreviate(string rawJson) => Show(rawJson, maxLength: 80);
}
