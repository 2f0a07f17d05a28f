using LlmPress.Numerics;

namespace LlmPress.IO;

/// <summary>One tensor for <see cref="SafeTensorsWriter"/>: raw little-endian elements, row-major, outermost dimension first.</summary>
/// <param name="Name">Checkpoint name; unique, non-empty, not "__metadata__".</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Dimensions (empty for a scalar).</param>
/// <param name="Data">Exactly product(Shape) × SizeOf(DType) bytes.</param>
public readonly record struct TensorToWrite(string Name, DType DType, long[] Shape, ReadOnlyMemory<byte> Data);
