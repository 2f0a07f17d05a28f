using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using LlmPress.Numerics;

namespace LlmPress.Models;

/// <summary>
/// One nn.Linear: y[t, out] = x[t, in] · Wᵀ + b. The weight keeps its stored dtype (usually a view of the
/// memory-mapped checkpoint); compression replaces it through <see cref="Weight"/> or <see cref="SetRotatedWeight"/>.
/// </summary>
/// <remarks>
/// Rotated formats (MR-GPTQ, HIGGS) store W' = pad(W)·R with R = diag(H_b/√b, …) block-diagonal and orthonormal.
/// Such a layer keeps W' as it is and rotates its input online instead: y = (pad(x)·R)·W'ᵀ = x·Wᵀ, since R·Rᵀ = I.
/// This is how an inference engine runs these formats (the rotation costs O(in · log b) per token, the GEMM
/// O(in · out)), and it keeps the weight in the basis its quantization grid lives in.
/// </remarks>
public sealed class LinearLayer
{
    private WeightView _weight;

    public LinearLayer(string name, WeightView weight, float[]? bias = null)
    {
        if (bias is not null && bias.Length != weight.Rows)
            throw new ArgumentException($"{name}: bias has {bias.Length} values but the weight has {weight.Rows} rows.", nameof(bias));
        Name = name;
        _weight = weight;
        InFeatures = weight.Cols;
        Bias = bias;
    }

    /// <summary>
    /// A layer of <paramref name="inFeatures"/> inputs whose weight is stored in the rotated basis (see
    /// <see cref="SetRotatedWeight"/>): rotatedWeight is [out, ⌈inFeatures/b⌉·b].
    /// </summary>
    public static LinearLayer Rotated(string name, int inFeatures, WeightView rotatedWeight, int blockSize, float[]? bias = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inFeatures);
        if (inFeatures > rotatedWeight.Cols)
            throw new ArgumentException($"{name}: rotated weight has {rotatedWeight.Cols} columns, fewer than the {inFeatures} inputs.", nameof(rotatedWeight));
        var layer = new LinearLayer(name, rotatedWeight, bias, inFeatures);
        layer.SetRotatedWeight(rotatedWeight, blockSize);
        return layer;
    }

    private LinearLayer(string name, WeightView weight, float[]? bias, int inFeatures) : this(name, weight, bias) => InFeatures = inFeatures;

    /// <summary>Checkpoint tensor name without the ".weight" suffix, e.g. "model.layers.3.mlp.up_proj".</summary>
    public string Name { get; }

    /// <summary>Input features of the layer (of x, not of a padded rotated weight).</summary>
    public int InFeatures { get; }

    public int OutFeatures => _weight.Rows;

    /// <summary>
    /// The weight as multiplied: [OutFeatures, InFeatures], or [OutFeatures, InFeatures rounded up to the rotation
    /// block] in the rotated basis when <see cref="InputRotationBlockSize"/> is set. Setting it (original basis,
    /// [OutFeatures, InFeatures]) removes any input rotation.
    /// </summary>
    public WeightView Weight
    {
        get => _weight;
        set
        {
            if (value.Rows != _weight.Rows || value.Cols != InFeatures)
                throw new ArgumentException($"{Name}: replacement weight is [{value.Rows}, {value.Cols}] but the layer is [{_weight.Rows}, {InFeatures}].");
            _weight = value;
            InputRotationBlockSize = null;
        }
    }

    /// <summary>
    /// Block size b of the online input rotation (x ← pad(x)·diag(H_b/√b, …) before the product), or null for none.
    /// </summary>
    public int? InputRotationBlockSize { get; private set; }

    /// <summary>Input columns of <see cref="Weight"/>: InFeatures, padded to the rotation block when there is one.</summary>
    public int WeightColumns => _weight.Cols;

    /// <summary>
    /// Installs a weight in the rotated basis, W' = pad(W)·diag(H_b/√b, …) of shape [OutFeatures, ⌈InFeatures/b⌉·b],
    /// and from now on rotates every input the same way so the layer still computes x·Wᵀ.
    /// </summary>
    /// <exception cref="ArgumentException">b is not a power of two in [2, 65536], or the shape is not the padded one.</exception>
    public void SetRotatedWeight(WeightView rotatedWeight, int blockSize)
    {
        if (blockSize < 2 || blockSize > HadamardTransform.MaxLength || !BitOperations.IsPow2(blockSize))
            throw new ArgumentException($"{Name}: rotation block {blockSize} is not a power of two from 2 to {HadamardTransform.MaxLength}.", nameof(blockSize));
        int padded = checked((InFeatures + blockSize - 1) / blockSize * blockSize);
        if (rotatedWeight.Rows != _weight.Rows || rotatedWeight.Cols != padded)
            throw new ArgumentException($"{Name}: rotated weight is [{rotatedWeight.Rows}, {rotatedWeight.Cols}] but rotation block {blockSize} needs [{_weight.Rows}, {padded}].");
        _weight = rotatedWeight;
        InputRotationBlockSize = blockSize;
    }

    /// <summary>[OutFeatures] or null.</summary>
    public float[]? Bias { get; }

    /// <summary>x: [tokenCount, InFeatures] → y: [tokenCount, OutFeatures].</summary>
    public void Forward(ReadOnlySpan<float> x, int tokenCount, Span<float> y)
    {
        x = x[..(tokenCount * InFeatures)];
        y = y[..(tokenCount * OutFeatures)];
        if (InputRotationBlockSize is int b) ForwardRotated(x, tokenCount, b, y);
        else Gemm.MultiplyByWeight(x, tokenCount, _weight, y);
        if (Bias is { } bias)
            for (int t = 0; t < tokenCount; t++)
            {
                var row = y.Slice(t * OutFeatures, OutFeatures);
                TensorPrimitives.Add(row, bias, row);
            }
    }

    private void ForwardRotated(ReadOnlySpan<float> x, int tokenCount, int blockSize, Span<float> y)
    {
        int cols = WeightColumns;
        float[] buffer = ArrayPool<float>.Shared.Rent(tokenCount * cols);
        try
        {
            // rotated: [tokenCount, cols], each row zero-padded and transformed block by block (the blocks of all rows
            // are consecutive runs of blockSize values, so one batched transform covers them).
            var rotated = buffer.AsSpan(0, tokenCount * cols);
            for (int t = 0; t < tokenCount; t++)
            {
                var row = rotated.Slice(t * cols, cols);
                x.Slice(t * InFeatures, InFeatures).CopyTo(row);
                row[InFeatures..].Clear();
            }
            HadamardTransform.Transform(rotated, blockSize, normalize: true);
            Gemm.MultiplyByWeight(rotated, tokenCount, _weight, y);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }
}
