using System.Text.RegularExpressions;

namespace LlmPress.Quantization.Pipeline;

/// <summary>Settings of <see cref="QuantizationPipeline.Run"/>.</summary>
public sealed record QuantizeOptions
{
    /// <summary>Method. Default <see cref="QuantMethod.Rtn"/>.</summary>
    public QuantMethod Method { get; init; } = QuantMethod.Rtn;

    /// <summary>
    /// Format of every quantized linear layer (before <see cref="FormatFor"/> fits its rotation block to the layer).
    /// Default int4, asymmetric, groups of 128 (GPTQ's usual setting).
    /// </summary>
    public QuantFormat Format { get; init; } = QuantFormat.Int(4, 128, symmetric: false);

    /// <summary>
    /// Hadamard block along the input dimension. MR-GPTQ: the micro-rotation (null: <see cref="DefaultMrGptqBlock"/>);
    /// HIGGS: the largest block (null: 1024); RTN/GPTQ: an optional rotation (null: none). A block given in the format
    /// name ("nvfp4-rot64") counts as given here. Narrow layers may get a smaller block (<see cref="QuantFormat.FitRotationTo"/>).
    /// </summary>
    public int? RotationBlockSize { get; init; }

    /// <summary>GPTQ: quantize columns by decreasing Hessian diagonal (implies static groups). Default false; MR-GPTQ always does.</summary>
    public bool ActOrder { get; init; }

    /// <summary>How group scales are chosen; null: the method's default (MSE for MR-GPTQ, min-max otherwise; HIGGS has no choice).</summary>
    public ScaleSearch? ScaleSearch { get; init; }

    /// <summary>GPTQ dampening as a fraction of mean(diag H). Default 0.01 (gptq.py's percdamp).</summary>
    public double DampPercent { get; init; } = 0.01;

    /// <summary>
    /// Regular expressions over module names ("model.layers.0.self_attn.q_proj"): matching linears stay as stored.
    /// Embeddings are never quantized, lm_head only with <see cref="LmHeadFormat"/>. Default none.
    /// </summary>
    public IReadOnlyList<string> KeepLayers { get; init; } = [];

    /// <summary>
    /// Format of the output projection (lm_head), or null to keep it as stored (the default, as GPTQ tools do). After the
    /// last layer the head is quantized by GPTQ on the Hessian of the final norm's outputs when <see cref="Method"/> is
    /// GPTQ or MR-GPTQ (GPTQModel's lm_head quantization), else rounded to nearest (llama.cpp's quantize does that with
    /// its output tensor). It is read in full at every decode step — a quarter to a half of a small 4-bit model's bytes per
    /// token when kept in BF16 — so an 8-bit head (int8, ≈ Q8_0) speeds decode at little cost in quality. A tied
    /// embedding stays as stored: the checkpoint gets its own quantized head and is written untied.
    /// </summary>
    public QuantFormat? LmHeadFormat { get; init; }

    /// <summary>
    /// NVFP4: q/k/v share one per-tensor global scale, and gate/up another — the smallest of each group's own — because
    /// engines (vLLM) run them as one fused GEMM with one global scale. Default true; false gives every linear its own
    /// scale (slightly finer for the layers with the smaller weights, but not loadable as fused layers).
    /// </summary>
    public bool ShareNvfp4GlobalScale { get; init; } = true;

    /// <summary>True when <see cref="Method"/> needs calibration data.</summary>
    public bool NeedsCalibration => Method is QuantMethod.Gptq or QuantMethod.MrGptq;

    /// <summary>True when the method runs GPTQ's error feedback.</summary>
    public bool UsesGptq => Method is QuantMethod.Gptq or QuantMethod.MrGptq;

    /// <summary>Act-order as run: <see cref="ActOrder"/>, always on for MR-GPTQ (its static activation reordering).</summary>
    public bool EffectiveActOrder => ActOrder || Method == QuantMethod.MrGptq;

    /// <summary>Scale search as run.</summary>
    public ScaleSearch EffectiveScaleSearch =>
        ScaleSearch ?? (Method == QuantMethod.MrGptq ? Quantization.ScaleSearch.Mse : Quantization.ScaleSearch.MinMax);

    /// <summary>
    /// MR-GPTQ's default micro-rotation: 32 columns for MXFP4 and NVFP4 — FP-Quant's inference default
    /// (hadamard_group_size 32, which its kernels support for both formats) and on stories260K a little better than 16
    /// for NVFP4 (README.md). Each block then spans one MXFP4 group or two NVFP4 groups, so a rotation spreads an outlier
    /// only over weights that share its scale or its neighbour's. INT formats use their group size clamped to [16, 128]
    /// (128 per channel).
    /// </summary>
    public static int DefaultMrGptqBlock(QuantFormat format) => format.Kind switch
    {
        QuantKind.Nvfp4 or QuantKind.Mxfp4 => 32,
        _ => format.GroupSize is int g ? Math.Clamp(1 << System.Numerics.BitOperations.Log2((uint)Math.Max(g, 1)), 16, 128) : 128,
    };

    /// <summary>The format as run before fitting to a layer: <see cref="Format"/> with the method's rotation block.</summary>
    public QuantFormat EffectiveFormat
    {
        get
        {
            int? block = RotationBlockSize ?? Format.RotationBlockSize;
            if (Method == QuantMethod.MrGptq) block ??= DefaultMrGptqBlock(Format);
            return block == Format.RotationBlockSize ? Format : Format.WithRotationBlock(block);
        }
    }

    /// <summary>
    /// The format for the linear <paramref name="module"/> with <paramref name="cols"/> input columns, or null when
    /// <see cref="KeepLayers"/> keeps it as stored.
    /// </summary>
    public QuantFormat? FormatFor(string module, int cols)
    {
        foreach (var pattern in KeepLayers)
            if (Regex.IsMatch(module, pattern, RegexOptions.CultureInvariant)) return null;
        return EffectiveFormat.FitRotationTo(cols);
    }

    /// <summary>The lm_head's format fitted to <paramref name="cols"/> hidden columns, or null when it is kept.</summary>
    public QuantFormat? LmHeadFormatFor(int cols) => LmHeadFormat?.FitRotationTo(cols);

    /// <summary>Scale search for the lm_head's round-to-nearest (HIGGS has none: its scale is the block RMS).</summary>
    public ScaleSearch LmHeadScaleSearch => LmHeadFormat?.Kind == QuantKind.Higgs ? Quantization.ScaleSearch.MinMax : EffectiveScaleSearch;

    /// <summary>Checks that method, format and options fit together.</summary>
    /// <exception cref="ArgumentException">A method/format mismatch, a bad rotation block, bad dampening or a bad pattern.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Format);
        ArgumentNullException.ThrowIfNull(KeepLayers);
        if (Method == QuantMethod.Higgs && Format.Kind != QuantKind.Higgs)
            throw new ArgumentException($"Method higgs needs a HIGGS format (higgs2, higgs3, higgs4), not {Format.Name}.");
        if (Method == QuantMethod.MrGptq && Format.Kind == QuantKind.Higgs)
            throw new ArgumentException($"Method mr-gptq works on MXFP4, NVFP4 or INT formats, not {Format.Name}; use --method gptq for GPTQ with a HIGGS grid.");
        if (Format.Kind == QuantKind.Higgs && ScaleSearch == Quantization.ScaleSearch.Mse)
            throw new ArgumentException($"{Format.Name} has no scale search: its scale is the block RMS by definition.");
        if (!double.IsFinite(DampPercent) || DampPercent < 0)
            throw new ArgumentException($"Dampening must be finite and ≥ 0, not {DampPercent}.");
        _ = EffectiveFormat; // validates the rotation block
        foreach (var pattern in KeepLayers)
        {
            try
            {
                _ = new Regex(pattern, RegexOptions.CultureInvariant);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"Keep-layer pattern '{pattern}' is not a valid regular expression: {e.Message}", e);
            }
        }
    }
}
