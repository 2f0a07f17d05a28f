using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using LlmPress.IO;
using LlmPress.Numerics;

namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// The crash-safe record of a quantize or prune run in progress, in "&lt;output&gt;/.llmpress-journal/":
/// <list type="bullet">
/// <item>manifest.json: the run's <see cref="RunFingerprint"/>, and per finished decoder layer its file, SHA-256,
/// linears (name, shape, format) and <see cref="LayerReport"/>s; plus the current hidden-states file;</item>
/// <item>layer-NNNNN.safetensors: the layer's packed tensors ("&lt;linear&gt;.weight.&lt;suffix&gt;"), or for a pruned
/// linear that is not quantized its exact weight in the checkpoint's dtype ("&lt;linear&gt;.weight");</item>
/// <item>hidden-NNNNN.bin: with calibration, the next layer's inputs [samples, seqLen, hidden] as raw little-endian
/// FP32 — the exact floats, so a resumed run continues bit-identically without replaying the finished layers.</item>
/// </list>
/// Every file is written to a temporary name and renamed; the manifest is rewritten only after the layer's files are
/// complete, and the previous hidden-states file is deleted only after that. A kill at any instant therefore leaves a
/// manifest that names complete files; files it does not name (temporaries, spill files, a superseded hidden-states
/// file) are deleted on the next open. The output writer replaces the whole output directory at the end, which
/// removes the journal with it.
/// </summary>
public sealed class QuantizationJournal
{
    /// <summary>Name of the journal directory inside the output directory.</summary>
    public const string DirectoryName = ".llmpress-journal";

    /// <summary>Version of the manifest layout; a journal of another version is refused.</summary>
    public const int LayoutVersion = 1;

    private const string ManifestName = "manifest.json";

    private static readonly JsonSerializerOptions s_json = new()
    {
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // "8 × 128 tokens" stays readable
        // Doubles round-trip exactly (shortest round-trip form); errors may be NaN or ∞ for degenerate layers.
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private readonly Manifest _manifest;
    private float[] _buffer = [];

    private QuantizationJournal(string outputDirectory, Manifest manifest)
    {
        OutputDirectory = outputDirectory;
        Directory = PathIn(outputDirectory);
        _manifest = manifest;
    }

    /// <summary>The output directory the journal belongs to.</summary>
    public string OutputDirectory { get; }

    /// <summary>The journal directory.</summary>
    public string Directory { get; }

    /// <summary>The run this journal records.</summary>
    public RunFingerprint Fingerprint => new(_manifest.Fingerprint);

    /// <summary>Decoder layers finished and recorded (layers 0 … FinishedLayers − 1).</summary>
    public int FinishedLayers => _manifest.Layers.Count;

    /// <summary>True when the next layer's input hidden states are recorded.</summary>
    public bool HasHiddenStates => _manifest.Hidden is not null;

    /// <summary>Bytes of all files the manifest names (the journal's disk footprint).</summary>
    public long Bytes
    {
        get
        {
            long total = 0;
            foreach (var l in _manifest.Layers) total += new FileInfo(Path.Combine(Directory, l.File)).Length;
            if (_manifest.Hidden is { } h) total += h.Bytes;
            return total;
        }
    }

    /// <summary>The journal directory of <paramref name="outputDirectory"/>.</summary>
    public static string PathIn(string outputDirectory) => Path.Combine(Path.GetFullPath(outputDirectory), DirectoryName);

    /// <summary>True when <paramref name="outputDirectory"/> holds a journal (an unfinished run).</summary>
    public static bool Exists(string outputDirectory) => System.IO.Directory.Exists(PathIn(outputDirectory));

    /// <summary>
    /// Starts an empty journal for <paramref name="fingerprint"/>, creating the output directory if needed and
    /// discarding any earlier journal there.
    /// </summary>
    public static QuantizationJournal Create(string outputDirectory, RunFingerprint fingerprint)
    {
        ArgumentNullException.ThrowIfNull(fingerprint);
        string dir = PathIn(outputDirectory);
        if (System.IO.Directory.Exists(dir)) System.IO.Directory.Delete(dir, recursive: true);
        System.IO.Directory.CreateDirectory(dir);
        var journal = new QuantizationJournal(outputDirectory,
            new Manifest { Version = LayoutVersion, Fingerprint = new(fingerprint.Fields), Layers = [] });
        journal.WriteManifest();
        return journal;
    }

    /// <summary>
    /// Opens the journal of <paramref name="outputDirectory"/> for a run with <paramref name="fingerprint"/>: checks the
    /// fingerprint and every recorded file (presence, size, SHA-256 of the layer files), and deletes files the manifest
    /// does not name. A journal directory without a manifest (killed before the first write finished) opens empty.
    /// </summary>
    /// <exception cref="InvalidDataException">A different run's journal (the message lists what differs), an unreadable
    /// manifest, or a missing, truncated or corrupt journal file (the message names it).</exception>
    public static QuantizationJournal Open(string outputDirectory, RunFingerprint fingerprint)
    {
        ArgumentNullException.ThrowIfNull(fingerprint);
        string dir = PathIn(outputDirectory);
        string manifestPath = Path.Combine(dir, ManifestName);
        if (!File.Exists(manifestPath)) return Create(outputDirectory, fingerprint);
        Manifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<Manifest>(File.ReadAllBytes(manifestPath), s_json);
        }
        catch (JsonException e)
        {
            throw Corrupt(manifestPath, $"not a valid journal manifest ({e.Message})");
        }
        if (manifest is null || manifest.Fingerprint is null || manifest.Layers is null)
            throw Corrupt(manifestPath, "not a valid journal manifest (fields missing)");
        if (manifest.Version != LayoutVersion)
            throw Corrupt(manifestPath, $"journal layout version {manifest.Version}, this LlmPress writes {LayoutVersion}");
        var differences = new RunFingerprint(manifest.Fingerprint).Differences(fingerprint);
        if (differences.Count > 0)
            throw new InvalidDataException($"{outputDirectory}: the journal there belongs to a different run ({string.Join("; ", differences)}); "
                                           + "rerun with the original settings, or pass --force to discard it and start over.");

        var journal = new QuantizationJournal(outputDirectory, manifest);
        var named = new HashSet<string>(StringComparer.Ordinal) { ManifestName };
        foreach (var layer in manifest.Layers)
        {
            string path = journal.FilePath(layer.File);
            if (!File.Exists(path)) throw Corrupt(path, "journal file is missing");
            if (Sha256(path) != layer.Sha256) throw Corrupt(path, "journal file is truncated or corrupt (SHA-256 differs from the manifest)");
            named.Add(layer.File);
        }
        if (manifest.Hidden is { } hidden)
        {
            string path = journal.FilePath(hidden.File);
            if (!File.Exists(path)) throw Corrupt(path, "journal file is missing");
            long length = new FileInfo(path).Length;
            if (length != hidden.Bytes) throw Corrupt(path, $"journal file is truncated or corrupt ({length} bytes, the manifest says {hidden.Bytes})");
            named.Add(hidden.File);
        }
        foreach (var file in System.IO.Directory.EnumerateFileSystemEntries(dir))
            if (!named.Contains(Path.GetFileName(file)))
            {
                if (System.IO.Directory.Exists(file)) System.IO.Directory.Delete(file, recursive: true); else File.Delete(file);
            }
        return journal;
    }

    /// <summary>Decoder layer <paramref name="index"/>'s compressed linears and reports, in the order they were recorded.</summary>
    /// <exception cref="InvalidDataException">The layer file does not hold what the manifest says (the message names it).</exception>
    public (IReadOnlyList<CompressedLinear> Layers, IReadOnlyList<LayerReport> Reports) LoadLayer(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, FinishedLayers);
        var entry = _manifest.Layers[index];
        string path = FilePath(entry.File);
        var layers = new List<CompressedLinear>();
        try
        {
            using var file = SafeTensorsFile.Open(path);
            foreach (var linear in entry.Linears)
                layers.Add(CompressedLinearTensors.Read(file, linear.Name + ".weight", linear.Name, linear.Rows, linear.Cols, linear.Format));
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw Corrupt(path, e.Message);
        }
        return (layers, entry.Reports);
    }

    /// <summary>Fills <paramref name="hidden"/> (one slot per sample) with the recorded hidden states.</summary>
    /// <exception cref="InvalidOperationException">No hidden states are recorded.</exception>
    /// <exception cref="InvalidDataException">Their shape does not fit <paramref name="hidden"/>, or the file is corrupt.</exception>
    public void RestoreHidden(ActivationStore hidden, int floatsPerSample)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        var entry = _manifest.Hidden ?? throw new InvalidOperationException("The journal records no hidden states.");
        string path = FilePath(entry.File);
        if (entry.Samples != hidden.SlotCount || entry.FloatsPerSample != floatsPerSample)
            throw Corrupt(path, $"holds {entry.Samples} × {entry.FloatsPerSample} floats, the run needs {hidden.SlotCount} × {floatsPerSample}");
        var buffer = Buffer(floatsPerSample);
        uint crc = 0;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20))
            for (int s = 0; s < entry.Samples; s++)
            {
                var bytes = MemoryMarshal.AsBytes(buffer.AsSpan());
                try
                {
                    stream.ReadExactly(bytes);
                }
                catch (EndOfStreamException)
                {
                    throw Corrupt(path, "journal file is truncated");
                }
                crc = Crc32C.Append(crc, bytes);
                hidden.Write(s, buffer);
            }
        if (crc.ToString("x8", CultureInfo.InvariantCulture) != entry.Crc32C)
            throw Corrupt(path, "journal file is corrupt (CRC-32C checksum differs from the manifest)");
    }

    /// <summary>
    /// Records decoder layer <paramref name="index"/> (which must be <see cref="FinishedLayers"/>) as finished: its
    /// compressed linears and reports, and — when <paramref name="hidden"/> is given — the next layer's inputs
    /// (floatsPerSample floats per slot). Returns when the manifest names the new files.
    /// </summary>
    public void RecordLayer(int index, IReadOnlyList<CompressedLinear> layers, IReadOnlyList<LayerReport> reports,
        ActivationStore? hidden, int floatsPerSample)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(reports);
        if (index != FinishedLayers) throw new InvalidOperationException($"Layer {index} recorded after {FinishedLayers} finished layers.");
        if (layers.Count != reports.Count) throw new ArgumentException("One report per quantized linear.", nameof(reports));

        string layerFile = $"layer-{index:D5}.safetensors";
        var tensors = new List<TensorToWrite>();
        foreach (var l in layers) CompressedLinearTensors.Add(l, l.Name + ".weight", tensors);
        SafeTensorsWriter.Write(FilePath(layerFile), tensors);
        var entry = new LayerEntry
        {
            File = layerFile,
            Sha256 = Sha256(FilePath(layerFile)),
            Linears = [.. layers.Select(l => new LinearEntry { Name = l.Name, Rows = l.Rows, Cols = l.Cols, Format = CompressedLinearTensors.FormatName(l) })],
            Reports = [.. reports],
        };

        var previous = _manifest.Hidden;
        HiddenEntry? next = null;
        if (hidden is not null)
        {
            string hiddenFile = $"hidden-{index + 1:D5}.bin";
            var buffer = Buffer(floatsPerSample);
            uint crc = 0;
            // Hundreds of MB per layer: CRC-32C instead of SHA-256 (milliseconds instead of seconds) and no fsync (the
            // rename keeps it atomic against a kill; after a power cut the checksum catches a lost write on --resume).
            AtomicFile.Write(FilePath(hiddenFile), stream =>
            {
                for (int s = 0; s < hidden.SlotCount; s++)
                {
                    hidden.Read(s, buffer);
                    var bytes = MemoryMarshal.AsBytes(buffer.AsSpan());
                    crc = Crc32C.Append(crc, bytes);
                    stream.Write(bytes);
                }
            }, durable: false);
            next = new HiddenEntry
            {
                File = hiddenFile,
                Crc32C = crc.ToString("x8", CultureInfo.InvariantCulture),
                Samples = hidden.SlotCount,
                FloatsPerSample = floatsPerSample,
                Bytes = (long)hidden.SlotCount * floatsPerSample * sizeof(float),
            };
        }

        _manifest.Layers.Add(entry);
        _manifest.Hidden = next;
        WriteManifest();
        if (previous is not null && previous.File != next?.File) File.Delete(FilePath(previous.File));
    }

    private float[] Buffer(int floats)
    {
        if (_buffer.Length != floats) _buffer = new float[floats];
        return _buffer;
    }

    private string FilePath(string name)
    {
        // Names come from the manifest: refuse anything that would reach outside the journal directory.
        if (name.Length == 0 || name != Path.GetFileName(name) || name is "." or "..")
            throw Corrupt(Path.Combine(Directory, ManifestName), $"bad file name '{name}'");
        return Path.Combine(Directory, name);
    }

    private void WriteManifest() =>
        AtomicFile.WriteAllText(Path.Combine(Directory, ManifestName), JsonSerializer.Serialize(_manifest, s_json));

    private static string Sha256(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private static InvalidDataException Corrupt(string path, string what) =>
        new($"{path}: {what}; pass --force to discard the journal and start over.");

    private sealed class Manifest
    {
        public int Version { get; set; }
        public Dictionary<string, string> Fingerprint { get; set; } = null!;
        public List<LayerEntry> Layers { get; set; } = null!;
        public HiddenEntry? Hidden { get; set; }
    }

    private sealed class LayerEntry
    {
        public string File { get; set; } = "";
        public string Sha256 { get; set; } = "";
        public List<LinearEntry> Linears { get; set; } = [];
        public List<LayerReport> Reports { get; set; } = [];
    }

    // What rebuilds a QuantizedLayer besides its tensors (CompressedLinearTensors: packed format, or "dense-<dtype>" for a
    // pruned, unquantized linear); a linear that gains more state (e.g. an online rotation) adds it here.
    private sealed class LinearEntry
    {
        public string Name { get; set; } = "";
        public int Rows { get; set; }
        public int Cols { get; set; }
        public string Format { get; set; } = "";
    }

    private sealed class HiddenEntry
    {
        public string File { get; set; } = "";
        public string Crc32C { get; set; } = "";
        public int Samples { get; set; }
        public int FloatsPerSample { get; set; }
        public long Bytes { get; set; }
    }
}
