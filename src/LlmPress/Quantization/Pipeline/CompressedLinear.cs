using LlmPress.Numerics;

namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// One linear layer as a layer-by-layer compression run left it: either packed codes (quantized, possibly also
/// sparse — the zeros then live in the codes) or a dense FP32 weight (pruned only: exact zeros, the kept values as
/// they will be stored). The module's weight is Name + ".weight".
/// </summary>
public sealed class CompressedLinear
{
    private CompressedLinear(string name, int rows, int cols, PackedWeight? packed, float[]? weight, DType storedType)
    {
        StoredType = storedType;
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        Rows = rows;
        Cols = cols;
        Packed = packed;
        Weight = weight;
    }

    /// <summary>A quantized linear.</summary>
    public static CompressedLinear FromPacked(string name, PackedWeight packed)
    {
        ArgumentNullException.ThrowIfNull(packed);
        return new CompressedLinear(name, packed.Rows, packed.Cols, packed, null, DType.U8);
    }

    /// <summary>
    /// A dense linear, weight [rows, cols] (taken as is), whose values are exactly representable in
    /// <paramref name="storedType"/> (F32, F16 or BF16: the checkpoint's dtype), so records of it may use that dtype.
    /// </summary>
    public static CompressedLinear FromDense(string name, float[] weight, int rows, int cols, DType storedType = DType.F32)
    {
        if (storedType is not (DType.F32 or DType.F16 or DType.BF16)) throw new ArgumentException($"{name}: dense weights are stored as F32, F16 or BF16, not {storedType}.", nameof(storedType));
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.LongLength != (long)rows * cols) throw new ArgumentException($"{name}: weight has {weight.LongLength} values, [{rows}, {cols}] needs {(long)rows * cols}.");
        return new CompressedLinear(name, rows, cols, null, weight, storedType);
    }

    /// <summary>Module name, e.g. "model.layers.3.mlp.down_proj".</summary>
    public string Name { get; }

    /// <summary>Output features.</summary>
    public int Rows { get; }

    /// <summary>Input features.</summary>
    public int Cols { get; }

    /// <summary>The packed weight, or null for a dense one.</summary>
    public PackedWeight? Packed { get; }

    /// <summary>The dense FP32 weight [Rows, Cols], or null for a packed one.</summary>
    public float[]? Weight { get; }

    /// <summary>A dense weight's stored dtype (its values are exact in it); meaningless for a packed one.</summary>
    public DType StoredType { get; }
}
