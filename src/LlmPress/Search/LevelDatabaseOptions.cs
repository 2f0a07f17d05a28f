using System.Globalization;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;
using LlmPress.Sparsity;

namespace LlmPress.Search;

/// <summary>Settings of <see cref="LevelDatabase.Build"/>: which levels, compressed how.</summary>
public sealed record LevelDatabaseOptions
{
    /// <summary>What the levels vary. Default <see cref="LevelKind.Bits"/>.</summary>
    public LevelKind Kind { get; init; } = LevelKind.Bits;

    /// <summary>
    /// The level values in any order: bit widths (integers 2–8) or sparsities in [0, 1), no duplicates. Default
    /// 2, 3, 4, 5, 6 bits.
    /// </summary>
    public IReadOnlyList<double> Levels { get; init; } = [2, 3, 4, 5, 6];

    /// <summary>Bits: GPTQ (default) or RTN.</summary>
    public QuantMethod QuantMethod { get; init; } = QuantMethod.Gptq;

    /// <summary>Bits: columns per group, or null for per channel. Default 128.</summary>
    public int? GroupSize { get; init; } = 128;

    /// <summary>Bits: symmetric INT grid (no zero points). Default false (asymmetric, as GPTQ).</summary>
    public bool Symmetric { get; init; }

    /// <summary>Sparsity: SparseGPT (default), Wanda or magnitude.</summary>
    public PruneMethod PruneMethod { get; init; } = PruneMethod.SparseGpt;

    /// <summary>Hessian dampening as a fraction of mean(diag H) (GPTQ, SparseGPT). Default 0.01.</summary>
    public double DampPercent { get; init; } = 0.01;

    /// <summary>
    /// The level whose result is installed in the model while later layers are calibrated (so errors propagate as in a
    /// model compressed at that level), as a level value; null: the middle of the levels in cost order (4 of 2–6 bits,
    /// the lower middle for an even count). EvoPress builds its database on a 3-bit model: pass 3 for that.
    /// </summary>
    public double? CalibrationLevel { get; init; }

    /// <summary>
    /// The levels in cost order — increasing bits, or decreasing sparsity (increasing non-zeros) — which is the level
    /// index order of the database and its <see cref="LevelSpace"/>.
    /// </summary>
    public double[] OrderedLevels => Kind == LevelKind.Bits ? [.. Levels.Order()] : [.. Levels.OrderDescending()];

    /// <summary>Index of the calibration level in <see cref="OrderedLevels"/>.</summary>
    public int CalibrationIndex
    {
        get
        {
            var ordered = OrderedLevels;
            if (CalibrationLevel is not double c) return (ordered.Length - 1) / 2;
            int i = Array.IndexOf(ordered, c);
            if (i < 0) throw new ArgumentException($"The calibration level {Text(c)} is not one of the levels ({string.Join(", ", ordered.Select(Text))}).");
            return i;
        }
    }

    /// <summary>Method name as on the command line: gptq, rtn, sparsegpt, wanda, magnitude.</summary>
    public string MethodName => Kind == LevelKind.Bits ? QuantizationPipeline.MethodName(QuantMethod) : PruneOptions.MethodName(PruneMethod);

    /// <summary>"bits" or "sparsity".</summary>
    public string KindName => Kind == LevelKind.Bits ? "bits" : "sparsity";

    /// <summary>True when building needs calibration data (every method but RTN and magnitude).</summary>
    public bool NeedsCalibration => Kind == LevelKind.Bits ? QuantMethod == QuantMethod.Gptq : PruneMethod != PruneMethod.Magnitude;

    /// <summary>A level value as written in messages and the manifest ("3", "0.5").</summary>
    public static string Text(double level) => level.ToString("0.####", CultureInfo.InvariantCulture);

    /// <summary>The INT format of bit level <paramref name="bits"/>.</summary>
    public QuantFormat FormatFor(double bits) => QuantFormat.Int((int)bits, GroupSize, Symmetric);

    /// <summary>Checks the settings.</summary>
    /// <exception cref="ArgumentException">No levels, a level out of range or not an integer bit width, a duplicate, an
    /// unsupported method, a calibration level that is not a level, bad dampening or group size.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Levels);
        if (Levels.Count == 0) throw new ArgumentException("Give at least one level.");
        var seen = new HashSet<double>();
        foreach (double level in Levels)
        {
            if (Kind == LevelKind.Bits && !(level >= 2 && level <= 8 && level == Math.Floor(level)))
                throw new ArgumentException($"Bit level {Text(level)} is out of range: bit levels are whole numbers from 2 to 8.");
            if (Kind == LevelKind.Sparsity && !(level >= 0 && level < 1))
                throw new ArgumentException($"Sparsity level {Text(level)} is out of range: sparsities are fractions in [0, 1).");
            if (!seen.Add(level)) throw new ArgumentException($"Level {Text(level)} is given twice; give each level once.");
        }
        if (Kind == LevelKind.Bits && QuantMethod is not (QuantMethod.Gptq or QuantMethod.Rtn))
            throw new ArgumentException($"Bit levels are built with gptq or rtn, not {QuantizationPipeline.MethodName(QuantMethod)}.");
        if (Kind == LevelKind.Sparsity && PruneMethod is not (PruneMethod.SparseGpt or PruneMethod.Wanda or PruneMethod.Magnitude))
            throw new ArgumentException($"Sparsity levels are built with sparsegpt, wanda or magnitude, not {PruneOptions.MethodName(PruneMethod)}.");
        if (GroupSize is < 1) throw new ArgumentException($"The group size must be at least 1, not {GroupSize}.");
        if (!double.IsFinite(DampPercent) || DampPercent < 0) throw new ArgumentException($"Dampening must be finite and ≥ 0, not {DampPercent}.");
        _ = CalibrationIndex;
    }

    /// <summary>The quantize options of bit level <paramref name="bits"/> (what `quantize --format int{b}` runs).</summary>
    internal QuantizeOptions QuantizeOptionsFor(double bits) =>
        new() { Method = QuantMethod, Format = FormatFor(bits), DampPercent = DampPercent };

    /// <summary>The prune options of sparsity level <paramref name="sparsity"/> (what `prune --sparsity s --layout dense` runs).</summary>
    internal PruneOptions PruneOptionsFor(double sparsity) =>
        new() { Method = PruneMethod, Sparsity = SparsityPattern.Unstructured(sparsity), DampPercent = DampPercent, Layout = SparseLayout.Dense };

    /// <summary>Every setting that changes the database's content, for its <see cref="RunFingerprint"/> and manifest.</summary>
    public Dictionary<string, string> FingerprintFields()
    {
        var fields = new Dictionary<string, string>
        {
            ["levels_kind"] = KindName,
            ["levels"] = string.Join(", ", OrderedLevels.Select(Text)),
            ["levels_method"] = MethodName,
            ["calibration_level"] = Text(OrderedLevels[CalibrationIndex]),
            ["damp_percent"] = DampPercent.ToString("R", CultureInfo.InvariantCulture),
        };
        if (Kind == LevelKind.Bits)
        {
            fields["group_size"] = GroupSize is int g ? g.ToString(CultureInfo.InvariantCulture) : "per channel";
            fields["symmetric"] = Symmetric ? "true" : "false";
        }
        return fields;
    }
}
