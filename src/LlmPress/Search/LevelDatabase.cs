using System.Security.Cryptography;
using System.Text.Json;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Search;

/// <summary>
/// A level database read back: every decoder-layer linear of a model compressed at every level (bit widths or
/// sparsities), with each (linear, level)'s size and errors, so that a search can score and try non-uniform
/// configurations. On disk (see <see cref="LevelDatabaseBuilder"/>): levels.json (<see cref="LevelDatabaseManifest"/>)
/// and one safetensors file per decoder layer holding every level of its linears ("level{j}.&lt;linear&gt;.weight",
/// packed INT tensors or dense weights in the source dtype). Level indices are in cost order (increasing bits,
/// decreasing sparsity). The layer files are memory-mapped; the weights <see cref="Apply"/> installs are kept in a
/// least-recently-used cache of at most <see cref="CacheBytes"/> (beyond what is installed in the model at the time).
/// Not thread-safe.
/// </summary>
public sealed class LevelDatabase : IDisposable
{
    /// <summary>File name of the manifest.</summary>
    public const string ManifestName = "levels.json";

    /// <summary>Default bound of the installed-weight cache: 1 GiB.</summary>
    public const long DefaultCacheBytes = 1L << 30;

    /// <summary>The level <see cref="Apply"/> takes as "this linear keeps its original weight".</summary>
    public const int Uncompressed = -1;

    private readonly LevelDatabaseManifest _manifest;
    private readonly LinearLevels[] _linears;
    private readonly int[] _layerOfLinear;
    private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);
    private readonly SafeTensorsFile?[] _files;
    private readonly Dictionary<(int Linear, int Level), LinkedListNode<CacheEntry>> _cache = [];
    private readonly LinkedList<CacheEntry> _recent = new();
    private readonly Dictionary<LinearLayer, WeightView> _originals = new(ReferenceEqualityComparer.Instance);
    private long _cachedBytes;

    private sealed record CacheEntry((int Linear, int Level) Key, QuantizedMatrix? Matrix, WeightView Dense, long Bytes);

    private LevelDatabase(string directory, LevelDatabaseManifest manifest, long cacheBytes)
    {
        Directory = directory;
        _manifest = manifest;
        CacheBytes = cacheBytes;
        var linears = new List<LinearLevels>();
        var layerOf = new List<int>();
        for (int l = 0; l < manifest.Layers.Count; l++)
            foreach (var linear in manifest.Layers[l].Linears)
            {
                _index[linear.Name] = linears.Count;
                linears.Add(linear);
                layerOf.Add(l);
            }
        _linears = [.. linears];
        _layerOfLinear = [.. layerOf];
        _files = new SafeTensorsFile?[manifest.Layers.Count];
        Kind = manifest.Kind == "bits" ? LevelKind.Bits : LevelKind.Sparsity;
        // Bits: the nominal level bits × weights (equal steps for equal shapes, so EvoPress' level switch keeps the
        // budget exact); sparsity: the weights kept.
        Space = new LevelSpace([.. _linears.Select(x => x.Name)], [.. _linears.Select(x => Kind == LevelKind.Bits
            ? manifest.Levels.Select(b => b * x.Rows * x.Cols).ToArray()
            : x.Levels.Select(e => (double)e.NonZeros).ToArray())]);
    }

    /// <summary>The database directory.</summary>
    public string Directory { get; }

    /// <summary>The manifest as read.</summary>
    public LevelDatabaseManifest Manifest => _manifest;

    /// <summary>What the levels vary.</summary>
    public LevelKind Kind { get; }

    /// <summary>Level values in index order (cost order).</summary>
    public IReadOnlyList<double> Levels => _manifest.Levels;

    /// <summary>Bound of the installed-weight cache in bytes.</summary>
    public long CacheBytes { get; }

    /// <summary>The linears, in model order, with their levels' sizes and errors.</summary>
    public IReadOnlyList<LinearLevels> Linears => _linears;

    /// <summary>
    /// The search space over the linears: cost of level j = nominal bits·rows·cols for bit levels (use
    /// <see cref="StorageBytes"/> for the actual bytes with scales and zero points), the weights kept for sparsity levels.
    /// </summary>
    public LevelSpace Space { get; }

    /// <summary>Actual storage bytes of linear <paramref name="linear"/> at level <paramref name="level"/>.</summary>
    public long StorageBytes(int linear, int level) => _linears[linear].Levels[level].Bytes;

    /// <summary>‖W − Ŵ‖²/‖W‖² of linear <paramref name="linear"/> at level <paramref name="level"/>.</summary>
    public double WeightError(int linear, int level) => _linears[linear].Levels[level].WeightError;

    /// <summary>Relative output error on the calibration inputs, or null when built without calibration.</summary>
    public double? OutputError(int linear, int level) => _linears[linear].Levels[level].OutputError;

    /// <summary>Index of the linear named <paramref name="name"/>, or −1.</summary>
    public int IndexOf(string name) => _index.TryGetValue(name, out int i) ? i : -1;

    /// <summary>
    /// Opens the database in <paramref name="directory"/>, checking the manifest and every layer file (present, size,
    /// SHA-256).
    /// </summary>
    /// <exception cref="InvalidDataException">No database there, or a missing, unreadable, truncated or corrupt file (the
    /// message names it).</exception>
    public static LevelDatabase Open(string directory, long cacheBytes = DefaultCacheBytes)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentOutOfRangeException.ThrowIfNegative(cacheBytes);
        string path = Path.Combine(directory, ManifestName);
        if (!File.Exists(path))
            throw new InvalidDataException($"{directory}: not a level database (no {ManifestName}; an unfinished `llmpress levels` run is continued with --resume).");
        LevelDatabaseManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<LevelDatabaseManifest>(File.ReadAllBytes(path), LevelDatabaseManifest.Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a valid level database manifest ({e.Message})", e);
        }
        if (manifest is null) throw new InvalidDataException($"{path}: not a valid level database manifest (null)");
        if (manifest.FormatVersion != LevelDatabaseManifest.CurrentVersion)
            throw new InvalidDataException($"{path}: level database version {manifest.FormatVersion}, this LlmPress reads {LevelDatabaseManifest.CurrentVersion}.");
        if (manifest.Kind == DepthDatabase.KindName)
            throw new InvalidDataException($"{path}: a depth database (kept/dropped sub-blocks, no compressed levels); search it with --drop-blocks K.");
        if (manifest.Kind is not ("bits" or "sparsity")) throw new InvalidDataException($"{path}: unknown kind '{manifest.Kind}' (bits or sparsity).");
        if (manifest.Levels is null || manifest.Levels.Count == 0 || manifest.Layers is null || manifest.Layers.Count == 0)
            throw new InvalidDataException($"{path}: the manifest lists no levels or no layers.");
        if ((uint)manifest.CalibrationLevel >= (uint)manifest.Levels.Count)
            throw new InvalidDataException($"{path}: calibration level {manifest.CalibrationLevel} of {manifest.Levels.Count} levels.");
        foreach (var layer in manifest.Layers)
        {
            if (layer?.File is null || layer.Linears is null || layer.File != Path.GetFileName(layer.File) || layer.File is "." or "..")
                throw new InvalidDataException($"{path}: a layer entry without a plain file name or linears.");
            foreach (var linear in layer.Linears)
                if (linear?.Levels is null || linear.Levels.Count != manifest.Levels.Count || linear.Rows < 1 || linear.Cols < 1)
                    throw new InvalidDataException($"{path}: {layer.File}: linear {linear?.Name} does not list one entry per level.");
            string file = Path.Combine(directory, layer.File);
            if (!File.Exists(file)) throw new InvalidDataException($"{file}: level database file is missing.");
            long length = new FileInfo(file).Length;
            if (length != layer.Bytes) throw new InvalidDataException($"{file}: level database file is truncated or corrupt ({length} bytes, the manifest says {layer.Bytes}).");
            if (Sha256(file) != layer.Sha256) throw new InvalidDataException($"{file}: level database file is corrupt (SHA-256 differs from the manifest).");
        }
        try
        {
            return new LevelDatabase(directory, manifest, cacheBytes);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>Checks that <paramref name="model"/> is the model the database was built from (content hash, linears and shapes).</summary>
    /// <exception cref="InvalidDataException">"database built from another model", with what differs.</exception>
    public void CheckModel(LlamaModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        string hash = RunFingerprint.ModelContentHash(model);
        if (hash != _manifest.ModelSha256)
            throw new InvalidDataException($"{Directory}: database built from another model (model hash {Short(_manifest.ModelSha256)}, "
                                           + $"this model {Short(hash)}; {_manifest.Model}); rebuild it with `llmpress levels` on this model.");
        int count = 0;
        foreach (var layer in model.Layers)
            foreach (var linear in layer.Linears)
            {
                int i = IndexOf(linear.Name);
                if (i < 0 || _linears[i].Rows != linear.OutFeatures || _linears[i].Cols != linear.InFeatures)
                    throw new InvalidDataException($"{Directory}: database built from another model (no [{linear.OutFeatures}, {linear.InFeatures}] entry for {linear.Name}).");
                count++;
            }
        if (count != _linears.Length) throw new InvalidDataException($"{Directory}: database built from another model ({_linears.Length} linears, the model has {count}).");
    }

    /// <summary>Linear <paramref name="linear"/> at level <paramref name="level"/> as stored (read from its layer file).</summary>
    /// <exception cref="InvalidDataException">The layer file does not hold it (the message names the file).</exception>
    public CompressedLinear Load(int linear, int level)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(linear);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(linear, _linears.Length);
        ArgumentOutOfRangeException.ThrowIfNegative(level);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(level, Levels.Count);
        var entry = _linears[linear];
        int layer = _layerOfLinear[linear];
        string path = Path.Combine(Directory, _manifest.Layers[layer].File);
        try
        {
            var file = _files[layer] ??= SafeTensorsFile.Open(path);
            return CompressedLinearTensors.Read(file, LevelsStep.WeightName(entry.Name, level), entry.Name, entry.Rows, entry.Cols, entry.Levels[level].Format);
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Puts level <c>levels[i]</c> of every linear i into <paramref name="model"/> (the uncompressed model the database
    /// was built from), as a compressed checkpoint loads it: INT4/INT8 levels run from their codes with the packed
    /// kernels, other bit widths dequantized to FP32, sparse levels as dense weights with exact zeros. The original
    /// weights are remembered for <see cref="Restore"/>; applying again replaces the previous configuration. A level of
    /// <see cref="Uncompressed"/> leaves (or puts back) that linear's original weight, e.g. to measure one linear's level alone.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong number of levels, a level out of range, or a linear the model lacks.</exception>
    /// <exception cref="InvalidOperationException">A linear of the model is already compressed (not by this database).</exception>
    public void Apply(LlamaModel model, IReadOnlyList<int> levels)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(levels);
        if (levels.Count != _linears.Length) throw new ArgumentException($"A configuration has one level per linear ({_linears.Length}), not {levels.Count}.", nameof(levels));
        for (int i = 0; i < levels.Count; i++)
            if (levels[i] < Uncompressed || levels[i] >= Levels.Count)
                throw new ArgumentException($"{_linears[i].Name}: level {levels[i]} does not exist (the database has {Levels.Count}).", nameof(levels));
        var byName = new Dictionary<string, LinearLayer>(StringComparer.Ordinal);
        foreach (var layer in model.Layers)
            foreach (var linear in layer.Linears)
                byName[linear.Name] = linear;
        var targets = new LinearLayer[_linears.Length];
        for (int i = 0; i < _linears.Length; i++)
        {
            if (!byName.TryGetValue(_linears[i].Name, out var linear) || linear.OutFeatures != _linears[i].Rows || linear.InFeatures != _linears[i].Cols)
                throw new ArgumentException($"The model has no [{_linears[i].Rows}, {_linears[i].Cols}] linear {_linears[i].Name}; the database belongs to another model.", nameof(model));
            if (levels[i] != Uncompressed && !_originals.ContainsKey(linear) && (linear.Quantized is not null || linear.InputRotationBlockSize is not null))
                throw new InvalidOperationException($"{linear.Name} is already compressed; apply a level database to the uncompressed model.");
            targets[i] = linear;
        }
        for (int i = 0; i < targets.Length; i++)
        {
            var linear = targets[i];
            if (levels[i] == Uncompressed)
            {
                if (_originals.Remove(linear, out var original)) linear.Weight = original;
                continue;
            }
            _originals.TryAdd(linear, linear.Weight);
            var installed = Installed(i, levels[i]);
            if (installed.Matrix is { } matrix) linear.SetQuantizedWeight(matrix, null);
            else linear.Weight = installed.Dense;
        }
    }

    /// <summary>Gives every linear of <paramref name="model"/> that <see cref="Apply"/> changed its original weight back.</summary>
    public void Restore(LlamaModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (var layer in model.Layers)
            foreach (var linear in layer.Linears)
                if (_originals.Remove(linear, out var original))
                    linear.Weight = original;
    }

    /// <summary>Closes the memory-mapped layer files and drops the cache (a model still holding applied weights keeps them).</summary>
    public void Dispose()
    {
        for (int i = 0; i < _files.Length; i++)
        {
            _files[i]?.Dispose();
            _files[i] = null;
        }
        _cache.Clear();
        _recent.Clear();
        _cachedBytes = 0;
    }

    // The weight as a layer runs it, from the cache or built from the file (most recently used first).
    private CacheEntry Installed(int linear, int level)
    {
        if (_cache.TryGetValue((linear, level), out var node))
        {
            _recent.Remove(node);
            _recent.AddFirst(node);
            return node.Value;
        }
        var compressed = Load(linear, level);
        CacheEntry entry;
        if (compressed.Packed is { } packed)
        {
            // As QuantizedCheckpoint.LoadLinear: INT4/INT8 run from their codes, other widths dequantized to FP32.
            entry = KernelMatrix.TryCreate(packed) is { } matrix
                ? new CacheEntry((linear, level), matrix, default, matrix.MemoryBytes)
                : Dense(packed.Dequantize());
        }
        else
            entry = Dense(compressed.Weight!);
        _cache[(linear, level)] = _recent.AddFirst(entry);
        _cachedBytes += entry.Bytes;
        while (_cachedBytes > CacheBytes && _recent.Last is { } last)
        {
            _recent.RemoveLast();
            _cache.Remove(last.Value.Key);
            _cachedBytes -= last.Value.Bytes;
        }
        return entry;

        CacheEntry Dense(float[] weight) =>
            new((linear, level), null, WeightView.FromFloats(weight, compressed.Rows, compressed.Cols), weight.LongLength * sizeof(float));
    }

    internal static string Sha256(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private static string Short(string hash) => hash.Length > 12 ? hash[..12] + "…" : hash;
}
