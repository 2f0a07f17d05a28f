using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;
using LlmPress.Sparsity;
using LlmPress.Tests.Quantization.Pipeline;

namespace LlmPress.Tests.Sparsity;

/// <summary>
/// The pruning pipeline on stories260K (5 layers, F32): the weights it produces equal per-layer magnitude pruning of
/// the stored weights, its output errors equal tr(ΔW·H·ΔWᵀ)/tr(W·H·Wᵀ) on Hessians recomputed independently from
/// the inputs a true-sequential schedule must give each linear, and stopped runs resume to the bit.
/// </summary>
public class PruningPipelineTests
{
    private static readonly PruneOptions Magnitude50 = new() { Method = PruneMethod.Magnitude, Sparsity = SparsityPattern.Unstructured(0.5) };

    // 8 windows of 128 tokens.
    private static CalibrationData Calibration => s_calibration.Value;
    private static readonly Lazy<CalibrationData> s_calibration = new(() =>
    {
        var full = PipelineTestData.Calibration;
        return CalibrationData.FromTokens([.. full.Samples.SelectMany(s => s)], 8, 128, seed: 1, source: "tinystories-10k.txt");
    });

    [Fact]
    public void Magnitude_WeightsAreMagnitudePrunedStoredWeights_WithExactCounts()
    {
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        var options = Magnitude50 with { LayerSparsity = new Dictionary<string, SparsityPattern> { ["model.layers.3.mlp.up_proj"] = SparsityPattern.NOfM(1, 4) } };
        var result = PruningPipeline.Run(model, options);
        Assert.Equal(35, result.Layers.Count);
        var linears = model.Layers.SelectMany(l => l.Linears).ToArray();
        for (int i = 0; i < linears.Length; i++)
        {
            var linear = linears[i];
            var pattern = options.PatternFor(linear.Name);
            var expected = MagnitudePruner.Prune(linear.Weight.ToFloatArray(), linear.OutFeatures, linear.InFeatures, pattern);
            var actual = result.Layers[i];
            Assert.Equal(linear.Name, actual.Name);
            Assert.Null(actual.Packed);
            Assert.Equal(expected.Weight, actual.Weight);
            var report = result.Report.Layers[i];
            Assert.Equal(pattern.ZeroCount(linear.OutFeatures, linear.InFeatures), report.PrunedWeights);
            Assert.Equal(actual.Weight!.Count(w => w == 0), report.PrunedWeights); // the F32 source has no zeros of its own
            Assert.Equal(pattern.Name, report.Sparsity);
            Assert.Null(report.RelativeOutputError); // data-free
            Assert.Equal(pattern.IsNOfM ? "bitmask-f32" : "dense-f32", report.Format); // Auto: the bitmask is smaller for N:M
        }
        long zeros = linears.Sum(l => options.PatternFor(l.Name).ZeroCount(l.OutFeatures, l.InFeatures));
        Assert.Equal(zeros, result.Report.PrunedWeights);
        Assert.Equal(zeros / (double)linears.Sum(l => (long)l.OutFeatures * l.InFeatures), result.Report.AchievedSparsity!.Value, 1e-15);
        // The model is restored: the run leaves the stored weights in place.
        Assert.Equal(DType.F32, linears[0].Weight.Type);
        Assert.All(linears, l => Assert.DoesNotContain(0f, l.Weight.ToFloatArray()));
    }

    [Fact]
    public void OutputErrors_AreMeasuredOnTrueSequentialInputs()
    {
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        var result = PruningPipeline.Run(model, Magnitude50, Calibration);
        var pruned = result.Layers.ToDictionary(l => l.Name, l => l.Weight!);
        var reports = result.Report.Layers.ToDictionary(l => l.Name);

        // Each check installs the pruned weights of everything that runs before the linear in a true-sequential
        // schedule (earlier layers, earlier groups of its own layer), records the linear's inputs on the calibration
        // windows with a plain forward pass, and recomputes the relative output error in double precision.
        Check("model.layers.0.self_attn.q_proj", []);
        Check("model.layers.0.self_attn.o_proj", ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj"]);
        Check("model.layers.0.mlp.down_proj", [.. model.Layers[0].Linears.Where(l => l.Name != "model.layers.0.mlp.down_proj").Select(l => l.Name)]);
        Check("model.layers.2.mlp.up_proj", [.. model.Layers.Take(2).SelectMany(l => l.Linears).Select(l => l.Name),
            .. model.Layers[2].Linears.Take(4).Select(l => l.Name)]);

        void Check(string name, string[] before)
        {
            var all = model.Layers.SelectMany(l => l.Linears).ToDictionary(l => l.Name);
            var saved = all.ToDictionary(p => p.Key, p => p.Value.Weight);
            try
            {
                foreach (var b in before) all[b].Weight = WeightView.FromFloats(pruned[b], all[b].OutFeatures, all[b].InFeatures);
                var target = all[name];
                int cols = target.InFeatures, rows = target.OutFeatures;
                var h = new double[cols * cols];
                long tokens = 0;
                var scratch = new ForwardScratch(model.Config);
                foreach (var sample in Calibration.Samples)
                    model.ForwardHidden(sample, scratch, observer: (layer, input, count) =>
                    {
                        if (!ReferenceEquals(layer, target)) return;
                        for (int t = 0; t < count; t++)
                            for (int i = 0; i < cols; i++)
                                for (int j = 0; j < cols; j++)
                                    h[i * cols + j] += (double)input[t * cols + i] * input[t * cols + j];
                        tokens += count;
                    });
                Assert.True(tokens > 0);
                var w = saved[name].ToFloatArray();
                var q = pruned[name];
                double num = 0, den = 0;
                for (int r = 0; r < rows; r++)
                    for (int i = 0; i < cols; i++)
                        for (int j = 0; j < cols; j++)
                        {
                            double hij = h[i * cols + j];
                            num += (w[r * cols + i] - (double)q[r * cols + i]) * (w[r * cols + j] - (double)q[r * cols + j]) * hij;
                            den += w[r * cols + i] * (double)w[r * cols + j] * hij;
                        }
                // The pipeline accumulates H from FP32 activations of its own (identical) forward code: agreement to
                // 1e-4 relative leaves room for summation order, not for a wrong schedule (an input from the wrong
                // weights changes these errors by percents).
                Assert.Equal(num / den, reports[name].RelativeOutputError!.Value, num / den * 1e-4);
            }
            finally
            {
                foreach (var (n, weight) in saved) all[n].Weight = weight;
            }
        }
    }

    [Fact]
    public void StoppedAndResumedRun_IsBitIdentical()
    {
        var options = Magnitude50 with { Sparsity = SparsityPattern.NOfM(2, 4), KeepLayers = ["v_proj$"] };
        using var dir = new TempDirectory();
        PruningResult reference;
        using (var model = LlamaModel.Load(PipelineTestData.ModelDirectory))
            reference = PruningPipeline.Run(model, options, Calibration);
        Assert.Equal(30, reference.Layers.Count);

        string output = dir.File("out");
        using (var model = LlamaModel.Load(PipelineTestData.ModelDirectory))
        {
            var fingerprint = RunFingerprint.Create(model, options.FingerprintFields(), Calibration);
            var journal = QuantizationJournal.Create(output, fingerprint);
            using var stop = new CancellationTokenSource();
            Assert.Throws<OperationCanceledException>(() => PruningPipeline.Run(model, options, Calibration,
                done => { if (done == 2) stop.Cancel(); }, new QuantizationRunSettings { Journal = journal, CancellationToken = stop.Token }));
            Assert.Equal(2, QuantizationJournal.Open(output, fingerprint).FinishedLayers);

            // Other settings are refused, naming what differs.
            var other = RunFingerprint.Create(model, (options with { Sparsity = SparsityPattern.Unstructured(0.5) }).FingerprintFields(), Calibration);
            var e = Assert.Throws<InvalidDataException>(() => QuantizationJournal.Open(output, other));
            Assert.Contains("sparsity: journal 2:4, this run 0.5", e.Message);

            var resumed = PruningPipeline.Run(model, options, Calibration, settings: new QuantizationRunSettings { Journal = QuantizationJournal.Open(output, fingerprint) });
            Assert.Equal(reference.Layers.Count, resumed.Layers.Count);
            for (int i = 0; i < reference.Layers.Count; i++)
            {
                Assert.Equal(reference.Layers[i].Name, resumed.Layers[i].Name);
                Assert.Equal(reference.Layers[i].Weight, resumed.Layers[i].Weight);
                Assert.Equal(reference.Report.Layers[i] with { Seconds = 0 }, resumed.Report.Layers[i] with { Seconds = 0 });
            }
        }
    }

    [Fact]
    public void JointRtn_QuantizesThePrunedWeights_KeepingEveryZero()
    {
        var format = QuantFormat.Int(4, 32, symmetric: false);
        var options = Magnitude50 with
        {
            Sparsity = SparsityPattern.NOfM(2, 4),
            Quantize = new QuantizeOptions { Method = QuantMethod.Rtn, Format = format },
        };
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        var result = PruningPipeline.Run(model, options, Calibration);
        var linears = model.Layers.SelectMany(l => l.Linears).ToArray();
        foreach (var nvfp4 in new[] { false, true })
        {
            var run = nvfp4 ? PruningPipeline.Run(model, options with { Quantize = options.Quantize! with { Format = QuantFormat.Nvfp4() } }) : result;
            for (int i = 0; i < linears.Length; i++)
            {
                var packed = run.Layers[i].Packed!;
                var pruned = MagnitudePruner.Prune(linears[i].Weight.ToFloatArray(), linears[i].OutFeatures, linears[i].InFeatures, options.Sparsity);
                // RTN of the pruned weights (the reference: the format's own quantizer), and every pruned entry stays 0.
                var expected = (nvfp4 ? null : format.Quantize(pruned.Weight, pruned.Rows, pruned.Cols, ScaleSearch.MinMax))?.Dequantize();
                var dequantized = packed.Dequantize();
                if (expected is not null) Assert.Equal(expected, dequantized);
                for (int k = 0; k < dequantized.Length; k++)
                    if (pruned.Pruned[k]) Assert.Equal(0f, dequantized[k]);
                Assert.Equal(pruned.PrunedCount, run.Report.Layers[i].PrunedWeights);
                Assert.Equal(packed.Format.Name, run.Report.Layers[i].Format);
            }
        }
        Assert.All(result.Report.Layers, l => Assert.NotNull(l.RelativeOutputError));
    }

    [Fact]
    public void BadSettings_AreRefusedBeforeAnyWork_NamingTheLayer()
    {
        using var model = LlamaModel.Load(PipelineTestData.ModelDirectory);
        var e = Assert.Throws<ArgumentException>(() => PruningPipeline.Run(model, Magnitude50 with { Sparsity = SparsityPattern.NOfM(3, 8) }));
        Assert.Contains("model.layers.0.mlp.down_proj", e.Message);
        Assert.Contains("172", e.Message);
        e = Assert.Throws<ArgumentException>(() => PruningPipeline.Run(model, Magnitude50 with
        {
            LayerSparsity = new Dictionary<string, SparsityPattern> { ["model.layers.0.mlp.downproj"] = SparsityPattern.Unstructured(0.2) },
        }));
        Assert.Contains("model.layers.0.mlp.downproj", e.Message);
        e = Assert.Throws<ArgumentException>(() => PruningPipeline.Run(model, Magnitude50 with
        {
            Method = PruneMethod.Iobs,
            Quantize = new QuantizeOptions { Method = QuantMethod.Gptq },
        }, Calibration));
        Assert.Contains("iobs is prune-only", e.Message);
        e = Assert.Throws<ArgumentException>(() => PruningPipeline.Run(model, Magnitude50 with { Quantize = new QuantizeOptions { Method = QuantMethod.Rtn, Format = QuantFormat.Mxfp4(), RotationBlockSize = 32 } }));
        Assert.Contains("rotated", e.Message);
        e = Assert.Throws<ArgumentException>(() => PruningPipeline.Run(model, Magnitude50 with { Method = PruneMethod.Wanda }));
        Assert.Contains("calibration", e.Message);
    }
}
