using System.Globalization;
using System.Text.RegularExpressions;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Sparsity;

/// <summary>Settings of <see cref="PruningPipeline.Run"/>.</summary>
public sealed record PruneOptions
{
    /// <summary>How weights are chosen and compensated. Default <see cref="PruneMethod.SparseGpt"/> (the reference method).</summary>
    public PruneMethod Method { get; init; } = PruneMethod.SparseGpt;

    /// <summary>Pattern of every pruned linear without an entry in <see cref="LayerSparsity"/>. Default 50% unstructured.</summary>
    public SparsityPattern Sparsity { get; init; } = SparsityPattern.Unstructured(0.5);

    /// <summary>
    /// Per-layer patterns by module name ("model.layers.0.mlp.down_proj"), overriding <see cref="Sparsity"/>; every name
    /// must be a decoder-layer linear of the model (see <see cref="SparsityFile"/>). Default none.
    /// </summary>
    public IReadOnlyDictionary<string, SparsityPattern> LayerSparsity { get; init; } = new Dictionary<string, SparsityPattern>();

    /// <summary>
    /// Regular expressions over module names: matching linears stay as stored (neither pruned nor quantized, even with
    /// a <see cref="LayerSparsity"/> entry). Embeddings and lm_head are never touched. Default none.
    /// </summary>
    public IReadOnlyList<string> KeepLayers { get; init; } = [];

    /// <summary>Dampening of the Hessian as a fraction of mean(diag H) for SparseGPT and iterative OBS. Default 0.01.</summary>
    public double DampPercent { get; init; } = 0.01;

    /// <summary>Iterative OBS: the most iterations per layer. Default 20.</summary>
    public int IobsIterations { get; init; } = 20;

    /// <summary>Storage of pruned, unquantized linears. Default <see cref="SparseLayout.Auto"/>.</summary>
    public SparseLayout Layout { get; init; } = SparseLayout.Auto;

    /// <summary>
    /// Joint mode: also quantize every pruned linear in this format (its <see cref="QuantizeOptions.Method"/>: RTN
    /// quantizes the pruned weights; GPTQ quantizes with SparseGPT's joint error compensation — for sparsegpt in its own
    /// pass, for magnitude and wanda on their fixed mask). Null: prune only. Its KeepLayers and DampPercent are ignored
    /// (this record's count).
    /// </summary>
    public QuantizeOptions? Quantize { get; init; }

    /// <summary>Lower-case method name as on the command line and in reports.</summary>
    public static string MethodName(PruneMethod method) => method switch
    {
        PruneMethod.Magnitude => "magnitude",
        PruneMethod.Wanda => "wanda",
        PruneMethod.Iobs => "iobs",
        _ => "sparsegpt",
    };

    /// <summary>True when a run needs calibration data: every method but magnitude, and GPTQ joint quantization.</summary>
    public bool NeedsCalibration => Method != PruneMethod.Magnitude || Quantize is { UsesGptq: true };

    /// <summary>The quantization settings as the joint step runs them (this record's keep list and dampening), or null.</summary>
    public QuantizeOptions? EffectiveQuantize => Quantize is null ? null : Quantize with { KeepLayers = KeepLayers, DampPercent = DampPercent };

    /// <summary>True when <paramref name="module"/> stays as stored.</summary>
    public bool Keeps(string module)
    {
        foreach (var pattern in KeepLayers)
            if (Regex.IsMatch(module, pattern, RegexOptions.CultureInvariant)) return true;
        return false;
    }

    /// <summary>The pattern of <paramref name="module"/>: its <see cref="LayerSparsity"/> entry, else <see cref="Sparsity"/>.</summary>
    public SparsityPattern PatternFor(string module) => LayerSparsity.TryGetValue(module, out var p) ? p : Sparsity;

    /// <summary>
    /// How a pruned, unquantized linear <paramref name="module"/> [rows, cols] stored as <paramref name="type"/> is
    /// written: bitmask or dense (<see cref="Layout"/>: Auto picks the bitmask for N:M when it is smaller), its format
    /// name in reports ("bitmask-bf16", "dense-f32") and its bytes.
    /// </summary>
    public (bool Bitmask, string Format, long Bytes) StorageFor(string module, DType type, int rows, int cols)
    {
        var pattern = PatternFor(module);
        string dtype = DTypeInfo.SafeTensorsName(type).ToLowerInvariant();
        long dense = (long)rows * cols * DTypeInfo.SizeOf(type);
        if (Layout != SparseLayout.Dense && pattern.IsNOfM && cols % pattern.M == 0)
        {
            long bitmask = SparseBitmask.StorageBytes(pattern, type, rows, cols);
            if (Layout == SparseLayout.Bitmask || bitmask < dense) return (true, "bitmask-" + dtype, bitmask);
        }
        return (false, "dense-" + dtype, dense);
    }

    /// <summary>Checks the settings on their own.</summary>
    /// <exception cref="ArgumentException">A bad combination or value (one line saying what to change).</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(LayerSparsity);
        ArgumentNullException.ThrowIfNull(KeepLayers);
        if (!double.IsFinite(DampPercent) || DampPercent < 0) throw new ArgumentException($"Dampening must be finite and ≥ 0, not {DampPercent}.");
        if (IobsIterations < 1) throw new ArgumentException($"--iobs-iterations must be at least 1, not {IobsIterations}.");
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
        if (Quantize is not { } q) return;
        q.Validate();
        if (Method == PruneMethod.Iobs)
            throw new ArgumentException("Method iobs is prune-only: drop --quantize, or use --method sparsegpt for joint pruning and quantization.");
        if (q.Method is QuantMethod.MrGptq or QuantMethod.Higgs || q.Format.Kind == QuantKind.Higgs || q.EffectiveFormat.RotationBlockSize is not null)
            throw new ArgumentException($"Joint pruning and quantization keeps zeros in the original basis, so it takes no HIGGS or rotated formats " +
                                        $"({QuantizationPipeline.MethodName(q.Method)} {q.EffectiveFormat.Name}); use --quant-method rtn or gptq with int, mxfp4 or nvfp4.");
        if (q.ActOrder)
            throw new ArgumentException("--act-order does not apply to joint pruning and quantization (columns are processed in order, like SparseGPT).");
    }

    /// <summary>
    /// Checks the settings against <paramref name="model"/> before any work: every <see cref="LayerSparsity"/> name is
    /// one of its decoder-layer linears, and every N:M pattern fits its layer's input size.
    /// </summary>
    /// <exception cref="ArgumentException">The first problem, naming the layer.</exception>
    public void Validate(LlamaModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        Validate();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var layer in model.Layers)
            foreach (var linear in layer.Linears)
            {
                names.Add(linear.Name);
                if (!Keeps(linear.Name)) PatternFor(linear.Name).CheckFits(linear.InFeatures, linear.Name);
            }
        foreach (var name in LayerSparsity.Keys.Order(StringComparer.Ordinal))
            if (!names.Contains(name))
                throw new ArgumentException($"Per-layer sparsity names {name}, which is not a decoder-layer linear of the model (e.g. {model.Layers[0].Linears[0].Name}).");
    }

    /// <summary>The settings that change a run's result, for its <see cref="RunFingerprint"/>.</summary>
    public Dictionary<string, string> FingerprintFields()
    {
        var fields = new Dictionary<string, string>
        {
            ["prune_method"] = MethodName(Method),
            ["sparsity"] = Sparsity.Name,
            ["layer_sparsity"] = string.Join(", ", LayerSparsity.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value.Name}")),
            ["keep_layers"] = string.Join(" | ", KeepLayers),
            ["damp_percent"] = DampPercent.ToString("R", CultureInfo.InvariantCulture),
            ["iobs_iterations"] = Method == PruneMethod.Iobs ? IobsIterations.ToString(CultureInfo.InvariantCulture) : "-",
            ["layout"] = Layout.ToString(),
        };
        if (EffectiveQuantize is { } q)
            foreach (var (k, v) in RunFingerprint.QuantizationFields(q))
                fields.TryAdd("quantize_" + k, v);
        else
            fields["quantize"] = "none";
        return fields;
    }
}
