namespace LlmPress.Models;

/// <summary>
/// Rotary position embedding in Hugging Face's rotate-half layout: a head vector x = [x1, x2] (halves of headDim/2)
/// becomes [x1·cos − x2·sin, x2·cos + x1·sin], with angle = position · inv_freq[i].
/// Frequencies (with linear or llama3 scaling) are computed in double, like the reference, then cached as FP32 cos/sin tables.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly int _headDim;
    private readonly double[] _invFreq; // [headDim / 2]
    private float[] _cos = [];          // [positions, headDim / 2]
    private float[] _sin = [];          // [positions, headDim / 2]
    private int _cachedPositions;
    private readonly Lock _growLock = new();

    public RotaryEmbedding(int headDim, double theta, RopeScaling scaling)
    {
        _headDim = headDim;
        _invFreq = InverseFrequencies(headDim, theta, scaling);
    }

    public int HeadDim => _headDim;

    /// <summary>inv_freq[i] = θ^(−2i/d), then scaled (HF _compute_default/linear/llama3_rope_parameters).</summary>
    public static double[] InverseFrequencies(int headDim, double theta, RopeScaling scaling)
    {
        int half = headDim / 2;
        var inv = new double[half];
        for (int i = 0; i < half; i++) inv[i] = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
        switch (scaling.Type)
        {
            case RopeScalingType.Linear:
                for (int i = 0; i < half; i++) inv[i] /= scaling.Factor;
                break;
            case RopeScalingType.Llama3:
                double lowWavelen = scaling.OriginalMaxPositions / scaling.LowFreqFactor;
                double highWavelen = scaling.OriginalMaxPositions / scaling.HighFreqFactor;
                for (int i = 0; i < half; i++)
                {
                    double wavelen = 2 * Math.PI / inv[i];
                    if (wavelen > lowWavelen)
                        inv[i] /= scaling.Factor; // long wavelengths: fully interpolated
                    else if (wavelen >= highWavelen)
                    {
                        // Medium band: blend scaled and unscaled frequencies.
                        double smooth = (scaling.OriginalMaxPositions / wavelen - scaling.LowFreqFactor)
                                        / (scaling.HighFreqFactor - scaling.LowFreqFactor);
                        inv[i] = (1 - smooth) * inv[i] / scaling.Factor + smooth * inv[i];
                    }
                }
                break;
        }
        return inv;
    }

    /// <summary>
    /// Rotates every head of <paramref name="x"/> in place. x: [tokenCount, headCount · headDim]; token t sits at
    /// position startPosition + t.
    /// </summary>
    public unsafe void Apply(Span<float> x, int tokenCount, int headCount, int startPosition)
    {
        EnsurePositions(startPosition + tokenCount);
        int rowWidth = headCount * _headDim;
        if (tokenCount < 256)
        {
            ApplyRows(x, 0, tokenCount, headCount, startPosition);
            return;
        }
        if (x.Length < tokenCount * rowWidth) throw new ArgumentException("x is shorter than [tokenCount, headCount · headDim].", nameof(x));
        // Tokens are independent: split over threads for prefill-sized inputs (same bits for any split).
        fixed (float* px = x)
        {
            nint ax = (nint)px;
            RowParallel.For(tokenCount, (first, count) =>
                ApplyRows(new Span<float>((float*)ax + (nint)first * rowWidth, count * rowWidth), 0, count, headCount, startPosition + first));
        }
    }

    private void ApplyRows(Span<float> x, int first, int tokenCount, int headCount, int startPosition)
    {
        float[] cosTable = _cos, sinTable = _sin;
        int half = _headDim / 2, rowWidth = headCount * _headDim;
        for (int t = first; t < first + tokenCount; t++)
        {
            int pos = startPosition + t;
            ReadOnlySpan<float> cos = cosTable.AsSpan(pos * half, half), sin = sinTable.AsSpan(pos * half, half);
            var row = x.Slice(t * rowWidth, rowWidth);
            for (int h = 0; h < headCount; h++)
                RotateHalf(row.Slice(h * _headDim, _headDim), cos, sin);
        }
    }

    private static void RotateHalf(Span<float> head, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        // Cheap next to the projections (tokens · heads · headDim flops), so a plain loop is enough.
        int half = cos.Length;
        for (int i = 0; i < half; i++)
        {
            float x1 = head[i], x2 = head[i + half];
            head[i] = x1 * cos[i] - x2 * sin[i];
            head[i + half] = x2 * cos[i] + x1 * sin[i];
        }
    }

    private void EnsurePositions(int count)
    {
        if (count <= _cachedPositions) return;
        lock (_growLock)
        {
            if (count <= _cachedPositions) return;
            int capacity = Math.Max(count, Math.Max(64, _cachedPositions * 2));
            int half = _headDim / 2;
            var cos = new float[capacity * half];
            var sin = new float[capacity * half];
            for (int p = 0; p < capacity; p++)
            for (int i = 0; i < half; i++)
            {
                double angle = p * _invFreq[i];
                cos[p * half + i] = (float)Math.Cos(angle);
                sin[p * half + i] = (float)Math.Sin(angle);
            }
            _cos = cos;
            _sin = sin;
            _cachedPositions = capacity;
        }
    }
}
