using System.Text.Json;
using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;
using LlmPress.Search;
using LlmPress.Sparsity;
using LlmPress.Tests.Quantization.Pipeline;

namespace LlmPress.Tests.Search;

/// <summary>
/// One GPTQ bit-level database of stories260K (2, 3, 4 bits, int g32 asymmetric, calibration level 4, 16 × 128
/// TinyStories tokens), built once for the tests that only read it.
/// </summary>
public sealed class BitsDatabaseFixture : IDisposable
{
    private readonly TempDirectory _dir = new();
    private LevelDatabase? _database;

    public static LevelDatabaseOptions Options => new()
    {
        Kind = LevelKind.Bits, Levels = [4, 2, 3], QuantMethod = QuantMethod.Gptq, GroupSize = 32, CalibrationLevel = 4,
    };

    public string Directory => Path.Combine(_dir.Path, "db");

    public LevelDatabase Database
    {
        get
        {
            if (_database is null)
            {
                using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
                _database = LevelDatabaseBuilder.Build(model, Options, PipelineTestData.Calibration, Directory);
            }
            return _database;
        }
    }

    public void Dispose()
    {
        _database?.Dispose();
        _dir.Dispose();
    }
}

/// <summary>
/// The level database on stories260K: its entries are bit-identical to what `quantize` / `prune` compute on the same
/// Hessians, errors order with the levels, Apply reproduces a quantized checkpoint's logits and Restore the original
/// ones, an interrupted build resumes to identical files, and foreign models or damaged files are refused.
/// </summary>
public class LevelDatabaseTests(BitsDatabaseFixture fixture) : IClassFixture<BitsDatabaseFixture>
{
    private static QuantizeOptions Int(int bits) => new() { Method = QuantMethod.Gptq, Format = QuantFormat.Int(bits, 32, symmetric: false) };

    private static void AssertSamePacked(PackedWeight expected, PackedWeight actual, string what)
    {
        Assert.Equal(expected.Format, actual.Format);
        Assert.Equal(expected.Tensors.Count, actual.Tensors.Count);
        for (int t = 0; t < expected.Tensors.Count; t++)
        {
            Assert.Equal(expected.Tensors[t].Suffix, actual.Tensors[t].Suffix);
            Assert.True(expected.Tensors[t].Data.AsSpan().SequenceEqual(actual.Tensors[t].Data), $"{what}: {expected.Tensors[t].Suffix} differs");
        }
    }

    [Fact]
    public void BitLevels_AreBitIdenticalToQuantize_OnTheSameHessians()
    {
        var db = fixture.Database;
        Assert.Equal([2.0, 3, 4], db.Levels);
        Assert.Equal(2, db.Manifest.CalibrationLevel);
        Assert.Equal(35, db.Linears.Count);
        foreach (int bits in new[] { 2, 3, 4 })
        {
            using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
            var uniform = QuantizationPipeline.Run(model, Int(bits), PipelineTestData.Calibration);
            // At the calibration level (4) every layer sees the same propagated inputs as uniform int4, so all 35 linears
            // agree; at other levels only the first group (layer 0's q/k/v, on the embeddings' Hessian) shares its inputs.
            int count = bits == 4 ? 35 : 3;
            for (int i = 0; i < count; i++)
            {
                var entry = db.Load(i, bits - 2);
                Assert.Equal(uniform.Layers[i].Name, entry.Name);
                AssertSamePacked(uniform.Layers[i].Weight, entry.Packed!, $"{entry.Name} int{bits}");
                var report = uniform.Report.Layers[i];
                var stats = db.Linears[i].Levels[bits - 2];
                Assert.Equal(report.RelativeWeightError, stats.WeightError);
                Assert.Equal(report.RelativeOutputError, stats.OutputError);
                Assert.Equal(report.BytesAfter, stats.Bytes);
            }
            // Beyond the first group the propagated inputs differ (int4 model vs int{bits} model): the entries do too.
            if (bits != 4) Assert.False(db.Load(34, bits - 2).Packed!.Tensors[0].Data.AsSpan().SequenceEqual(uniform.Layers[34].Weight.Tensors[0].Data));
        }
    }

    [Fact]
    public void Errors_DecreaseWithBits_AndCostsFollowTheNominalBits()
    {
        var db = fixture.Database;
        for (int i = 0; i < db.Linears.Count; i++)
        {
            var levels = db.Linears[i].Levels;
            for (int j = 1; j < levels.Count; j++)
            {
                Assert.True(levels[j].WeightError < levels[j - 1].WeightError, $"{db.Linears[i].Name}: weight error at level {j}");
                Assert.True(levels[j].OutputError < levels[j - 1].OutputError, $"{db.Linears[i].Name}: output error at level {j}");
                Assert.True(levels[j].Bytes > levels[j - 1].Bytes);
            }
            long numel = (long)db.Linears[i].Rows * db.Linears[i].Cols;
            for (int j = 0; j < levels.Count; j++)
            {
                Assert.Equal(db.Levels[j] * numel, db.Space.Cost(i, j));
                Assert.Equal(numel, levels[j].NonZeros);
                Assert.Equal(levels[j].Bytes * 8.0 / numel, levels[j].BitsPerWeight, 1e-12);
                Assert.Equal(QuantFormat.Int((int)db.Levels[j], 32, false).Name, levels[j].Format);
            }
        }
    }

    [Fact]
    public void Apply_UniformCalibrationLevel_ReproducesTheQuantizedCheckpoint_AndRestoreTheOriginal()
    {
        var db = fixture.Database;
        int[] tokens = [.. PipelineTestData.EvalTokens.Take(64)];
        using var dir = new TempDirectory();
        string checkpoint = Path.Combine(dir.Path, "int4");
        PipelineTestData.Quantize(Int(4), checkpoint);
        float[] expected;
        using (var quantized = LlamaModel.Load(checkpoint)) expected = quantized.Forward(tokens);

        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        db.CheckModel(model);
        float[] original = model.Forward(tokens);
        db.Apply(model, [.. Enumerable.Repeat(2, db.Linears.Count)]);
        Assert.NotNull(model.Layers[0].QueryProj.Quantized); // INT4 runs from its codes, as the checkpoint loads it
        Assert.Equal(expected, model.Forward(tokens)); // bit-identical

        // A mixed configuration changes the logits; Restore gives back the original ones exactly.
        int[] mixed = [.. Enumerable.Range(0, db.Linears.Count).Select(i => i % 3)];
        db.Apply(model, mixed);
        Assert.Null(model.Layers[0].QueryProj.Quantized); // level 0 = int2: dequantized to FP32
        Assert.NotEqual(original, model.Forward(tokens));
        db.Restore(model);
        Assert.Null(model.Layers[0].KeyProj.Quantized);
        Assert.Equal(original, model.Forward(tokens));
    }

    [Fact]
    public void Apply_WithoutCache_GivesTheSameModel()
    {
        var db = fixture.Database;
        int[] tokens = [.. PipelineTestData.EvalTokens.Take(32)];
        int[] mixed = [.. Enumerable.Range(0, db.Linears.Count).Select(i => (i * 7 + 1) % 3)];
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        db.Apply(model, mixed);
        float[] cached = model.Forward(tokens);
        db.Restore(model);
        // A zero-byte cache keeps nothing: every Apply reads the layer files again, with the same result.
        using var uncached = LevelDatabase.Open(fixture.Directory, cacheBytes: 0);
        uncached.Apply(model, mixed);
        Assert.Equal(cached, model.Forward(tokens));
        uncached.Apply(model, mixed);
        Assert.Equal(cached, model.Forward(tokens));
        uncached.Restore(model);
    }

    [Fact]
    public void Resume_AfterInterruption_GivesAnIdenticalDatabase()
    {
        var options = BitsDatabaseFixture.Options with { Levels = [2, 3], CalibrationLevel = null, QuantMethod = QuantMethod.Gptq };
        var calibration = CalibrationData.FromTokens([.. PipelineTestData.Calibration.Samples.SelectMany(s => s)], 4, 64, seed: 2);
        using var dir = new TempDirectory();
        string reference = Path.Combine(dir.Path, "reference"), resumed = Path.Combine(dir.Path, "resumed");
        using (var model = LlamaModel.Load(PipelineTestData.ModelDirectory))
            LevelDatabaseBuilder.Build(model, options, calibration, reference).Dispose();

        using (var model = LlamaModel.Load(PipelineTestData.ModelDirectory))
        {
            var fingerprint = LevelDatabaseBuilder.Fingerprint(model, options, calibration);
            using var stop = new CancellationTokenSource();
            var settings = new QuantizationRunSettings { Journal = QuantizationJournal.Create(resumed, fingerprint), CancellationToken = stop.Token };
            Assert.Throws<OperationCanceledException>(() => LevelDatabaseBuilder.Build(model, options, calibration, resumed, done => { if (done == 2) stop.Cancel(); }, settings));
            Assert.False(File.Exists(Path.Combine(resumed, LevelDatabase.ManifestName)));
            Assert.Throws<InvalidDataException>(() => LevelDatabase.Open(resumed));

            // Another run's settings are refused by the journal.
            var other = LevelDatabaseBuilder.Fingerprint(model, options with { Levels = [2, 4] }, calibration);
            Assert.Contains("different run", Assert.Throws<InvalidDataException>(() => QuantizationJournal.Open(resumed, other)).Message);

            var journal = QuantizationJournal.Open(resumed, fingerprint);
            Assert.Equal(2, journal.FinishedLayers);
            LevelDatabaseBuilder.Build(model, options, calibration, resumed, null, new QuantizationRunSettings { Journal = journal }).Dispose();
        }
        Assert.False(Directory.Exists(QuantizationJournal.PathIn(resumed)), "the journal is removed once the database is complete");
        using var a = LevelDatabase.Open(reference);
        using var b = LevelDatabase.Open(resumed);
        Assert.Equal(JsonSerializer.Serialize(a.Manifest.Layers), JsonSerializer.Serialize(b.Manifest.Layers)); // same SHA-256s and stats
        for (int l = 0; l < 5; l++)
            Assert.Equal(File.ReadAllBytes(Path.Combine(reference, LevelsStep.FileName(l))), File.ReadAllBytes(Path.Combine(resumed, LevelsStep.FileName(l))));
    }

    [Fact]
    public void AnotherModel_IsRefused()
    {
        var db = fixture.Database;
        using var other = LlamaModel.Load(SharedData.Require("models", "tiny-llama3"));
        var e = Assert.Throws<InvalidDataException>(() => db.CheckModel(other));
        Assert.Contains("database built from another model", e.Message);
        Assert.Throws<ArgumentException>(() => db.Apply(other, [.. Enumerable.Repeat(0, db.Linears.Count)]));
    }

    [Fact]
    public void DamagedOrMissingFiles_AreRefusedWithTheFileNamed()
    {
        _ = fixture.Database;
        using var dir = new TempDirectory();
        Assert.Contains("not a level database", Assert.Throws<InvalidDataException>(() => LevelDatabase.Open(dir.Path)).Message);
        foreach (var file in Directory.GetFiles(fixture.Directory)) File.Copy(file, Path.Combine(dir.Path, Path.GetFileName(file)));
        LevelDatabase.Open(dir.Path).Dispose();

        string layer = Path.Combine(dir.Path, LevelsStep.FileName(3));
        var bytes = File.ReadAllBytes(layer);
        bytes[^1] ^= 1;
        File.WriteAllBytes(layer, bytes);
        Assert.Contains(layer, Assert.Throws<InvalidDataException>(() => LevelDatabase.Open(dir.Path)).Message);
        File.WriteAllBytes(layer, bytes[..^10]);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => LevelDatabase.Open(dir.Path)).Message);
        File.Delete(layer);
        Assert.Contains("missing", Assert.Throws<InvalidDataException>(() => LevelDatabase.Open(dir.Path)).Message);
        File.WriteAllText(Path.Combine(dir.Path, LevelDatabase.ManifestName), "{ not json");
        Assert.Contains("not a valid level database manifest", Assert.Throws<InvalidDataException>(() => LevelDatabase.Open(dir.Path)).Message);
    }

    [Fact]
    public void Estimate_BoundsTheActualBytes()
    {
        var db = fixture.Database;
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        var estimate = LevelDatabaseBuilder.Estimate(model, BitsDatabaseFixture.Options, 16, 128);
        long actual = db.Manifest.TotalBytes;
        // The estimate counts the nominal bits (exact for these shapes) plus a 64 KiB header allowance per layer file.
        Assert.InRange(estimate.DatabaseBytes - actual, 0, 5 * 64 * 1024);
        long payload = 0, calibrationLevel = 0;
        for (int i = 0; i < db.Linears.Count; i++)
        {
            for (int j = 0; j < db.Levels.Count; j++) payload += db.StorageBytes(i, j);
            calibrationLevel += db.StorageBytes(i, 2);
        }
        // The journal: two copies of the hidden states [16, 128, 64] while a layer is recorded, and the int4 level.
        // (+1 KiB: the estimate rounds each matrix's nominal bits up to whole bytes.)
        Assert.InRange(estimate.JournalBytes - 2L * 16 * 128 * 64 * sizeof(float) - calibrationLevel, 0, 5 * 64 * 1024 + 1024);
        Assert.InRange(actual - payload, 1, 5 * 64 * 1024); // the files hold the entries plus their headers
    }

    [Fact]
    public void SparsityLevels_MatchPrune_AndErrorsIncreaseWithSparsity()
    {
        var options = new LevelDatabaseOptions { Kind = LevelKind.Sparsity, Levels = [0.3, 0.5, 0.7], PruneMethod = PruneMethod.SparseGpt };
        using var dir = new TempDirectory();
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        using var db = LevelDatabaseBuilder.Build(model, options, PipelineTestData.Calibration, dir.Path);
        Assert.Equal([0.7, 0.5, 0.3], db.Levels); // cost order: fewest non-zeros first
        Assert.Equal(1, db.Manifest.CalibrationLevel);
        for (int j = 0; j < 3; j++)
        {
            using var fresh = LlamaModel.Load(PipelineTestData.ModelDirectory);
            var pruned = PruningPipeline.Run(fresh, new PruneOptions { Method = PruneMethod.SparseGpt, Sparsity = SparsityPattern.Unstructured(db.Levels[j]), Layout = SparseLayout.Dense },
                PipelineTestData.Calibration);
            int count = j == 1 ? 35 : 3; // all layers at the calibration level, the first group otherwise
            for (int i = 0; i < count; i++)
            {
                var entry = db.Load(i, j);
                Assert.Null(entry.Packed);
                Assert.Equal(pruned.Layers[i].Weight, entry.Weight);
                Assert.Equal(pruned.Report.Layers[i].RelativeOutputError, db.OutputError(i, j));
            }
        }
        for (int i = 0; i < db.Linears.Count; i++)
        {
            long numel = (long)db.Linears[i].Rows * db.Linears[i].Cols;
            for (int j = 0; j < 3; j++)
            {
                Assert.Equal(numel - SparsityPattern.Unstructured(db.Levels[j]).ZeroCount(db.Linears[i].Rows, db.Linears[i].Cols), db.Linears[i].Levels[j].NonZeros);
                Assert.Equal(db.Linears[i].Levels[j].NonZeros, db.Space.Cost(i, j));
                Assert.Equal("dense-f32", db.Linears[i].Levels[j].Format);
            }
            Assert.True(db.WeightError(i, 0) > db.WeightError(i, 1) && db.WeightError(i, 1) > db.WeightError(i, 2), db.Linears[i].Name);
            Assert.True(db.OutputError(i, 0) > db.OutputError(i, 1) && db.OutputError(i, 1) > db.OutputError(i, 2), db.Linears[i].Name);
        }
        // Applying a sparse level installs its dense weight with exact zeros.
        db.Apply(model, [.. Enumerable.Repeat(0, db.Linears.Count)]);
        Assert.Equal(db.Load(5, 0).Weight, model.Layers[0].UpProj.Weight.ToFloatArray());
        db.Restore(model);
        Assert.DoesNotContain(0f, model.Layers[0].UpProj.Weight.ToFloatArray());
    }

    [Fact]
    public void Options_RejectBadLevels()
    {
        Assert.Contains("out of range", Assert.Throws<ArgumentException>(() => new LevelDatabaseOptions { Levels = [1, 2] }.Validate()).Message);
        Assert.Contains("out of range", Assert.Throws<ArgumentException>(() => new LevelDatabaseOptions { Levels = [2.5] }.Validate()).Message);
        Assert.Contains("out of range", Assert.Throws<ArgumentException>(() => new LevelDatabaseOptions { Levels = [9] }.Validate()).Message);
        Assert.Contains("out of range", Assert.Throws<ArgumentException>(() => new LevelDatabaseOptions { Kind = LevelKind.Sparsity, Levels = [0.5, 1] }.Validate()).Message);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => new LevelDatabaseOptions { Levels = [3, 4, 3] }.Validate()).Message);
        Assert.Contains("not one of the levels", Assert.Throws<ArgumentException>(() => new LevelDatabaseOptions { Levels = [3, 4], CalibrationLevel = 5 }.Validate()).Message);
        Assert.Equal(2, new LevelDatabaseOptions { Levels = [6, 2, 4, 3, 5] }.CalibrationIndex); // the middle: 4 bits
        Assert.Equal(1, new LevelDatabaseOptions { Levels = [2, 3, 4, 5] }.CalibrationIndex); // even count: the lower middle (3 bits)
    }
}
