using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Tests.Quantization.Pipeline;

/// <summary>
/// Crash safety on stories260K (5 decoder layers): runs stopped after some layers and resumed from the journal give
/// the uninterrupted run's output to the bit; so do runs with spilled activations. Record equality of doubles is exact
/// (no tolerance): resuming restores the very floats the interrupted run had, so nothing may differ.
/// </summary>
public class QuantizationResumeTests
{
    private static readonly QuantizeOptions Gptq4 = PipelineTestData.Options(QuantMethod.Gptq, 4);
    private static readonly QuantizeOptions Rtn4 = PipelineTestData.Options(QuantMethod.Rtn, 4);

    // 8 windows of 128 tokens: small enough to run several times per test.
    private static CalibrationData Calibration => s_calibration.Value;
    private static readonly Lazy<CalibrationData> s_calibration = new(() =>
    {
        var full = PipelineTestData.Calibration;
        return CalibrationData.FromTokens([.. full.Samples.SelectMany(s => s)], 8, 128, seed: 1, source: "tinystories-10k.txt");
    });

    [Fact]
    public void GptqStoppedTwiceAndResumedIsBitIdentical()
    {
        using var dir = new TempDirectory();
        string reference = dir.File("reference"), output = dir.File("resumed");
        var expected = ResumeTestRun.Reference(reference, Gptq4, Calibration);

        Assert.Throws<OperationCanceledException>(() => ResumeTestRun.Run(output, Gptq4, Calibration, stopAfter: 1));
        var journal = QuantizationJournal.Open(output, Fingerprint(Gptq4, Calibration));
        Assert.Equal(1, journal.FinishedLayers);
        Assert.True(journal.HasHiddenStates);
        Assert.False(File.Exists(Path.Combine(output, "model.safetensors")), "no model before the run is complete");

        var seen = new List<int>();
        Assert.Throws<OperationCanceledException>(() => ResumeTestRun.Run(output, Gptq4, Calibration, resume: true, stopAfter: 3, layerDone: seen.Add));
        Assert.Equal([1, 2, 3], seen); // layer 0 skipped, reported as done up front
        Assert.Equal(3, QuantizationJournal.Open(output, Fingerprint(Gptq4, Calibration)).FinishedLayers);

        var actual = ResumeTestRun.Run(output, Gptq4, Calibration, resume: true);
        ResumeTestRun.AssertIdentical(reference, expected, output, actual);
    }

    [Fact]
    public void AGptqHeadAfterEveryLayerWasJournaledIsBitIdentical()
    {
        // Stopped after the last layer, before the head: the resumed run has no layer left to run, so the head's Hessian
        // comes from the journal's last hidden states.
        var options = Gptq4 with { LmHeadFormat = QuantFormat.Int(4, 128, symmetric: false) };
        using var dir = new TempDirectory();
        string reference = dir.File("reference"), output = dir.File("resumed");
        var expected = ResumeTestRun.Reference(reference, options, Calibration);
        Assert.Equal("lm_head", expected.Layers[^1].Name);
        Assert.NotNull(expected.Layers[^1].RelativeOutputError);

        Assert.Throws<OperationCanceledException>(() => ResumeTestRun.Run(output, options, Calibration, stopAfter: 5));
        Assert.Equal(5, QuantizationJournal.Open(output, Fingerprint(options, Calibration)).FinishedLayers);
        var actual = ResumeTestRun.Run(output, options, Calibration, resume: true);
        ResumeTestRun.AssertIdentical(reference, expected, output, actual);
    }

    [Fact]
    public void MrGptqWithKeptLayersStoppedAndResumedIsBitIdentical()
    {
        // Rotated formats fitted per layer (mxfp4-rot32) and a kept linear per layer: the journal records exactly the
        // quantized linears with their own formats.
        var options = new QuantizeOptions { Method = QuantMethod.MrGptq, Format = QuantFormat.Mxfp4(), KeepLayers = ["v_proj$"] };
        using var dir = new TempDirectory();
        string reference = dir.File("reference"), output = dir.File("resumed");
        var expected = ResumeTestRun.Reference(reference, options, Calibration);
        Assert.Equal(30, expected.Layers.Count);
        Assert.Throws<OperationCanceledException>(() => ResumeTestRun.Run(output, options, Calibration, stopAfter: 2));
        var actual = ResumeTestRun.Run(output, options, Calibration, resume: true);
        ResumeTestRun.AssertIdentical(reference, expected, output, actual);
        // A different rotation block is a different run.
        var other = options with { RotationBlockSize = 16 };
        Assert.Contains(Fingerprint(options, Calibration).Differences(Fingerprint(other, Calibration)), d => d.StartsWith("format", StringComparison.Ordinal));
    }

    [Fact]
    public void RtnWithoutCalibrationStoppedAndResumedIsBitIdentical()
    {
        using var dir = new TempDirectory();
        string reference = dir.File("reference"), output = dir.File("resumed");
        var expected = ResumeTestRun.Reference(reference, Rtn4, null);
        Assert.Throws<OperationCanceledException>(() => ResumeTestRun.Run(output, Rtn4, null, stopAfter: 2));
        var journal = QuantizationJournal.Open(output, Fingerprint(Rtn4, null));
        Assert.Equal(2, journal.FinishedLayers);
        Assert.False(journal.HasHiddenStates); // data-free: only the packed tensors
        var actual = ResumeTestRun.Run(output, Rtn4, null, resume: true);
        ResumeTestRun.AssertIdentical(reference, expected, output, actual);
    }

    [Fact]
    public void KilledMidWriteLeavesAJournalThatResumesBitIdentically()
    {
        using var dir = new TempDirectory();
        string reference = dir.File("reference"), output = dir.File("resumed");
        var expected = ResumeTestRun.Reference(reference, Gptq4, Calibration);
        // A crash right after layer 2 is recorded (an exception, not a cancellation) …
        Assert.Throws<IOException>(() => ResumeTestRun.Run(output, Gptq4, Calibration,
            layerDone: done => { if (done == 2) throw new IOException("simulated crash"); }));
        // … then the leftovers of a kill during layer 2's writes: a partial temporary, a superseded hidden-states file.
        string journalDir = QuantizationJournal.PathIn(output);
        File.WriteAllBytes(Path.Combine(journalDir, "layer-00002.safetensors.tmp-abc123"), new byte[100]);
        File.WriteAllBytes(Path.Combine(journalDir, "hidden-00001.bin"), new byte[64]);
        File.WriteAllBytes(Path.Combine(journalDir, DiskActivationStore.FilePrefix + "0123456789ab.bin"), new byte[64]);

        var actual = ResumeTestRun.Run(output, Gptq4, Calibration, resume: true);
        ResumeTestRun.AssertIdentical(reference, expected, output, actual);
    }

    [Fact]
    public void CrashAfterTheLastLayerResumesWithoutQuantizingAnything()
    {
        // Every layer recorded, then a crash before the output was written (e.g. disk full in the writer).
        using var dir = new TempDirectory();
        string reference = dir.File("reference"), output = dir.File("resumed");
        var expected = ResumeTestRun.Reference(reference, Gptq4, Calibration);
        Assert.Throws<IOException>(() => ResumeTestRun.Run(output, Gptq4, Calibration,
            layerDone: done => { if (done == 5) throw new IOException("simulated crash"); }));
        var seen = new List<int>();
        var actual = ResumeTestRun.Run(output, Gptq4, Calibration, resume: true, layerDone: seen.Add);
        Assert.Equal([5], seen);
        ResumeTestRun.AssertIdentical(reference, expected, output, actual);
    }

    [Fact]
    public void OpenRemovesFilesTheManifestDoesNotName()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out");
        Assert.Throws<OperationCanceledException>(() => ResumeTestRun.Run(output, Rtn4, null, stopAfter: 1));
        string journalDir = QuantizationJournal.PathIn(output);
        File.WriteAllBytes(Path.Combine(journalDir, "layer-00001.safetensors.tmp-x"), new byte[10]);
        QuantizationJournal.Open(output, Fingerprint(Rtn4, null));
        Assert.Equal(["layer-00000.safetensors", "manifest.json"],
            Directory.GetFiles(journalDir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void SpilledActivationsGiveTheInRamResultBitForBit()
    {
        using var dir = new TempDirectory();
        string inRam = dir.File("ram"), spilled = dir.File("spilled");
        using (var model = LlamaModel.Load(PipelineTestData.ModelDirectory))
        {
            var plan = QuantizationPlan.Create(model, Gptq4, Calibration.SampleCount, Calibration.SequenceLength, maxMemoryBytes: 1);
            Assert.True(plan.HiddenStatesSpilled && plan.StageOutputsSpilled);
            Assert.Equal(plan.HiddenStateBytes + plan.StageBytes, plan.SpilledBytes);
        }
        var expected = ResumeTestRun.Run(inRam, Gptq4, Calibration);
        // Spilled, and stopped and resumed on top: the spill files live in the journal directory and are not state.
        Assert.Throws<OperationCanceledException>(() => ResumeTestRun.Run(spilled, Gptq4, Calibration, maxMemory: 1, stopAfter: 2));
        var actual = ResumeTestRun.Run(spilled, Gptq4, Calibration, resume: true, maxMemory: 1);
        ResumeTestRun.AssertIdentical(inRam, expected, spilled, actual);
    }

    [Fact]
    public void PlanSpillsStageOutputsFirstThenHiddenStates()
    {
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        var free = QuantizationPlan.Create(model, Gptq4, 8, 128);
        Assert.False(free.HiddenStatesSpilled || free.StageOutputsSpilled);
        // stories260K: hidden 64, attention 64, intermediate 172 → per token 64 and 172 floats.
        Assert.Equal(8L * 128 * 64 * 4, free.HiddenStateBytes);
        Assert.Equal(8L * 128 * 172 * 4, free.StageBytes);
        long fixedBytes = free.EstimatedPeakBytes - free.CheckpointBytes - free.HiddenStateBytes - free.StageBytes;
        var roomy = QuantizationPlan.Create(model, Gptq4, 8, 128, fixedBytes + free.HiddenStateBytes + free.StageBytes);
        Assert.Equal(0, roomy.SpilledBytes);
        Assert.Equal(free.EstimatedPeakBytes, roomy.EstimatedPeakBytes);
        var tight = QuantizationPlan.Create(model, Gptq4, 8, 128, fixedBytes + free.HiddenStateBytes);
        Assert.True(tight.StageOutputsSpilled && !tight.HiddenStatesSpilled);
        Assert.Equal(free.EstimatedPeakBytes - free.StageBytes, tight.EstimatedPeakBytes);
    }

    [Fact]
    public void AMismatchingRunIsRefusedNamingWhatDiffers()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out");
        Assert.Throws<OperationCanceledException>(() => ResumeTestRun.Run(output, Gptq4, Calibration, stopAfter: 1));
        var other = CalibrationData.FromTokens([.. PipelineTestData.Calibration.Samples.SelectMany(s => s)], 8, 128, seed: 2);
        var e = Assert.Throws<InvalidDataException>(() => QuantizationJournal.Open(output, Fingerprint(Rtn4, other)));
        Assert.Contains("method: journal gptq, this run rtn", e.Message);
        Assert.Contains("calibration: journal 8 × 128 tokens, seed 1, this run 8 × 128 tokens, seed 2", e.Message);
        Assert.Contains("calibration_sha256", e.Message);
        Assert.DoesNotContain("format", e.Message); // same format: not listed
        Assert.Contains("--force", e.Message);
        // The refused journal is untouched and still resumes the original run.
        Assert.Equal(1, QuantizationJournal.Open(output, Fingerprint(Gptq4, Calibration)).FinishedLayers);
    }

    [Fact]
    public void ACorruptLayerFileIsACleanError()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out");
        Assert.Throws<OperationCanceledException>(() => ResumeTestRun.Run(output, Rtn4, null, stopAfter: 2));
        string file = Path.Combine(QuantizationJournal.PathIn(output), "layer-00001.safetensors");
        var bytes = File.ReadAllBytes(file);
        bytes[^1] ^= 0x40;
        File.WriteAllBytes(file, bytes);
        var e = Assert.Throws<InvalidDataException>(() => QuantizationJournal.Open(output, Fingerprint(Rtn4, null)));
        Assert.Contains("layer-00001.safetensors", e.Message);
        Assert.Contains("corrupt", e.Message);
        Assert.Contains("--force", e.Message);
    }

    [Fact]
    public void ATruncatedHiddenStatesFileIsACleanError()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out");
        Assert.Throws<OperationCanceledException>(() => ResumeTestRun.Run(output, Gptq4, Calibration, stopAfter: 1));
        string file = Path.Combine(QuantizationJournal.PathIn(output), "hidden-00001.bin");
        using (var stream = new FileStream(file, FileMode.Open)) stream.SetLength(stream.Length - 4);
        var e = Assert.Throws<InvalidDataException>(() => QuantizationJournal.Open(output, Fingerprint(Gptq4, Calibration)));
        Assert.Contains("hidden-00001.bin", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void AFlippedBitInTheHiddenStatesIsCaughtOnRestore()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out");
        Assert.Throws<OperationCanceledException>(() => ResumeTestRun.Run(output, Gptq4, Calibration, stopAfter: 1));
        string file = Path.Combine(QuantizationJournal.PathIn(output), "hidden-00001.bin");
        var bytes = File.ReadAllBytes(file);
        bytes[12345] ^= 1;
        File.WriteAllBytes(file, bytes);
        var e = Assert.Throws<InvalidDataException>(() => ResumeTestRun.Run(output, Gptq4, Calibration, resume: true));
        Assert.Contains("hidden-00001.bin", e.Message);
        Assert.Contains("CRC-32C", e.Message);
    }

    [Fact]
    public void AGarbledManifestIsACleanError()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out");
        Assert.Throws<OperationCanceledException>(() => ResumeTestRun.Run(output, Rtn4, null, stopAfter: 1));
        File.WriteAllText(Path.Combine(QuantizationJournal.PathIn(output), "manifest.json"), "{\"Version\": 1, \"Layers\": [");
        var e = Assert.Throws<InvalidDataException>(() => QuantizationJournal.Open(output, Fingerprint(Rtn4, null)));
        Assert.Contains("manifest.json", e.Message);
        Assert.Contains("--force", e.Message);
    }

    [Fact]
    public void AJournalWithoutManifestOpensEmpty()
    {
        // Killed inside Create, before the first manifest was renamed into place.
        using var dir = new TempDirectory();
        string output = dir.File("out");
        Directory.CreateDirectory(QuantizationJournal.PathIn(output));
        File.WriteAllText(Path.Combine(QuantizationJournal.PathIn(output), "manifest.json.tmp-zz"), "{");
        var journal = QuantizationJournal.Open(output, Fingerprint(Rtn4, null));
        Assert.Equal(0, journal.FinishedLayers);
        Assert.Equal(["manifest.json"], Directory.GetFiles(journal.Directory).Select(Path.GetFileName));
    }

    [Fact]
    public void FingerprintIgnoresPathsButNotTheModelContent()
    {
        using var dir = new TempDirectory();
        string copy = Cli.CliRunner.CopyModel(dir, "stories260K");
        using var a = LlamaModel.Load(PipelineTestData.ModelDirectory);
        using (var b = LlamaModel.Load(copy))
            Assert.Empty(RunFingerprint.Create(a, Gptq4, Calibration).Differences(RunFingerprint.Create(b, Gptq4, Calibration)));
        // One changed weight byte at the start of a tensor (inside the sampled range) changes the fingerprint.
        string file = Path.Combine(copy, "model.safetensors");
        long offset;
        using (var store = LlmPress.IO.TensorStore.Open(file)) offset = store.GetInfo("model.layers.2.mlp.up_proj.weight").DataOffset;
        using (var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite)) { stream.Position = offset; stream.WriteByte(0x7f); }
        using var c = LlamaModel.Load(copy);
        var differences = RunFingerprint.Create(a, Gptq4, Calibration).Differences(RunFingerprint.Create(c, Gptq4, Calibration));
        Assert.Single(differences);
        Assert.StartsWith("model_sha256", differences[0]);
    }

    private static RunFingerprint Fingerprint(QuantizeOptions options, CalibrationData? calibration)
    {
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        return RunFingerprint.Create(model, options, calibration);
    }
}
