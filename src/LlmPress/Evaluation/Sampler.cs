using System.Numerics.Tensors;

namespace LlmPress.Evaluation;

/// <summary>
/// Picks the next token from logits: greedy (argmax) at temperature 0, otherwise softmax(logits / T) restricted
/// to the smallest set of tokens whose probability reaches top-p (nucleus sampling), drawn with a seeded RNG.
/// </summary>
public sealed class Sampler
{
    private readonly Random _random;
    private float[] _probabilities = [];
    private int[] _order = [];

    /// <param name="temperature">0 = greedy, deterministic.</param>
    /// <param name="topP">1 = sample from the full distribution.</param>
    /// <param name="seed">Seed of the sampling RNG; the same seed gives the same text.</param>
    public Sampler(float temperature = 0, float topP = 1, int seed = 0)
    {
        if (!(temperature >= 0) || float.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "Temperature must be a finite number ≥ 0.");
        if (!(topP > 0 && topP <= 1))
            throw new ArgumentOutOfRangeException(nameof(topP), topP, "top-p must be in (0, 1].");
        Temperature = temperature;
        TopP = topP;
        _random = new Random(seed);
    }

    public float Temperature { get; }
    public float TopP { get; }

    /// <summary>logits: [vocab].</summary>
    public int Sample(ReadOnlySpan<float> logits)
    {
        if (Temperature == 0) return TensorPrimitives.IndexOfMax(logits);
        int n = logits.Length;
        if (_probabilities.Length < n)
        {
            _probabilities = new float[n];
            _order = new int[n];
        }
        var p = _probabilities.AsSpan(0, n);
        TensorPrimitives.Divide(logits, Temperature, p);
        float max = TensorPrimitives.Max(p);
        TensorPrimitives.Subtract(p, max, p);
        TensorPrimitives.Exp(p, p);
        TensorPrimitives.Divide(p, TensorPrimitives.Sum(p), p);

        double draw = _random.NextDouble();
        if (TopP >= 1)
        {
            double acc = 0;
            for (int i = 0; i < n; i++)
                if ((acc += p[i]) > draw) return i;
            return TensorPrimitives.IndexOfMax(p);
        }

        // Nucleus: sort descending by probability (index breaks ties so the order is deterministic).
        var order = _order.AsSpan(0, n);
        for (int i = 0; i < n; i++) order[i] = i;
        var probs = _probabilities;
        order.Sort((a, b) => probs[a] != probs[b] ? probs[b].CompareTo(probs[a]) : a.CompareTo(b));
        double mass = 0;
        int keep = 0;
        while (keep < n && mass < TopP) mass += p[order[keep++]];
        double target = draw * mass, cumulative = 0;
        for (int i = 0; i < keep; i++)
            if ((cumulative += p[order[i]]) > target) return order[i];
        return order[keep - 1];
    }
}
