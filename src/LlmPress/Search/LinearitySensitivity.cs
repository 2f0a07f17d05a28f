using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Search;

/// <summary>
/// Per-layer sensitivity coefficients of the HIGGS linearity theorem (Malinovskii et al., arXiv 2411.17525): for small
/// relative weight errors tₗ = ‖Ŵₗ − Wₗ‖_F/‖Wₗ‖_F, a quality metric grows linearly in the squared errors,
/// metric(Ŵ) ≈ metric(W) + Σₗ αₗ·tₗ². Each αₗ is measured by adding Gaussian noise of known relative size t to layer l
/// alone (quantization noise after a Hadamard rotation behaves like Gaussian noise) and fitting the metric's increase
/// against t² by least squares through the origin over the noise levels.
/// </summary>
public static class LinearitySensitivity
{
    /// <summary>Noise levels t used by default: 0.1 and 0.2 (relative errors of roughly 4- and 3-bit quantization).</summary>
    public static IReadOnlyList<double> DefaultNoiseLevels { get; } = [0.1, 0.2];

    /// <summary>Estimates αₗ for each of <paramref name="layers"/> (each restored afterwards, also on failure).</summary>
    /// <param name="model">The uncompressed model the layers belong to.</param>
    /// <param name="layers">Plain (unrotated, unpacked) linears to measure.</param>
    /// <param name="metric">The quality metric of the model as it currently is (e.g. perplexity or KL on calibration
    /// windows); called 1 + layers·levels times.</param>
    /// <param name="noiseLevels">Relative noise sizes t &gt; 0 (default <see cref="DefaultNoiseLevels"/>).</param>
    /// <param name="seed">Seed of the noise.</param>
    /// <param name="progress">Called with (layers done, layers).</param>
    /// <param name="cancel">Checked between measurements.</param>
    /// <exception cref="ArgumentException">No layers, a packed or rotated layer, or a bad noise level.</exception>
    public static SensitivityResult Estimate(LlamaModel model, IReadOnlyList<LinearLayer> layers, Func<LlamaModel, double> metric,
        IReadOnlyList<double>? noiseLevels = null, int seed = 0, Action<int, int>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(metric);
        noiseLevels ??= DefaultNoiseLevels;
        if (layers.Count == 0) throw new ArgumentException("Give at least one layer.", nameof(layers));
        if (noiseLevels.Count == 0) throw new ArgumentException("Give at least one noise level.", nameof(noiseLevels));
        foreach (double t in noiseLevels)
            if (!(t > 0 && t < 10)) throw new ArgumentException($"Noise levels are relative errors in (0, 10), not {t}.", nameof(noiseLevels));
        foreach (var layer in layers)
            if (layer.Quantized is not null || layer.InputRotationBlockSize is not null)
                throw new ArgumentException($"{layer.Name} runs packed or rotated; sensitivities are measured on the uncompressed model.", nameof(layers));

        double baseMetric = metric(model);
        var squared = new double[layers.Count][];
        var increases = new double[layers.Count][];
        for (int l = 0; l < layers.Count; l++)
        {
            var layer = layers[l];
            var original = layer.Weight;
            float[] w = original.ToFloatArray();
            double norm = 0;
            foreach (float v in w) norm += (double)v * v;
            norm = Math.Sqrt(norm);
            var noisy = new float[w.Length];
            var direction = new float[w.Length];
            var rng = new Random(unchecked(seed * 7919 + l));
            double dirNorm = 0;
            for (int i = 0; i < w.Length; i++)
            {
                direction[i] = (float)rng.NextGaussian();
                dirNorm += (double)direction[i] * direction[i];
            }
            dirNorm = Math.Sqrt(dirNorm);
            squared[l] = new double[noiseLevels.Count];
            increases[l] = new double[noiseLevels.Count];
            try
            {
                for (int k = 0; k < noiseLevels.Count; k++)
                {
                    cancel.ThrowIfCancellationRequested();
                    double t = noiseLevels[k], scale = norm == 0 ? 0 : t * norm / dirNorm;
                    for (int i = 0; i < w.Length; i++) noisy[i] = (float)(w[i] + scale * direction[i]);
                    layer.Weight = WeightView.FromFloats(noisy, layer.OutFeatures, layer.InFeatures);
                    squared[l][k] = t * t;
                    increases[l][k] = metric(model) - baseMetric;
                }
            }
            finally
            {
                layer.Weight = original;
            }
            progress?.Invoke(l + 1, layers.Count);
        }
        return Fit(layers.Select(x => x.Name).ToArray(), baseMetric, squared, increases);
    }

    /// <summary>
    /// Estimates αₗ for every linear of <paramref name="database"/> from its own compression errors: each level of each
    /// linear is installed alone (every other linear uncompressed) and the metric's increase is fitted against that
    /// level's tₗⱼ². GPTQ and SparseGPT shape their error into directions the calibration inputs barely excite, so an
    /// isotropic Gaussian of the same norm costs 2–4× more (stories260K, KL at 3 bits: predicted 1.08 from noise,
    /// measured 0.57) — the theorem holds for the quantizer's own error, not for noise of its size.
    /// </summary>
    /// <param name="model">The uncompressed model the database was built from (restored afterwards, also on failure).</param>
    /// <param name="database">The level database.</param>
    /// <param name="metric">The quality metric of the model as it currently is; called 1 + linears·levels times.</param>
    /// <param name="progress">Called with (linears done, linears).</param>
    /// <param name="cancel">Checked between measurements.</param>
    /// <exception cref="ArgumentException">A linear of the database the model lacks.</exception>
    public static SensitivityResult FromDatabase(LlamaModel model, LevelDatabase database, Func<LlamaModel, double> metric,
        Action<int, int>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(metric);
        int count = database.Linears.Count, levels = database.Levels.Count;
        double baseMetric = metric(model);
        var squared = new double[count][];
        var increases = new double[count][];
        var configuration = new int[count];
        Array.Fill(configuration, LevelDatabase.Uncompressed);
        try
        {
            for (int l = 0; l < count; l++)
            {
                squared[l] = new double[levels];
                increases[l] = new double[levels];
                for (int j = 0; j < levels; j++)
                {
                    cancel.ThrowIfCancellationRequested();
                    configuration[l] = j;
                    database.Apply(model, configuration);
                    squared[l][j] = database.WeightError(l, j);
                    increases[l][j] = metric(model) - baseMetric;
                }
                configuration[l] = LevelDatabase.Uncompressed;
                progress?.Invoke(l + 1, count);
            }
        }
        finally
        {
            database.Restore(model);
        }
        return Fit(database.Linears.Select(x => x.Name).ToArray(), baseMetric, squared, increases);
    }

    // αₗ by least squares through the origin of the increases against t²: α = Σ t²·Δ / Σ t⁴ (0 for a layer whose
    // measurements all had t = 0, e.g. a lossless level only).
    private static SensitivityResult Fit(string[] names, double baseMetric, double[][] squared, double[][] increases)
    {
        var alpha = new double[names.Length];
        for (int l = 0; l < names.Length; l++)
        {
            double num = 0, den = 0;
            for (int k = 0; k < squared[l].Length; k++)
            {
                num += squared[l][k] * increases[l][k];
                den += squared[l][k] * squared[l][k];
            }
            alpha[l] = den > 0 ? num / den : 0;
        }
        return new SensitivityResult(names, alpha, baseMetric, squared, increases);
    }
}

/// <summary>Sensitivity coefficients αₗ (metric increase per unit of squared relative error).</summary>
/// <param name="Layers">Layer names.</param>
/// <param name="Alpha">αₗ per layer.</param>
/// <param name="BaseMetric">The metric of the uncompressed model.</param>
/// <param name="SquaredErrors">Per layer, per measurement: the squared relative weight error t² applied.</param>
/// <param name="Increases">Per layer, per measurement: the measured metric increase.</param>
public sealed record SensitivityResult(IReadOnlyList<string> Layers, double[] Alpha, double BaseMetric, double[][] SquaredErrors, double[][] Increases)
{
    /// <summary>The linearity theorem's prediction: BaseMetric + Σ αₗ·tₗ² for squared relative errors tₗ².</summary>
    /// <exception cref="ArgumentException">Not one error per layer.</exception>
    public double Predict(ReadOnlySpan<double> squaredRelativeErrors)
    {
        if (squaredRelativeErrors.Length != Alpha.Length)
            throw new ArgumentException($"Give one squared error per layer ({Alpha.Length}), not {squaredRelativeErrors.Length}.");
        double sum = BaseMetric;
        for (int l = 0; l < Alpha.Length; l++) sum += Alpha[l] * squaredRelativeErrors[l];
        return sum;
    }
}
