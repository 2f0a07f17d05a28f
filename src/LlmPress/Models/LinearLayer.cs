using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using LlmPress.Numerics;

namespace LlmPress.Models;

/// <summary>
/// One nn.Linear: y[t, out] = x[t, in] · Wᵀ + b. The weight keeps its stored dtype (usually a view of the
/// memory-mapped checkpoint) or a low-bit packed form (<see cref="SetQuantizedWeight"/>); compression replaces it
/// through <see cref="Weight"/> or <see cref="SetRotatedWeight"/>.
/// </summary>
/// <remarks>
/// Rotated formats (MR-GPTQ, HIGGS) store W' = pad(W)·R with R = diag(H_b/√b, …) block-diagonal and orthonormal.
/// Such a layer keeps W' as it is and rotates its input online instead: y = (pad(x)·R)·W'ᵀ = x·Wᵀ, since R·Rᵀ = I.
/// This is how an inference engine runs these formats (the rotation costs O(in · log b) per token, the GEMM
/// O(in · out)), and it keeps the weight in the basis its quantization grid lives in.
/// </remarks>
public sealed class LinearLayer
{
    private WeightView _weight;          // the stored or replaced weight; unused while _quantized is set
    private QuantizedMatrix? _quantized; // when set, the product runs from the codes

    public LinearLayer(string name, WeightView weight, float[]? bias = null)
    {
        if (bias is not null && bias.Length != weight.Rows)
            throw new ArgumentException($"{name}: bias has {bias.Length} values but the weight has {weight.Rows} rows.", nameof(bias));
        Name = name;
        _weight = weight;
        InFeatures = weight.Cols;
        OutFeatures = weight.Rows;
        Bias = bias;
    }

    private LinearLayer(string name, int outFeatures, int inFeatures, float[]? bias)
    {
        if (bias is not null && bias.Length != outFeatures)
            throw new ArgumentException($"{name}: bias has {bias.Length} values but the layer has {outFeatures} outputs.", nameof(bias));
        Name = name;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Bias = bias;
    }

    /// <summary>
    /// A layer of <paramref name="inFeatures"/> inputs whose weight is stored in the rotated basis (see
    /// <see cref="SetRotatedWeight"/>): rotatedWeight is [out, ⌈inFeatures/b⌉·b].
    /// </summary>
    public static LinearLayer Rotated(string name, int inFeatures, WeightView rotatedWeight, int blockSize, float[]? bias = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inFeatures);
        var layer = new LinearLayer(name, rotatedWeight.Rows, inFeatures, bias) { _weight = rotatedWeight };
        layer.SetRotatedWeight(rotatedWeight, blockSize);
        return layer;
    }

    /// <summary>A layer of <paramref name="inFeatures"/> inputs that runs from a packed matrix (see <see cref="SetQuantizedWeight"/>).</summary>
    public static LinearLayer FromQuantized(string name, int inFeatures, QuantizedMatrix matrix, int? rotationBlockSize, float[]? bias = null)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inFeatures);
        var layer = new LinearLayer(name, matrix.Rows, inFeatures, bias);
        layer.SetQuantizedWeight(matrix, rotationBlockSize);
        return layer;
    }

    /// <summary>Checkpoint tensor name without the ".weight" suffix, e.g. "model.layers.3.mlp.up_proj".</summary>
    public string Name { get; }

    /// <summary>Input features of the layer (of x, not of a padded rotated weight).</summary>
    public int InFeatures { get; }

    public int OutFeatures { get; }

    /// <summary>
    /// The weight as multiplied: [OutFeatures, InFeatures], or [OutFeatures, InFeatures rounded up to the rotation
    /// block] in the rotated basis when <see cref="InputRotationBlockSize"/> is set; for a layer running from a
    /// <see cref="Quantized"/> matrix, an FP32 copy decoded on each read (for inspection, not for the hot path).
    /// Setting it (original basis, [OutFeatures, InFeatures]) removes any input rotation and packed matrix.
    /// </summary>
    public WeightView Weight
    {
        get => _quantized is { } q ? WeightView.FromFloats(q.Dequantize(), q.Rows, q.Cols) : _weight;
        set
        {
            if (value.Rows != OutFeatures || value.Cols != InFeatures)
                throw new ArgumentException($"{Name}: replacement weight is [{value.Rows}, {value.Cols}] but the layer is [{OutFeatures}, {InFeatures}].");
            _weight = value;
            _quantized = null;
            InputRotationBlockSize = null;
        }
    }

    /// <summary>The low-bit matrix the layer multiplies straight from (packed kernels), or null.</summary>
    public QuantizedMatrix? Quantized => _quantized;

    /// <summary>Bytes of weight data the layer holds or maps: the packed matrix, or the stored weight.</summary>
    public long WeightBytes => _quantized?.MemoryBytes ?? _weight.Data.Length;

    /// <summary>
    /// Block size b of the online input rotation (x ← pad(x)·diag(H_b/√b, …) before the product), or null for none.
    /// </summary>
    public int? InputRotationBlockSize { get; private set; }

    /// <summary>Input columns of the weight as multiplied: InFeatures, padded to the rotation block when there is one.</summary>
    public int WeightColumns => InputRotationBlockSize is int b ? PaddedColumns(b) : InFeatures;

    /// <summary>
    /// Installs a weight in the rotated basis, W' = pad(W)·diag(H_b/√b, …) of shape [OutFeatures, ⌈InFeatures/b⌉·b],
    /// and from now on rotates every input the same way so the layer still computes x·Wᵀ.
    /// </summary>
    /// <exception cref="ArgumentException">b is not a power of two in [2, 65536], or the shape is not the padded one.</exception>
    public void SetRotatedWeight(WeightView rotatedWeight, int blockSize)
    {
        CheckBlock(blockSize);
        int padded = PaddedColumns(blockSize);
        if (rotatedWeight.Rows != OutFeatures || rotatedWeight.Cols != padded)
            throw new ArgumentException($"{Name}: rotated weight is [{rotatedWeight.Rows}, {rotatedWeight.Cols}] but rotation block {blockSize} needs [{OutFeatures}, {padded}].");
        _weight = rotatedWeight;
        _quantized = null;
        InputRotationBlockSize = blockSize;
    }

    /// <summary>
    /// Runs the layer from a low-bit matrix with the packed kernels: [OutFeatures, InFeatures] or, with a rotation
    /// block b, [OutFeatures, ⌈InFeatures/b⌉·b] in the rotated basis (inputs are then rotated online).
    /// </summary>
    /// <exception cref="ArgumentException">The shape does not fit the layer, or b is not a power of two in [2, 65536].</exception>
    public void SetQuantizedWeight(QuantizedMatrix matrix, int? rotationBlockSize)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        if (rotationBlockSize is int b) CheckBlock(b);
        int cols = rotationBlockSize is int block ? PaddedColumns(block) : InFeatures;
        if (matrix.Rows != OutFeatures || matrix.Cols != cols)
            throw new ArgumentException($"{Name}: packed matrix is [{matrix.Rows}, {matrix.Cols}] but the layer needs [{OutFeatures}, {cols}].", nameof(matrix));
        _quantized = matrix;
        _weight = default;
        InputRotationBlockSize = rotationBlockSize;
    }

    /// <summary>[OutFeatures] or null.</summary>
    public float[]? Bias { get; }

    /// <summary>x: [tokenCount, InFeatures] → y: [tokenCount, OutFeatures].</summary>
    public void Forward(ReadOnlySpan<float> x, int tokenCount, Span<float> y)
    {
        x = x[..(tokenCount * InFeatures)];
        y = y[..(tokenCount * OutFeatures)];
        if (InputRotationBlockSize is not null) ForwardRotated(x, tokenCount, y);
        else Multiply(x, tokenCount, y);
        if (Bias is { } bias)
            for (int t = 0; t < tokenCount; t++)
            {
                var row = y.Slice(t * OutFeatures, OutFeatures);
                TensorPrimitives.Add(row, bias, row);
            }
    }

    private void Multiply(ReadOnlySpan<float> x, int tokenCount, Span<float> y)
    {
        if (_quantized is { } q) Gemm.MultiplyByQuantized(x, tokenCount, q, y, int8Activations: DecodeActivations.AppliesTo(tokenCount));
        else Gemm.MultiplyByWeight(x, tokenCount, _weight, y);
    }

    private void ForwardRotated(ReadOnlySpan<float> x, int tokenCount, Span<float> y)
    {
        float[] buffer = ArrayPool<float>.Shared.Rent(tokenCount * WeightColumns);
        try
        {
            var rotated = buffer.AsSpan(0, tokenCount * WeightColumns);
            RotateInputs(x, tokenCount, rotated);
            Multiply(rotated, tokenCount, y);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// x: [tokenCount, InFeatures] → rotated: [tokenCount, WeightColumns], each row zero-padded and transformed block
    /// by block, as the layer rotates its inputs (<see cref="InputRotationBlockSize"/> must be set).
    /// </summary>
    internal void RotateInputs(ReadOnlySpan<float> x, int tokenCount, Span<float> rotated)
    {
        int cols = WeightColumns, blockSize = InputRotationBlockSize ?? throw new InvalidOperationException($"{Name} has no input rotation.");
        rotated = rotated[..(tokenCount * cols)];
        for (int t = 0; t < tokenCount; t++)
        {
            var row = rotated.Slice(t * cols, cols);
            x.Slice(t * InFeatures, InFeatures).CopyTo(row);
            row[InFeatures..].Clear();
        }
        // The blocks of all rows are consecutive runs of blockSize values, so one batched transform covers them.
        HadamardTransform.Transform(rotated, blockSize, normalize: true);
    }

    private int PaddedColumns(int blockSize) => checked((InFeatures + blockSize - 1) / blockSize * blockSize);

    private void CheckBlock(int blockSize)
    {
        if (blockSize < 2 || blockSize > HadamardTransform.MaxLength || !BitOperations.IsPow2(blockSize))
            throw new ArgumentException($"{Name}: rotation block {blockSize} is not a power of two from 2 to {HadamardTransform.MaxLength}.", nameof(blockSize));
    }
}
