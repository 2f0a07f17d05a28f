using System.Numerics.Tensors;
using LlmPress.Models;

namespace LlmPress.Search;

/// <summary>
/// EvoPress' fitness: the mean per-token KL divergence KL(p ‖ q) of a compressed model's next-token distribution q from
/// the uncompressed model's p, over calibration windows (every position but the last, which has no next token). The
/// uncompressed distributions are computed once, when this object is built, and kept — in full, or as their top K
/// entries (EvoPress' "top-K KL") when the full vocabulary would not fit.
/// </summary>
/// <remarks>
/// Top-K: p keeps its K most likely tokens plus one bucket for the rest (p_rest = 1 − Σ top-K), and q is coarsened the
/// same way (q_rest = 1 − Σ q over those K tokens), so the value is the exact KL of the two coarsened distributions —
/// never more than the full KL (data processing inequality) and equal to it when K is the vocabulary size.
/// </remarks>
public sealed class KlDivergenceFitness
{
    private readonly IReadOnlyList<int[]> _windows;
    private readonly int _vocab, _k, _rows;
    private readonly int[]? _topIndices;      // [windows, rows, K], top-K only
    private readonly float[] _logP;           // [windows, rows, K] (top-K) or [windows, rows, vocab] (full)
    private readonly float[]? _logPRest;      // [windows, rows], top-K only: log(1 − Σ top-K p)
    private readonly float[] _pRest;          // [windows, rows], top-K only
    private ForwardScratch? _scratch;    private float[]? _logits;

    /// <summary>Computes and keeps the reference distributions of <paramref name="baseModel"/> on every window.</summary>
    /// <param name="baseModel">The uncompressed model.</param>
    /// <param name="windows">Calibration windows, all of the same length ≥ 2.</param>
    /// <param name="topK">Keep only the top K probabilities per position (null or ≥ vocabulary: the full distribution).</param>
    /// <exception cref="ArgumentException">No windows, windows of different lengths, or K &lt; 1.</exception>
    public KlDivergenceFitness(LlamaModel baseModel, IReadOnlyList<int[]> windows, int? topK = null)
    {
        ArgumentNullException.ThrowIfNull(baseModel);
        ArgumentNullException.ThrowIfNull(windows);
        if (windows.Count == 0) throw new ArgumentException("The fitness needs at least one calibration window.", nameof(windows));
        int length = windows[0].Length;
        if (length < 2) throw new ArgumentException("Windows need at least 2 tokens.", nameof(windows));
        foreach (var w in windows)
            if (w.Length != length) throw new ArgumentException($"Windows must all have {length} tokens; one has {w.Length}.", nameof(windows));
        if (topK is < 1) throw new ArgumentException($"Top-K must be ≥ 1, not {topK}.", nameof(topK));
        _windows = windows;
        _vocab = baseModel.Config.VocabSize;
        _rows = length - 1;
        _k = topK is int k && k < _vocab ? k : _vocab;
        bool full = _k == _vocab;
        long entries = (long)windows.Count * _rows * _k;
        _logP = new float[entries];
        _pRest = full ? [] : new float[windows.Count * _rows];
        _logPRest = full ? null : new float[windows.Count * _rows];
        _topIndices = full ? null : new int[entries];

        var order = full ? [] : new int[_vocab];
        var probabilities = new float[_vocab];
        for (int w = 0; w < windows.Count; w++)
        {
            var logits = Logits(baseModel, windows[w]);
            for (int r = 0; r < _rows; r++)
            {
                var row = logits.AsSpan(r * _vocab, _vocab);
                long at = ((long)w * _rows + r) * _k;
                if (full)
                {
                    LogSoftmax(row, _logP.AsSpan((int)at, _vocab));
                    continue;
                }
                LogSoftmax(row, probabilities);
                for (int i = 0; i < _vocab; i++) order[i] = i;
                // Top-K by decreasing log-probability, ties to the lower token id.
                Array.Sort(order, (a, b) => probabilities[a] != probabilities[b] ? probabilities[b].CompareTo(probabilities[a]) : a.CompareTo(b));
                double kept = 0;
                for (int j = 0; j < _k; j++)
                {
                    _topIndices![at + j] = order[j];
                    _logP[at + j] = probabilities[order[j]];
                    kept += Math.Exp(probabilities[order[j]]);
                }
                double rest = Math.Max(0, 1 - kept);
                _pRest[w * _rows + r] = (float)rest;
                _logPRest![w * _rows + r] = rest > 0 ? (float)Math.Log(rest) : float.NegativeInfinity;
            }
        }
    }

    /// <summary>Number of windows.</summary>
    public int WindowCount => _windows.Count;

    /// <summary>Probabilities kept per position (the vocabulary size when full).</summary>
    public int TopK => _k;

    /// <summary>Tokens scored per evaluation of one window.</summary>
    public int PositionsPerWindow => _rows;

    /// <summary>
    /// Mean per-token KL(p_base ‖ q_model) over the given windows (indices into the constructor's list). Not thread-safe:
    /// it reuses one scratch for the forward passes.
    /// </summary>
    /// <exception cref="ArgumentException">Another vocabulary, or a window index out of range.</exception>
    public double Evaluate(LlamaModel model, ReadOnlySpan<int> windowIndices)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Config.VocabSize != _vocab)
            throw new ArgumentException($"The model has {model.Config.VocabSize} tokens, the reference {_vocab}; KL needs the same vocabulary.", nameof(model));
        if (windowIndices.IsEmpty) throw new ArgumentException("Give at least one window.", nameof(windowIndices));
        var logQ = new float[_vocab];
        double total = 0;
        foreach (int w in windowIndices)
        {
            if ((uint)w >= (uint)_windows.Count) throw new ArgumentException($"Window {w} does not exist ({_windows.Count} windows).", nameof(windowIndices));
            var logits = Logits(model, _windows[w]);
            for (int r = 0; r < _rows; r++)
            {
                LogSoftmax(logits.AsSpan(r * _vocab, _vocab), logQ);
                total += RowKl(w, r, logQ);
            }
        }
        return total / ((double)windowIndices.Length * _rows);
    }

    // KL of one position: full Σ p(log p − log q), or over the top-K tokens plus the rest bucket.
    private double RowKl(int window, int row, ReadOnlySpan<float> logQ)
    {
        long at = ((long)window * _rows + row) * _k;
        double kl = 0;
        if (_topIndices is null)
        {
            var logP = _logP.AsSpan((int)at, _vocab);
            for (int i = 0; i < _vocab; i++) kl += Math.Exp(logP[i]) * ((double)logP[i] - logQ[i]);
            return kl;
        }
        double qKept = 0;
        for (int j = 0; j < _k; j++)
        {
            double lp = _logP[at + j], lq = logQ[_topIndices[at + j]];
            kl += Math.Exp(lp) * (lp - lq);
            qKept += Math.Exp(lq);
        }
        double pRest = _pRest[window * _rows + row];
        if (pRest > 0) kl += pRest * (_logPRest![window * _rows + row] - Math.Log(Math.Max(1 - qKept, 1e-30)));
        return kl;
    }

    // logits [rows, vocab] of every position but the last.
    private float[] Logits(LlamaModel model, int[] window)
    {
        if (_scratch is null || !ReferenceEquals(_scratchConfig, model.Config))
        {
            _scratch = new ForwardScratch(model.Config);
            _scratchConfig = model.Config;
        }
        _logits ??= new float[(long)_rows * _vocab];
        var normed = model.ForwardHidden(window, _scratch);
        model.ComputeLogits(normed[..(_rows * model.Config.HiddenSize)], _rows, _logits);
        return _logits;
    }

    private ModelConfig? _scratchConfig;

    // log softmax in double-accumulated form: x − max − log Σ exp(x − max).
    private static void LogSoftmax(ReadOnlySpan<float> logits, Span<float> result)
    {
        float max = TensorPrimitives.Max(logits);
        TensorPrimitives.Subtract(logits, max, result);
        double sum = 0;
        foreach (float v in result) sum += Math.Exp(v);
        TensorPrimitives.Subtract(result, (float)Math.Log(sum), result);
    }
}
