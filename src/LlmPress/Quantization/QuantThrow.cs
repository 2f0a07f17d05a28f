using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using LlmPress.Numerics;

namespace LlmPress.Quantization;

/// <summary>
/// Every exception the quantization formats throw, one method per failure. Messages start with the format name,
/// give row, column or group and the offending value, and end with a hint.
/// </summary>
[StackTraceHidden]
internal static class QuantThrow
{
    // ---- formats and arguments ----

    [DoesNotReturn]
    public static void Argument_IntBits(int bits) =>
        throw new ArgumentException($"INT quantization supports 2 to 8 bits, not {bits}.", nameof(bits));

    [DoesNotReturn]
    public static void Argument_GroupSize(int groupSize) =>
        throw new ArgumentException(
            $"Group size must be at least 1, not {groupSize}; pass null for one group per row (per channel).", nameof(groupSize));

    [DoesNotReturn]
    public static void Argument_RotationBlock(int blockSize, int minimum) =>
        throw new ArgumentException(
            $"Rotation block size must be a power of two from {minimum} to 65536, not {blockSize}.", "rotationBlockSize");

    [DoesNotReturn]
    public static void Argument_HiggsGrid(int dimension, int gridSize) =>
        throw new ArgumentException(
            $"HIGGS has no grid with p = {dimension}, n = {gridSize}; supported (p, n): (1, 4), (1, 8), (1, 16), (2, 16), (2, 64), (2, 256).");

    [DoesNotReturn]
    public static void Argument_FormatName(string text) =>
        throw new ArgumentException(
            $"'{text}' is not a weight format name; expected e.g. int4-asym-g128, int8-sym-perchannel, mxfp4, nvfp4, nvfp4-rot128, " +
            "higgs-p2-n256 or higgs4 (INT bits 2/3/4/8, group ≥ 1; HIGGS p/n pairs 1/4, 1/8, 1/16, 2/16, 2/64, 2/256).", nameof(text));

    public static ArgumentException HiggsMse(QuantFormat format) =>
        new($"{format}: ScaleSearch.Mse is not available for HIGGS, whose scale is the RMS of each rotated block; use ScaleSearch.MinMax.", "search");

    [DoesNotReturn]
    public static void Argument_HiggsMse(QuantFormat format) => throw HiggsMse(format);

    [DoesNotReturn]
    public static void Argument_MatrixLength(QuantFormat format, int rows, int cols, int length) =>
        throw new ArgumentException(
            $"{format}: weights have {length} elements but [{rows}, {cols}] needs {(long)rows * cols}.", "weights");

    [DoesNotReturn]
    public static void Argument_NonFinite(QuantFormat format, int row, int column, float value) =>
        throw new ArgumentException(
            $"{format}: weight at row {row}, column {column} is {value}; quantization needs finite weights. " +
            "HINT: the checkpoint or an earlier step (e.g. an ill-conditioned GPTQ update) produced NaN/Inf.", "weights");

    [DoesNotReturn]
    public static void Argument_ScaleOverflow(QuantFormat format, int row, int group, float scale) =>
        throw new ArgumentException(
            $"{format}: the scale {scale} of row {row}, group {group} overflows FP16 (max 65504); weights that large cannot be stored with FP16 scales.",
            "weights");

    [DoesNotReturn]
    public static void Argument_GlobalScale(float globalScale) =>
        throw new ArgumentException($"nvfp4: the global scale must be finite and positive, not {globalScale}.", nameof(globalScale));

    [DoesNotReturn]
    public static void Argument_DestinationTooShort(string name, long needed, long actual) =>
        throw new ArgumentException($"'{name}' has {actual} elements but {needed} are needed.", name);

    [DoesNotReturn]
    public static void ArgumentOutOfRange_PackBits(int bits) =>
        throw new ArgumentOutOfRangeException(nameof(bits), bits, "Codes are packed with 1 to 8 bits each.");

    [DoesNotReturn]
    public static void Argument_HadamardLength(int length) =>
        throw new ArgumentException($"Hadamard transforms need a power-of-two length, not {length}.");

    // ---- the column API ----

    [DoesNotReturn]
    public static void ArgumentOutOfRange_Group(QuantFormat format, int group, int groupCount) =>
        throw new ArgumentOutOfRangeException("groupIndex", group, $"{format}: group must be in [0, {groupCount}).");

    [DoesNotReturn]
    public static void ArgumentOutOfRange_Column(QuantFormat format, int column, int columns, int step) =>
        throw new ArgumentOutOfRangeException("column", column,
            $"{format}: column must be in [0, {columns}){(step > 1 ? $" and a multiple of {step} (columns are quantized {step} at a time)" : "")}.");

    [DoesNotReturn]
    public static void Argument_GroupSpan(QuantFormat format, int group, long needed, int actual, int rowStride, int width) =>
        throw new ArgumentException(
            $"{format}: group {group} needs {needed} elements (rows − 1 strides of {rowStride} plus {width} columns) but the span has {actual}. " +
            "HINT: pass the matrix starting at the group's first column, e.g. W.AsSpan(group * GroupSize) with rowStride = columns.", "weights");

    [DoesNotReturn]
    public static void Argument_ColumnSpan(QuantFormat format, string name, int needed, int actual) =>
        throw new ArgumentException($"{format}: '{name}' has {actual} elements but {needed} ([ColumnsPerStep, Rows]) are needed.", name);

    [DoesNotReturn]
    public static void InvalidOperation_GroupNotReady(QuantFormat format, int column, int group) =>
        throw new InvalidOperationException(
            $"{format}: column {column} belongs to group {group}, whose parameters have not been computed. " +
            "HINT: call ComputeGroupParameters when the group's first column is reached, or ComputeAllGroupParameters first (static groups).");

    [DoesNotReturn]
    public static void InvalidOperation_GroupStarted(QuantFormat format, int group) =>
        throw new InvalidOperationException(
            $"{format}: group {group} already has quantized columns; its parameters cannot change any more.");

    [DoesNotReturn]
    public static void InvalidOperation_ColumnTwice(QuantFormat format, int column) =>
        throw new InvalidOperationException($"{format}: column {column} has already been quantized.");

    [DoesNotReturn]
    public static void InvalidOperation_ColumnsMissing(QuantFormat format, int missing, int firstMissing) =>
        throw new InvalidOperationException(
            $"{format}: {missing} column(s) have not been quantized yet (the first is column {firstMissing}); Build needs every column.");

    // ---- reading packed tensors back ----

    [DoesNotReturn]
    public static void InvalidData_MissingTensor(QuantFormat format, string suffix) =>
        throw new InvalidDataException($"{format}: tensor '{suffix}' is missing. HINT: the format name does not match the stored tensors.");

    [DoesNotReturn]
    public static void InvalidData_UnexpectedTensor(QuantFormat format, string suffix) =>
        throw new InvalidDataException($"{format}: unexpected tensor '{suffix}'. HINT: the format name does not match the stored tensors.");

    [DoesNotReturn]
    public static void InvalidData_TensorDType(QuantFormat format, string suffix, DType expected, DType actual) =>
        throw new InvalidDataException($"{format}: tensor '{suffix}' has dtype {actual}, expected {expected}.");

    [DoesNotReturn]
    public static void InvalidData_TensorShape(QuantFormat format, string suffix, long[] expected, long[] actual) =>
        throw new InvalidDataException(
            $"{format}: tensor '{suffix}' has shape [{string.Join(", ", actual)}], expected [{string.Join(", ", expected)}].");

    [DoesNotReturn]
    public static void InvalidData_TensorLength(QuantFormat format, string suffix, long expected, long actual) =>
        throw new InvalidDataException($"{format}: tensor '{suffix}' has {actual} bytes, expected {expected}.");

    [DoesNotReturn]
    public static void InvalidData_BadScale(QuantFormat format, string suffix, int row, int group, string value) =>
        throw new InvalidDataException($"{format}: tensor '{suffix}' holds {value} at row {row}, group {group}; scales must be finite.");

    [DoesNotReturn]
    public static void InvalidData_BadGlobalScale(QuantFormat format, float value) =>
        throw new InvalidDataException($"{format}: global_scale is {value}; it must be finite and positive.");

    [DoesNotReturn]
    public static void InvalidData_BadGrid(QuantFormat format, int index, float value) =>
        throw new InvalidDataException($"{format}: grid value {index} is {value}; grid values must be finite.");

    [DoesNotReturn]
    public static void InvalidData_Resource(string name, string problem) =>
        throw new InvalidDataException($"Embedded resource '{name}': {problem}. HINT: regenerate it (see HiggsGridGenerator).");
}
