using System.Numerics.Tensors;
using LlmPress.Numerics;

namespace LlmPress.Models;

/// <summary>
/// One nn.Linear: y[t, out] = x[t, in] · Wᵀ + b. The weight keeps its stored dtype (usually a view of the
/// memory-mapped checkpoint); compression replaces it through <see cref="Weight"/>.
/// </summary>
public sealed class LinearLayer
{
    private WeightView _weight;

    public LinearLayer(string name, WeightView weight, float[]? bias = null)
    {
        if (bias is not null && bias.Length != weight.Rows)
            throw new ArgumentException($"{name}: bias has {bias.Length} values but the weight has {weight.Rows} rows.", nameof(bias));
        Name = name;
        _weight = weight;
        Bias = bias;
    }

    /// <summary>Checkpoint tensor name without the ".weight" suffix, e.g. "model.layers.3.mlp.up_proj".</summary>
    public string Name { get; }

    public int InFeatures => _weight.Cols;
    public int OutFeatures => _weight.Rows;

    /// <summary>[OutFeatures, InFeatures].</summary>
    public WeightView Weight
    {
        get => _weight;
        set
        {
            if (value.Rows != _weight.Rows || value.Cols != _weight.Cols)
                throw new ArgumentException($"{Name}: replacement weight is [{value.Rows}, {value.Cols}] but the layer is [{_weight.Rows}, {_weight.Cols}].");
            _weight = value;
        }
    }

    /// <summary>[OutFeatures] or null.</summary>
    public float[]? Bias { get; }

    /// <summary>x: [tokenCount, InFeatures] → y: [tokenCount, OutFeatures].</summary>
    public void Forward(ReadOnlySpan<float> x, int tokenCount, Span<float> y)
    {
        Gemm.MultiplyByWeight(x[..(tokenCount * InFeatures)], tokenCount, _weight, y[..(tokenCount * OutFeatures)]);
        if (Bias is { } bias)
            for (int t = 0; t < tokenCount; t++)
            {
                var row = y.Slice(t * OutFeatures, OutFeatures);
                TensorPrimitives.Add(row, bias, row);
            }
    }
}
