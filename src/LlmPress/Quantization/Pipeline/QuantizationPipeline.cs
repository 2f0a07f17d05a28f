using System.Diagnostics;
using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// Quantizes every decoder-layer linear of a model, one decoder layer at a time (GPTQ's sequential recipe):
/// <list type="number">
/// <item>embed every calibration sample once: hidden states [samples, seqLen, hidden] stay in memory;</item>
/// <item>for each layer, run every sample through it with an observer feeding one <see cref="HessianAccumulator"/> per
/// distinct input (q/k/v share one, gate/up share one, o and down their own); all seven Hessians come from this one
/// pass over the unquantized layer (gptq.py without --true-sequential);</item>
/// <item>quantize each linear (GPTQ, or RTN onto the format), swap in the dequantized FP32 weight;</item>
/// <item>re-run the quantized layer on every sample: its outputs are the next layer's inputs, so errors propagate.</item>
/// </list>
/// Without calibration data (RTN, HIGGS) steps 1, 2 and 4 are skipped and no output error is reported. Embeddings and
/// lm_head are left alone. The model is restored to its original weights when the run ends (or fails).
/// </summary>
public static class QuantizationPipeline
{
    /// <summary>Runs the pipeline.</summary>
    /// <param name="model">The FP model; its layers are modified during the run and restored afterwards.</param>
    /// <param name="options">Method and format.</param>
    /// <param name="calibration">Calibration windows; required for GPTQ, optional otherwise (enables output errors).</param>
    /// <param name="layerDone">Called with the number of decoder layers finished so far.</param>
    /// <exception cref="ArgumentException">Missing calibration for GPTQ, windows longer than the model's positions, a
    /// format/method mismatch, or a quantization failure (the message names the layer).</exception>
    public static QuantizationResult Run(LlamaModel model, QuantizeOptions options, CalibrationData? calibration = null,
        Action<int>? layerDone = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.NeedsCalibration && calibration is null)
            throw new ArgumentException($"Method {MethodName(options.Method)} is data-aware and needs calibration text (--calib FILE).");
        var config = model.Config;
        if (calibration is not null && calibration.SequenceLength > config.MaxPositions)
            throw new ArgumentException($"Calibration windows of {calibration.SequenceLength} tokens exceed the model's {config.MaxPositions} positions.");

        var clock = Stopwatch.StartNew();
        long peakManaged = GC.GetTotalMemory(false);
        int d = config.HiddenSize;
        int seqLen = calibration?.SequenceLength ?? 0;

        // hidden[s]: [seqLen, hidden], the current layer's input for sample s.
        float[][] hidden = [];
        ForwardScratch? scratch = null;
        if (calibration is not null)
        {
            hidden = new float[calibration.SampleCount][];
            for (int s = 0; s < hidden.Length; s++)
            {
                hidden[s] = new float[seqLen * d];
                model.Embed(calibration.Samples[s], hidden[s]);
            }
            scratch = new ForwardScratch(config);
            scratch.EnsureCapacity(seqLen);
        }

        var layers = new List<QuantizedLayer>();
        var reports = new List<LayerReport>();
        for (int l = 0; l < model.Layers.Count; l++)
        {
            var layer = model.Layers[l];
            var linears = layer.Linears;
            var originals = linears.Select(x => x.Weight).ToArray();
            try
            {
                Dictionary<LinearLayer, HessianAccumulator>? hessians = null;
                if (scratch is not null)
                {
                    hessians = CaptureHessians(layer, hidden, seqLen, scratch);
                    peakManaged = Math.Max(peakManaged, GC.GetTotalMemory(false));
                }
                var hessianCache = new Dictionary<HessianAccumulator, float[]>();
                foreach (var linear in linears)
                {
                    float[]? h = null;
                    if (hessians is not null)
                    {
                        var acc = hessians[linear];
                        if (!hessianCache.TryGetValue(acc, out h)) hessianCache[acc] = h = acc.GetHessian();
                    }
                    var (packed, report) = QuantizeLinear(linear, h, options);
                    layers.Add(new QuantizedLayer(linear.Name, packed));
                    reports.Add(report);
                }
                hessianCache.Clear();
                peakManaged = Math.Max(peakManaged, GC.GetTotalMemory(false));

                // Next layer's inputs: the quantized layer's outputs.
                if (scratch is not null)
                    foreach (var state in hidden)
                    {
                        state.CopyTo(scratch.Hidden, 0);
                        layer.Forward(seqLen, 0, scratch);
                        scratch.Hidden.AsSpan(0, seqLen * d).CopyTo(state);
                    }
            }
            finally
            {
                for (int i = 0; i < linears.Count; i++) linears[i].Weight = originals[i];
            }
            layerDone?.Invoke(l + 1);
        }

        var result = new QuantizationReport
        {
            Method = MethodName(options.Method),
            Format = options.Format.Name,
            Layers = reports,
            CalibrationSamples = calibration?.SampleCount,
            CalibrationSequenceLength = calibration?.SequenceLength,
            Seed = calibration?.Seed,
            WallSeconds = clock.Elapsed.TotalSeconds,
            PeakWorkingSetBytes = Process.GetCurrentProcess().PeakWorkingSet64,
            PeakManagedBytes = peakManaged,
        };
        return new QuantizationResult(layers, result);
    }

    /// <summary>Lower-case method name as used on the command line and in reports.</summary>
    public static string MethodName(QuantMethod method) => method switch
    {
        QuantMethod.Gptq => "gptq",
        QuantMethod.Higgs => "higgs",
        _ => "rtn",
    };

    // One pass of every sample through the (unquantized) layer; returns each linear's accumulator (shared by q/k/v and gate/up).
    private static Dictionary<LinearLayer, HessianAccumulator> CaptureHessians(DecoderLayer layer, float[][] hidden, int seqLen, ForwardScratch scratch)
    {
        var attention = new HessianAccumulator(layer.QueryProj.InFeatures);
        var output = new HessianAccumulator(layer.OutputProj.InFeatures);
        var mlp = new HessianAccumulator(layer.GateProj.InFeatures);
        var down = new HessianAccumulator(layer.DownProj.InFeatures);
        void Observe(LinearLayer linear, ReadOnlySpan<float> input, int tokenCount)
        {
            // k/v and up see exactly the input q and gate saw: add it once.
            if (ReferenceEquals(linear, layer.QueryProj)) attention.Add(input, tokenCount);
            else if (ReferenceEquals(linear, layer.OutputProj)) output.Add(input, tokenCount);
            else if (ReferenceEquals(linear, layer.GateProj)) mlp.Add(input, tokenCount);
            else if (ReferenceEquals(linear, layer.DownProj)) down.Add(input, tokenCount);
        }
        foreach (var state in hidden)
        {
            state.CopyTo(scratch.Hidden, 0);
            layer.Forward(seqLen, 0, scratch, observer: Observe);
        }
        return new Dictionary<LinearLayer, HessianAccumulator>(ReferenceEqualityComparer.Instance)
        {
            [layer.QueryProj] = attention, [layer.KeyProj] = attention, [layer.ValueProj] = attention,
            [layer.OutputProj] = output,
            [layer.GateProj] = mlp, [layer.UpProj] = mlp,
            [layer.DownProj] = down,
        };
    }

    // Quantizes one linear and swaps its dequantized FP32 weight in (original basis, so no online rotation is needed).
    private static (PackedWeight Packed, LayerReport Report) QuantizeLinear(LinearLayer linear, float[]? hessian, QuantizeOptions options)
    {
        var start = Stopwatch.GetTimestamp();
        var original = linear.Weight;
        int rows = original.Rows, cols = original.Cols;
        float[] weight = original.ToFloatArray();
        PackedWeight packed;
        float[] dequantized;
        try
        {
            if (options.Method == QuantMethod.Gptq)
            {
                var gptq = Gptq.Quantize(weight, rows, cols, hessian!, options.Format, new GptqOptions
                {
                    ActOrder = options.ActOrder,
                    DampPercent = options.DampPercent,
                    LayerName = linear.Name,
                });
                packed = gptq.Packed;
                dequantized = gptq.Dequantized;
            }
            else
            {
                packed = options.Format.Quantize(weight, rows, cols);
                dequantized = packed.Dequantize();
            }
        }
        catch (ArgumentException e) when (!e.Message.Contains(linear.Name, StringComparison.Ordinal))
        {
            throw new ArgumentException($"{linear.Name}: {e.Message}", e);
        }
        double weightError = LayerError.RelativeWeightError(weight, dequantized);
        double? outputError = hessian is null ? null : LayerError.RelativeOutputError(weight, dequantized, rows, cols, hessian);
        linear.Weight = WeightView.FromFloats(dequantized, rows, cols);
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var report = new LayerReport(linear.Name, rows, cols, packed.Format.Name, packed.BitsPerWeight, weightError, outputError,
            seconds, original.Data.Length, packed.StorageBytes);
        return (packed, report);
    }
}
