using LlmPress.Models;

namespace LlmPress.Tests.Models;

public class RotaryEmbeddingTests
{
    [Fact]
    public void Llama3ScalingFollowsThePublishedRule()
    {
        // Llama 3.1 rule: wavelength λ = 2π/f. λ < orig/high → f; λ > orig/low → f/factor;
        // otherwise (1−s)·f/factor + s·f with s = (orig/λ − low)/(high − low).
        var scaling = new RopeScaling(RopeScalingType.Llama3, Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 64);
        var scaled = RotaryEmbedding.InverseFrequencies(16, 500000, scaling);
        var plain = RotaryEmbedding.InverseFrequencies(16, 500000, RopeScaling.NoScaling);
        bool sawKept = false, sawScaled = false, sawBlend = false;
        for (int i = 0; i < plain.Length; i++)
        {
            double wavelen = 2 * Math.PI / plain[i];
            if (wavelen < 64 / 4.0) { Assert.Equal(plain[i], scaled[i]); sawKept = true; }
            else if (wavelen > 64 / 1.0) { Assert.Equal(plain[i] / 8, scaled[i], 15); sawScaled = true; }
            else
            {
                double s = (64 / wavelen - 1) / (4 - 1);
                Assert.Equal((1 - s) * plain[i] / 8 + s * plain[i], scaled[i], 15);
                sawBlend = true;
            }
        }
        Assert.True(sawKept && sawScaled && sawBlend, "head_dim 16, θ = 5e5, original context 64 covers all three bands");
    }

    [Fact]
    public void RotationPreservesNormAndMatchesAngles()
    {
        var rope = new RotaryEmbedding(8, 10000, RopeScaling.NoScaling);
        var x = new float[] { 1, 2, 3, 4, 5, 6, 7, 8 };
        var y = (float[])x.Clone();
        rope.Apply(y, 1, 1, startPosition: 3);
        var inv = RotaryEmbedding.InverseFrequencies(8, 10000, RopeScaling.NoScaling);
        for (int i = 0; i < 4; i++)
        {
            double a = 3 * inv[i];
            Assert.Equal(x[i] * Math.Cos(a) - x[i + 4] * Math.Sin(a), y[i], 5);
            Assert.Equal(x[i + 4] * Math.Cos(a) + x[i] * Math.Sin(a), y[i + 4], 5);
        }
    }
}
