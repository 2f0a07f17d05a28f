using System.Text.Json;
using LlmPress.Calibration;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Quantization.Pipeline;
using LlmPress.Sparsity;
using LlmPress.Tests.Quantization.Pipeline;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Cli;

/// <summary>`llmpress prune` end to end on stories260K (F32, 5 layers × 7 linears): what is written, loaded and evaluated.</summary>
public class PruneCommandTests
{
    private static string Model => SharedData.Require("models", "stories260K");
    private static string Text => SharedData.Require("data", "tinystories", "tinystories-10k.txt");

    private static readonly string[] LinearSuffixes = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    private static bool IsLinearWeight(string tensor) => tensor.StartsWith("model.layers.", StringComparison.Ordinal)
        && LinearSuffixes.Any(s => tensor.EndsWith(s + ".weight", StringComparison.Ordinal));

    private static int CountZeros(ReadOnlySpan<float> values)
    {
        int zeros = 0;
        foreach (float v in values) if (v == 0) zeros++;
        return zeros;
    }

    [Fact]
    public void Magnitude50_WritesExactZeros_LeavesEverythingElse_AndEvaluates()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out");
        var (code, stdout, err) = CliRunner.Run("prune", Model, "-o", output, "--method", "magnitude", "--sparsity", "0.5", "--json");
        Assert.True(code == 0, err);

        using (var doc = JsonDocument.Parse(stdout))
        {
            var root = doc.RootElement;
            Assert.Equal("magnitude", root.GetProperty("method").GetString());
            Assert.Equal("0.5", root.GetProperty("sparsity").GetString());
            Assert.Equal(JsonValueKind.Null, root.GetProperty("calibration").ValueKind);
            var layers = root.GetProperty("layers").EnumerateArray().ToArray();
            Assert.Equal(35, layers.Length);
            foreach (var l in layers)
            {
                long rows = l.GetProperty("shape")[0].GetInt64(), cols = l.GetProperty("shape")[1].GetInt64();
                Assert.Equal((long)Math.Round(0.5 * rows * cols, MidpointRounding.ToEven), l.GetProperty("pruned_weights").GetInt64());
                Assert.Equal("0.5", l.GetProperty("target_sparsity").GetString());
                Assert.Equal("dense-f32", l.GetProperty("format").GetString());
                Assert.Equal(JsonValueKind.Null, l.GetProperty("relative_output_error").ValueKind);
                Assert.True(l.GetProperty("relative_weight_error").GetDouble() is > 0 and < 0.2);
            }
            var totals = root.GetProperty("totals");
            Assert.Equal(113280, totals.GetProperty("pruned_weights").GetInt64());
            Assert.Equal(0.5, totals.GetProperty("sparsity").GetDouble(), 1e-12);
        }

        // The checkpoint: every linear has exactly its zero count and the source's values elsewhere; embeddings,
        // norms (and the tied head) are the source's bytes.
        using (var source = TensorStore.Open(Model))
        using (var pruned = TensorStore.Open(output))
        {
            Assert.Equal(source.Names.Order(), pruned.Names.Order());
            foreach (var info in source.Tensors)
            {
                var before = source.GetData(info.Name).Span;
                var after = pruned.GetData(info.Name).Span;
                if (!IsLinearWeight(info.Name))
                {
                    Assert.True(before.SequenceEqual(after), $"{info.Name} changed");
                    continue;
                }
                var w = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(before);
                var p = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(after);
                Assert.Equal((int)Math.Round(0.5 * w.Length, MidpointRounding.ToEven), CountZeros(p));
                for (int i = 0; i < w.Length; i++) Assert.True(p[i] == 0 || p[i] == w[i], $"{info.Name}[{i}] changed");
            }
        }
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "config.json"))))
        {
            var s = config.RootElement.GetProperty("sparsity_config");
            Assert.Equal("magnitude", s.GetProperty("method").GetString());
            Assert.Equal("dense", s.GetProperty("format").GetString());
            Assert.Equal(0.5, s.GetProperty("global_sparsity").GetDouble(), 1e-12);
            Assert.Equal(35, s.GetProperty("layer_sparsity").EnumerateObject().Count());
            Assert.False(config.RootElement.TryGetProperty("quantization_config", out _));
        }
        Assert.Contains("# Pruning report: magnitude 0.5", File.ReadAllText(Path.Combine(output, "report.md")));

        double dense = PipelineTestData.Perplexity(Model), sparse = PipelineTestData.Perplexity(output);
        Assert.True(double.IsFinite(sparse) && sparse > dense, $"pruned perplexity {sparse}, dense {dense}");
        (code, stdout, err) = CliRunner.Run("eval", output, "--base", Model, "--data", Text, "--seq-len", "128", "--max-windows", "2", "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout)) Assert.True(doc.RootElement.GetProperty("kl_divergence").GetDouble() > 0);
        (code, _, err) = CliRunner.Run("generate", output, "-p", "Once upon a time", "-n", "8", "--json");
        Assert.True(code == 0, err);
    }

    [Fact]
    public void TwoOfFour_BitmaskLayoutIsSmaller_AndLoadsToTheDenseWeightsBitExactly()
    {
        using var dir = new TempDirectory();
        string bitmask = dir.File("bitmask"), dense = dir.File("dense");
        var run = CliRunner.Run("prune", Model, "-o", bitmask, "--method", "magnitude", "--pattern", "2:4");
        Assert.True(run.ExitCode == 0, run.Err);
        run = CliRunner.Run("prune", Model, "-o", dense, "--method", "magnitude", "--pattern", "2:4", "--layout", "dense");
        Assert.True(run.ExitCode == 0, run.Err);

        long bitmaskBytes = new FileInfo(Path.Combine(bitmask, "model.safetensors")).Length, denseBytes = new FileInfo(Path.Combine(dense, "model.safetensors")).Length;
        Assert.True(bitmaskBytes < denseBytes * 0.65, $"bitmask {bitmaskBytes} B, dense {denseBytes} B"); // F32 2:4: 17 of 32 bits per weight
        using (var store = TensorStore.Open(bitmask))
        {
            Assert.DoesNotContain(store.Names, IsLinearWeight);
            Assert.Contains("model.layers.4.mlp.down_proj.compressed", store.Names);
            Assert.Equal([64L, 86L], store.GetInfo("model.layers.4.mlp.down_proj.compressed").Shape);
            Assert.Equal([64L, 22L], store.GetInfo("model.layers.4.mlp.down_proj.bitmask").Shape);
        }
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(bitmask, "config.json"))))
        {
            var s = config.RootElement.GetProperty("sparsity_config");
            Assert.Equal("sparse-24-bitmask", s.GetProperty("format").GetString());
            Assert.Equal("2:4", s.GetProperty("sparsity_structure").GetString());
            Assert.Equal(35, s.GetProperty("bitmask_layers").GetArrayLength());
        }

        using var a = LlamaModel.Load(bitmask);
        using var b = LlamaModel.Load(dense);
        using var source = LlamaModel.Load(Model);
        for (int l = 0; l < a.Layers.Count; l++)
            for (int i = 0; i < a.Layers[l].Linears.Count; i++)
            {
                var wa = a.Layers[l].Linears[i].Weight.ToFloatArray();
                Assert.Equal(b.Layers[l].Linears[i].Weight.ToFloatArray(), wa);
                // Exactly 2 zeros in every group of 4 consecutive inputs, the others the source's values.
                var w = source.Layers[l].Linears[i].Weight.ToFloatArray();
                for (int g = 0; g < wa.Length; g += 4)
                {
                    Assert.Equal(2, CountZeros(wa.AsSpan(g, 4)));
                    for (int k = g; k < g + 4; k++) Assert.True(wa[k] == 0 || wa[k] == w[k]);
                }
            }
        int[] tokens = [1, 20, 300, 45, 7, 99, 411, 2];
        Assert.Equal(b.Forward(tokens), a.Forward(tokens));

        // GGUF has no sparse type: export writes bitmask layers dense (verified by read-back); loaded back (q/k rows
        // un-permuted), every linear is bit-identical to the dense layout's.
        string gguf = dir.File("pruned.gguf");
        var (exportCode, _, exportErr) = CliRunner.Run("export", bitmask, "--gguf", gguf, "--type", "f32");
        Assert.True(exportCode == 0, exportErr);
        using (var fromGguf = LlmPress.Models.GgufModelLoader.Load(gguf))
            foreach (var (linear, gguffed) in b.Layers.SelectMany(l => l.Linears).Zip(fromGguf.Layers.SelectMany(l => l.Linears)))
                Assert.Equal(linear.Weight.ToFloatArray(), gguffed.Weight.ToFloatArray());

        // A bitmask-layout output cannot be compressed again in place of its missing "X.weight" tensors: refused up front.
        var (code, _, err) = CliRunner.Run("quantize", bitmask, "-o", dir.File("q"));
        CliRunner.AssertOneLineError(code, err, "bitmask layout", "--layout dense");
        (code, _, err) = CliRunner.Run("prune", bitmask, "-o", dir.File("p"), "--method", "magnitude");
        CliRunner.AssertOneLineError(code, err, "prune the original model");
    }

    [Fact]
    public void KeepAndSparsityFile_AreApplied()
    {
        using var dir = new TempDirectory();
        string file = dir.File("sparsity.json"), output = dir.File("out");
        File.WriteAllText(file, """{"model.layers.1.mlp.down_proj": 0.75, "model.layers.2.self_attn.q_proj": "2:4", "model.layers.0.mlp.up_proj": 0.9}""");
        var (code, stdout, err) = CliRunner.Run("prune", Model, "-o", output, "--method", "magnitude", "--sparsity", "30%",
            "--keep", "layers\\.0\\.", "--sparsity-file", file, "--json");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var layers = doc.RootElement.GetProperty("layers").EnumerateArray().ToDictionary(l => l.GetProperty("name").GetString()!);
        Assert.Equal(28, layers.Count); // layer 0 kept, even its up_proj entry
        Assert.DoesNotContain(layers.Keys, n => n.StartsWith("model.layers.0.", StringComparison.Ordinal));
        Assert.Equal(Math.Round(0.75 * 64 * 172, MidpointRounding.ToEven), layers["model.layers.1.mlp.down_proj"].GetProperty("pruned_weights").GetInt64());
        Assert.Equal("2:4", layers["model.layers.2.self_attn.q_proj"].GetProperty("target_sparsity").GetString());
        Assert.Equal("bitmask-f32", layers["model.layers.2.self_attn.q_proj"].GetProperty("format").GetString());
        Assert.Equal(Math.Round(0.3 * 64 * 64, MidpointRounding.ToEven), layers["model.layers.3.self_attn.q_proj"].GetProperty("pruned_weights").GetInt64());

        using var source = TensorStore.Open(Model);
        using var pruned = TensorStore.Open(output);
        foreach (var name in source.Names.Where(n => n.StartsWith("model.layers.0.", StringComparison.Ordinal)))
            Assert.True(source.GetData(name).Span.SequenceEqual(pruned.GetData(name).Span), $"{name} changed");
        using var model = LlamaModel.Load(output);
        Assert.Equal((int)Math.Round(0.75 * 64 * 172, MidpointRounding.ToEven), CountZeros(model.Layers[1].DownProj.Weight.ToFloatArray()));
    }

    [Fact]
    public void DryRun_PrintsThePlanAndWritesNothing()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out");
        var (code, stdout, err) = CliRunner.Run("prune", Model, "-o", output, "--method", "magnitude", "--pattern", "2:4", "--dry-run", "--json");
        Assert.True(code == 0, err);
        Assert.False(Directory.Exists(output));
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.True(root.GetProperty("dry_run").GetBoolean());
        Assert.Equal("2:4", root.GetProperty("sparsity").GetString());
        var layers = root.GetProperty("layers").EnumerateArray().ToArray();
        Assert.Equal(35, layers.Length);
        Assert.All(layers, l => Assert.Equal("2:4 bitmask-f32", l.GetProperty("format").GetString()));
        Assert.True(root.GetProperty("output_bytes").GetInt64() < root.GetProperty("checkpoint_bytes").GetInt64());

        (code, stdout, err) = CliRunner.Run("prune", Model, "-o", output, "--method", "magnitude", "--dry-run");
        Assert.True(code == 0, err);
        Assert.Contains("plan: magnitude 0.5 f32", stdout);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void JointRtn_StoresPackedLayersWhoseZerosAreExact()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out");
        var (code, _, err) = CliRunner.Run("prune", Model, "-o", output, "--method", "magnitude", "--pattern", "2:4", "--quantize", "int4",
            "--group-size", "32", "--quant-method", "rtn", "--calib", Text, "--calib-samples", "4", "--calib-seq-len", "64");
        Assert.True(code == 0, err);
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "config.json"))))
        {
            Assert.Equal("int4-asym-g32", config.RootElement.GetProperty("quantization_config").GetProperty("format").GetString());
            Assert.True(config.RootElement.GetProperty("sparsity_config").GetProperty("jointly_quantized").GetBoolean());
        }
        using var model = LlamaModel.Load(output);
        foreach (var linear in model.Layers.SelectMany(l => l.Linears))
        {
            Assert.NotNull(linear.Quantized); // runs from its codes
            var w = linear.Weight.ToFloatArray();
            for (int g = 0; g < w.Length; g += 4) Assert.True(CountZeros(w.AsSpan(g, 4)) >= 2, $"{linear.Name}: group at {g} is not 2:4");
        }
        Assert.True(double.IsFinite(PipelineTestData.Perplexity(output)));
    }

    // stories260K with every F32 tensor rounded to BF16 (nearest even), as most published checkpoints are stored.
    private static string Bf16Copy(TempDirectory dir)
    {
        string target = dir.File("stories260K-bf16");
        Directory.CreateDirectory(target);
        foreach (var name in new[] { "config.json", "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(Model, name), Path.Combine(target, name));
        using var source = TensorStore.Open(Model);
        var tensors = new List<TensorToWrite>();
        foreach (var info in source.Tensors)
        {
            var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(source.GetData(info.Name).Span);
            var bf16 = new ushort[values.Length];
            for (int i = 0; i < values.Length; i++) bf16[i] = FloatConversion.SingleToBFloat16(values[i]);
            tensors.Add(new TensorToWrite(info.Name, DType.BF16, info.Shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(bf16.AsSpan()).ToArray()));
        }
        SafeTensorsWriter.Write(Path.Combine(target, "model.safetensors"), tensors);
        return target;
    }

    [Fact]
    public void Bf16Checkpoint_StaysBf16_WithExactZeros_AndErrorsOfTheStoredValues()
    {
        using var dir = new TempDirectory();
        string bf16 = Bf16Copy(dir), dense = dir.File("dense"), bitmask = dir.File("bitmask");
        var (code, stdout, err) = CliRunner.Run("prune", bf16, "-o", dense, "--method", "magnitude", "--pattern", "2:4", "--layout", "dense", "--json",
            "--calib", Text, "--calib-samples", "4", "--calib-seq-len", "64");
        Assert.True(code == 0, err);
        (code, _, err) = CliRunner.Run("prune", bf16, "-o", bitmask, "--method", "magnitude", "--pattern", "2:4");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var reports = doc.RootElement.GetProperty("layers").EnumerateArray().ToDictionary(l => l.GetProperty("name").GetString()!);
        Assert.Equal("bf16", doc.RootElement.GetProperty("format").GetString());

        using var source = TensorStore.Open(bf16);
        using var pruned = TensorStore.Open(dense);
        foreach (var info in source.Tensors.Where(t => IsLinearWeight(t.Name)))
        {
            Assert.Equal(DType.BF16, pruned.GetInfo(info.Name).DType);
            var w = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(source.GetData(info.Name).Span);
            var p = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(pruned.GetData(info.Name).Span);
            // 2 exact (+0) zeros per group of 4, the other two the source's BF16 bits.
            double removed = 0, total = 0;
            for (int g = 0; g < w.Length; g += 4)
            {
                int zeros = 0;
                for (int k = g; k < g + 4; k++)
                {
                    float original = FloatConversion.BFloat16ToSingle(w[k]);
                    total += (double)original * original;
                    if (p[k] == 0) { zeros++; removed += (double)original * original; }
                    else Assert.Equal(w[k], p[k]);
                }
                Assert.Equal(2, zeros);
            }
            // The reported weight error is that of the stored values (here: the removed energy of the kept-as-is weights).
            string module = info.Name[..^".weight".Length];
            Assert.Equal(removed / total, reports[module].GetProperty("relative_weight_error").GetDouble(), removed / total * 1e-5);
            Assert.Equal("dense-bf16", reports[module].GetProperty("format").GetString());
            Assert.Equal(16.0, reports[module].GetProperty("bits_per_weight").GetDouble());
        }
        using (var store = TensorStore.Open(bitmask))
            Assert.Equal(DType.BF16, store.GetInfo("model.layers.0.mlp.down_proj.compressed").DType);

        // Interrupted after 2 layers (the journal holds the pruned weights as BF16, exact) and resumed: the same bytes.
        string resumed = dir.File("resumed");
        using (var model = LlamaModel.Load(bf16))
        {
            var tokenizer = Tokenizer.Load(Path.Combine(bf16, "tokenizer.json"));
            var calibration = CalibrationData.FromText(tokenizer, File.ReadAllText(Text), model.Config.BosTokenId ?? tokenizer.BosTokenId, 4, 64, 0);
            var options = new PruneOptions { Method = PruneMethod.Magnitude, Sparsity = SparsityPattern.NOfM(2, 4), Layout = SparseLayout.Dense };
            var journal = QuantizationJournal.Create(resumed, RunFingerprint.Create(model, options.FingerprintFields(), calibration));
            using var stop = new CancellationTokenSource();
            Assert.Throws<OperationCanceledException>(() => PruningPipeline.Run(model, options, calibration,
                done => { if (done == 2) stop.Cancel(); }, new QuantizationRunSettings { Journal = journal, CancellationToken = stop.Token }));
            using var layer = SafeTensorsFile.Open(Path.Combine(journal.Directory, "layer-00000.safetensors"));
            Assert.All(layer.Tensors, t => Assert.Equal(DType.BF16, t.DType));
        }
        (code, _, err) = CliRunner.Run("prune", bf16, "-o", resumed, "--method", "magnitude", "--pattern", "2:4", "--layout", "dense",
            "--calib", Text, "--calib-samples", "4", "--calib-seq-len", "64", "--resume");
        Assert.True(code == 0, err);
        Assert.Contains("2 of 5 layers already done", err);
        Assert.True(File.ReadAllBytes(Path.Combine(dense, "model.safetensors")).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(resumed, "model.safetensors"))));
        using var a = LlamaModel.Load(dense);
        using var b = LlamaModel.Load(bitmask);
        for (int l = 0; l < a.Layers.Count; l++)
            for (int i = 0; i < a.Layers[l].Linears.Count; i++)
            {
                Assert.Equal(DType.BF16, b.Layers[l].Linears[i].Weight.Type);
                Assert.True(a.Layers[l].Linears[i].Weight.Data.Span.SequenceEqual(b.Layers[l].Linears[i].Weight.Data.Span));
            }
    }

    public static TheoryData<string[], string[]> BadInputs => new()
    {
        { ["--sparsity", "1.5"], ["--sparsity 1.5", "[0, 1)"] },
        { ["--sparsity", "-0.1"], ["[0, 1)"] },
        { ["--sparsity", "0.5", "--pattern", "2:4"], ["--sparsity", "--pattern", "exclude"] },
        { ["--pattern", "4:4"], ["--pattern 4:4", "N < M"] },
        { ["--pattern", "6:4"], ["N < M"] },
        { ["--pattern", "0.5"], ["--pattern 0.5", "N:M"] },
        { ["--method", "magnitude", "--pattern", "3:8"], ["model.layers.0.mlp.down_proj", "multiple of 8", "172"] },
        { ["--method", "magnitude", "--sparsity-file", "{missing}"], ["sparsity file not found"] },
        { ["--method", "wanda"], ["--method wanda", "--calib"] },
        { ["--method", "sparsegpt", "--pattern", "2:4"], ["--method sparsegpt", "--calib"] },
        { ["--method", "iobs", "--quantize", "int4", "--calib", "{calib}"], ["iobs is prune-only", "--quantize"] },
        { ["--method", "magnitude", "--quantize", "higgs4", "--quant-method", "rtn"], ["HIGGS or rotated"] },
        { ["--method", "magnitude", "--quantize", "nvfp4", "--quant-method", "mr-gptq"], ["rotated", "mr-gptq"] },
        { ["--method", "magnitude", "--quantize", "mxfp4", "--rotation-block", "32", "--quant-method", "rtn"], ["rotated"] },
        { ["--method", "magnitude", "--quantize", "int4"], ["--quant-method gptq", "--calib", "--quant-method rtn"] },
        { ["--method", "magnitude", "--group-size", "64"], ["--quantize FORMAT"] },
        { ["--method", "magnitude", "--force", "--resume"], ["--force", "--resume"] },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void BadInput_IsOneLineError_AndWritesNothing(string[] args, string[] fragments)
    {
        using var dir = new TempDirectory();
        string output = dir.File("out");
        string[] full = ["prune", Model, "-o", output, .. args.Select(a => a.Replace("{calib}", Text).Replace("{missing}", dir.File("missing.json")))];
        var (code, _, err) = CliRunner.Run(full);
        CliRunner.AssertOneLineError(code, err, fragments);
        Assert.False(Directory.Exists(output), "a refused run left an output directory");
    }

    [Fact]
    public void ExistingOutput_IsRefusedWithoutForce()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "keep.txt"), "mine");
        var (code, _, err) = CliRunner.Run("prune", Model, "-o", output, "--method", "magnitude");
        CliRunner.AssertOneLineError(code, err, output, "already exists", "--force");
        Assert.Equal("mine", File.ReadAllText(Path.Combine(output, "keep.txt")));
        (code, _, err) = CliRunner.Run("prune", Model, "-o", output, "--method", "magnitude", "--force");
        Assert.True(code == 0, err);
        Assert.False(File.Exists(Path.Combine(output, "keep.txt")));
    }

    private static string[] Calibrated(string output, string sparsity = "0.5") =>
        ["prune", Model, "-o", output, "--method", "magnitude", "--sparsity", sparsity, "--calib", Text, "--calib-samples", "8", "--calib-seq-len", "128", "--seed", "3"];

    [Fact]
    public void InterruptedRun_ResumesBitIdentically_AndOtherSettingsAreRefused()
    {
        using var dir = new TempDirectory();
        string reference = dir.File("reference"), output = dir.File("out");
        var run = CliRunner.Run(Calibrated(reference));
        Assert.True(run.ExitCode == 0, run.Err);
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(reference, "report.json"))))
            Assert.All(doc.RootElement.GetProperty("layers").EnumerateArray(), l => Assert.True(l.GetProperty("relative_output_error").GetDouble() > 0));

        // What the CLI does up to an interruption after 2 layers: the same calibration windows and fingerprint.
        using (var model = LlamaModel.Load(Model))
        {
            var tokenizer = Tokenizer.Load(Path.Combine(Model, "tokenizer.json"));
            var calibration = CalibrationData.FromText(tokenizer, File.ReadAllText(Text), model.Config.BosTokenId ?? tokenizer.BosTokenId, 8, 128, 3);
            var options = new PruneOptions { Method = PruneMethod.Magnitude, Sparsity = SparsityPattern.Unstructured(0.5) };
            var journal = QuantizationJournal.Create(output, RunFingerprint.Create(model, options.FingerprintFields(), calibration));
            using var stop = new CancellationTokenSource();
            Assert.Throws<OperationCanceledException>(() => PruningPipeline.Run(model, options, calibration,
                done => { if (done == 2) stop.Cancel(); }, new QuantizationRunSettings { Journal = journal, CancellationToken = stop.Token }));
        }

        var (code, _, err) = CliRunner.Run(Calibrated(output));
        CliRunner.AssertOneLineError(code, err, output, "--resume", "--force");
        (code, _, err) = CliRunner.Run([.. Calibrated(output, "0.6"), "--resume"]);
        CliRunner.AssertOneLineError(code, err, "different run", "sparsity: journal 0.5, this run 0.6");

        (code, _, err) = CliRunner.Run([.. Calibrated(output), "--resume"]);
        Assert.True(code == 0, err);
        Assert.Contains("2 of 5 layers already done", err);
        foreach (var file in new[] { "model.safetensors", "config.json" })
            Assert.True(File.ReadAllBytes(Path.Combine(reference, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(output, file))), $"{file} differs");
        Assert.False(QuantizationJournal.Exists(output));

        // Activations spilled to disk under a tiny memory budget: the same bytes again.
        string spilled = dir.File("spilled");
        (code, _, err) = CliRunner.Run([.. Calibrated(spilled), "--max-memory", "1M"]);
        Assert.True(code == 0, err);
        Assert.True(File.ReadAllBytes(Path.Combine(reference, "model.safetensors")).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(spilled, "model.safetensors"))));

        (code, var stdout, err) = CliRunner.Run([.. Calibrated(output), "--resume", "--json"]);
        Assert.True(code == 0, err);
        Assert.Contains("already complete", err);
        using (var doc = JsonDocument.Parse(stdout)) Assert.Equal(35, doc.RootElement.GetProperty("layers").GetArrayLength());
        (code, _, err) = CliRunner.Run([.. Calibrated(output, "0.7"), "--resume"]);
        CliRunner.AssertOneLineError(code, err, "magnitude 0.5", "magnitude 0.7", "--force");
    }

    [Fact]
    public void Help_ExplainsTheDefaults()
    {
        var (code, stdout, _) = CliRunner.Run("prune", "--help");
        Assert.Equal(0, code);
        foreach (var fragment in new[] { "--method", "sparsegpt", "default", "--sparsity", "--pattern", "2:4", "--sparsity-file", "--quantize", "--quant-method",
                     "--layout", "--iobs-iterations", "--keep", "--calib", "--resume", "--dry-run", "--max-memory", "--json" })
            Assert.Contains(fragment, stdout);
    }
}
