using System.Numerics.Tensors;
using LlmPress.Models;

namespace LlmPress.Search;

/// <summary>
/// What dropping each depth unit alone does to a model on calibration windows: KL divergence of the next-token
/// distribution to the dense model's and perplexity, plus the unit's relative residual update ‖Δh‖²/‖h‖² in the dense
/// model (how much the sub-block changes the stream it writes to). Streams one window at a time (memory: one window's
/// logits twice), so it also serves large vocabularies.
/// </summary>
public static class DepthSensitivity
{
    /// <summary>Measures every unit of <paramref name="model"/> (all units kept again afterwards, also on failure).</summary>
    /// <param name="model">The dense model.</param>
    /// <param name="windows">Calibration windows of ≥ 2 tokens.</param>
    /// <param name="progress">Called with (windows done, windows).</param>
    /// <param name="cancel">Checked between windows.</param>
    /// <exception cref="ArgumentException">No windows or a window shorter than 2 tokens.</exception>
    public static DepthSensitivityResult Measure(LlamaModel model, IReadOnlyList<int[]> windows, Action<int, int>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(windows);
        if (windows.Count == 0) throw new ArgumentException("Give at least one calibration window.", nameof(windows));
        int units = DepthUnits.Count(model.Layers.Count), vocab = model.Config.VocabSize;
        var scratch = new ForwardScratch(model.Config);
        var klSum = new double[units];
        var nllSum = new double[units];
        var updateSum = new double[units];
        var streamSum = new double[units];
        double baseNll = 0;
        long rows = 0;
        float[] baseLog = [], log = [];
        var levels = new int[units];
        try
        {
            for (int w = 0; w < windows.Count; w++)
            {
                cancel.ThrowIfCancellationRequested();
                var window = windows[w];
                if (window.Length < 2) throw new ArgumentException($"Window {w} has {window.Length} tokens; at least 2 are needed.", nameof(windows));
                int n = window.Length - 1;
                if (baseLog.Length < n * vocab)
                {
                    baseLog = new float[n * vocab];
                    log = new float[n * vocab];
                }
                DepthUnits.Restore(model);
                ResidualUpdates(model, window, scratch, updateSum, streamSum);
                LogProbabilities(model, window, scratch, baseLog);
                baseNll += Nll(baseLog, window, vocab);
                for (int u = 0; u < units; u++)
                {
                    Array.Fill(levels, DepthUnits.Kept);
                    levels[u] = DepthUnits.Dropped;
                    DepthUnits.Apply(model, levels);
                    LogProbabilities(model, window, scratch, log);
                    nllSum[u] += Nll(log, window, vocab);
                    klSum[u] += Kl(baseLog, log, n, vocab);
                }
                rows += n;
                progress?.Invoke(w + 1, windows.Count);
            }
        }
        finally
        {
            DepthUnits.Restore(model);
        }
        var kl = new double[units];
        var perplexity = new double[units];
        var update = new double[units];
        for (int u = 0; u < units; u++)
        {
            kl[u] = klSum[u] / rows;
            perplexity[u] = Math.Exp(nllSum[u] / rows);
            update[u] = streamSum[u] > 0 ? updateSum[u] / streamSum[u] : 0;
        }
        return new DepthSensitivityResult(Math.Exp(baseNll / rows), kl, perplexity, update);
    }

    // Σ‖Δh‖² and Σ‖h‖² per unit over the window's tokens, with every unit kept: the layer's stages run one by one.
    private static void ResidualUpdates(LlamaModel model, int[] window, ForwardScratch scratch, double[] updateSum, double[] streamSum)
    {
        int n = window.Length, m = n * model.Config.HiddenSize;
        scratch.EnsureCapacity(n);
        var hidden = scratch.Hidden.AsSpan(0, m);
        model.Embed(window, hidden);
        var before = new float[m];
        for (int l = 0; l < model.Layers.Count; l++)
        {
            var layer = model.Layers[l];
            hidden.CopyTo(before);
            layer.NormalizeAttentionInput(n, scratch);
            layer.Attend(n, 0, scratch);
            layer.ProjectAttentionOutput(n, scratch);
            Accumulate(2 * l);
            hidden.CopyTo(before);
            layer.NormalizeMlpInput(n, scratch);
            layer.ActivateMlp(n, scratch);
            layer.ProjectMlpOutput(n, scratch);
            Accumulate(2 * l + 1);
        }

        void Accumulate(int unit)
        {
            var after = scratch.Hidden.AsSpan(0, m);
            double delta = 0, norm = 0;
            for (int i = 0; i < m; i++)
            {
                double x = before[i], dx = after[i] - x;
                delta += dx * dx;
                norm += x * x;
            }
            updateSum[unit] += delta;
            streamSum[unit] += norm;
        }
    }

    // log softmax of the logits of every position but the last: [n − 1, vocab].
    private static void LogProbabilities(LlamaModel model, int[] window, ForwardScratch scratch, float[] result)
    {
        int rows = window.Length - 1, vocab = model.Config.VocabSize, d = model.Config.HiddenSize;
        var normed = model.ForwardHidden(window, scratch);
        var logits = result.AsSpan(0, rows * vocab);
        model.ComputeLogits(normed[..(rows * d)], rows, logits);
        for (int r = 0; r < rows; r++) LogSoftmax(logits.Slice(r * vocab, vocab));
    }

    private static void LogSoftmax(Span<float> row)
    {
        float max = TensorPrimitives.Max(row);
        TensorPrimitives.Subtract(row, max, row);
        double sum = 0;
        foreach (float v in row) sum += Math.Exp(v);
        TensorPrimitives.Subtract(row, (float)Math.Log(sum), row);
    }

    private static double Nll(float[] log, int[] window, int vocab)
    {
        double nll = 0;
        for (int r = 0; r + 1 < window.Length; r++) nll -= log[r * vocab + window[r + 1]];
        return nll;
    }

    private static double Kl(float[] logP, float[] logQ, int rows, int vocab)
    {
        double kl = 0;
        for (int i = 0; i < rows * vocab; i++) kl += Math.Exp(logP[i]) * ((double)logP[i] - logQ[i]);
        return kl;
    }
}

/// <summary>Per depth unit, what dropping it alone does (unit order of <see cref="DepthUnits"/>).</summary>
/// <param name="BasePerplexity">Perplexity of the dense model on the windows.</param>
/// <param name="DropKl">Mean per-token KL(dense ‖ unit dropped).</param>
/// <param name="DropPerplexity">Perplexity with the unit dropped.</param>
/// <param name="RelativeUpdate">Σ‖Δh‖² / Σ‖h‖²: the unit's residual update relative to its input stream, dense model.</param>
public sealed record DepthSensitivityResult(double BasePerplexity, double[] DropKl, double[] DropPerplexity, double[] RelativeUpdate);
