using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace LlmPress.Search;

/// <summary>One (linear, level) entry of a <see cref="LevelDatabase"/>.</summary>
/// <param name="Format">How the level is stored: an INT format name ("int3-asym-g128") or "dense-&lt;dtype&gt;" for a
/// pruned level (exact zeros, the kept values in the source dtype).</param>
/// <param name="Bytes">Bytes of the level's tensors (packed codes, scales and zero points; or the dense weight).</param>
/// <param name="BitsPerWeight">Actual storage bits per weight: 8·Bytes/(rows·cols).</param>
/// <param name="NonZeros">Weights kept (rows·cols minus the pruned ones; rows·cols for bit levels).</param>
/// <param name="WeightError">‖W − Ŵ‖²/‖W‖² against the source weight.</param>
/// <param name="OutputError">tr(ΔW·H·ΔWᵀ)/tr(W·H·Wᵀ) on the calibration inputs of the layer (with the earlier layers at
/// the calibration level); null without calibration data.</param>
public sealed record LevelEntry(string Format, long Bytes, double BitsPerWeight, long NonZeros, double WeightError, double? OutputError);

/// <summary>One linear of a <see cref="LevelDatabase"/> and its levels, in the database's level order.</summary>
public sealed record LinearLevels(string Name, int Rows, int Cols, IReadOnlyList<LevelEntry> Levels);

/// <summary>One decoder layer's file of a <see cref="LevelDatabase"/>.</summary>
/// <param name="File">File name in the database directory ("layer-00003.safetensors").</param>
/// <param name="Bytes">File size.</param>
/// <param name="Sha256">SHA-256 of the file (hex).</param>
/// <param name="Linears">The layer's linears in model order.</param>
public sealed record LayerFileEntry(string File, long Bytes, string Sha256, IReadOnlyList<LinearLevels> Linears);

/// <summary>
/// levels.json, the manifest of a level database: what was built, from which model, and per decoder layer its file
/// and per linear and level its size and errors. Written last (atomically): a directory without it is not a database.
/// </summary>
public sealed record LevelDatabaseManifest
{
    /// <summary>Layout version this LlmPress writes and reads.</summary>
    public const int CurrentVersion = 1;

    /// <summary>Layout version.</summary>
    public int FormatVersion { get; init; }

    /// <summary>"bits" or "sparsity".</summary>
    public string Kind { get; init; } = "";

    /// <summary>Level values in cost order (increasing bits, decreasing sparsity): level index j is Levels[j].</summary>
    public IReadOnlyList<double> Levels { get; init; } = [];

    /// <summary>gptq, rtn, sparsegpt, wanda or magnitude.</summary>
    public string Method { get; init; } = "";

    /// <summary>Every setting that changes the content (group size, symmetry, dampening, calibration level, ...).</summary>
    public IReadOnlyDictionary<string, string> Options { get; init; } = new Dictionary<string, string>();

    /// <summary>Index of the level installed in the model while later layers were calibrated.</summary>
    public int CalibrationLevel { get; init; }

    /// <summary>"128 × 256 tokens, seed 0 (file)", or "none".</summary>
    public string Calibration { get; init; } = "";

    /// <summary>The model's shape ("llama, 5 layers, hidden 64, ...").</summary>
    public string Model { get; init; } = "";

    /// <summary>The model's content hash (<see cref="Quantization.Pipeline.RunFingerprint.ModelContentHash"/>).</summary>
    public string ModelSha256 { get; init; } = "";

    /// <summary>Bytes of all layer files together.</summary>
    public long TotalBytes { get; init; }

    /// <summary>Wall time of the run that finished the database (a resumed run counts only its own part).</summary>
    public double WallSeconds { get; init; }

    /// <summary>Per decoder layer, in model order.</summary>
    public IReadOnlyList<LayerFileEntry> Layers { get; init; } = [];

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals, // errors may be NaN or ∞ for degenerate layers
    };
}
