using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Quantization.Pipeline;
using LlmPress.Sparsity;
using System.Text.Json;

namespace LlmPress.Search;

/// <summary>
/// The <see cref="LayerwisePipeline"/> step that builds a level database: each linear is compressed at every level
/// from the one Hessian the pipeline accumulated for its group (one calibration pass per group, not per level), by the
/// very step `quantize` or `prune` runs at that level (<see cref="QuantizeStep"/>, <see cref="PruneStep"/>), so an entry
/// is bit-identical to what that command computes on the same inputs. The calibration level is compressed last and
/// stays installed, so later groups and layers are calibrated on a model compressed at that level. When a decoder
/// layer's last linear is done, all its levels go to "layer-NNNNN.safetensors" (atomically) before the pipeline's
/// journal records the layer, so a layer the journal names always has its file.
/// </summary>
internal sealed class LevelsStep : ILinearStep
{
    /// <summary>Metadata key of a layer file holding its <see cref="LinearLevels"/> (JSON).</summary>
    public const string MetadataKey = "llmpress_levels";

    private readonly LevelDatabaseOptions _options;
    private readonly string _directory;
    private readonly ILinearStep[] _steps;
    private readonly int _calibration;
    private int _layer = -1, _remaining;
    private List<(CompressedLinear[] Levels, LinearLevels Stats)> _done = [];

    public LevelsStep(LevelDatabaseOptions options, string directory)
    {
        _options = options;
        _directory = directory;
        _steps = [.. options.OrderedLevels.Select(level => options.Kind == LevelKind.Bits
            ? (ILinearStep)new QuantizeStep(options.QuantizeOptionsFor(level))
            : new PruneStep(options.PruneOptionsFor(level)))];
        _calibration = options.CalibrationIndex;
    }

    /// <summary>File name of decoder layer <paramref name="index"/>'s levels.</summary>
    public static string FileName(int index) => $"layer-{index:D5}.safetensors";

    /// <summary>Tensor name of <paramref name="linear"/>'s weight at level <paramref name="level"/>.</summary>
    public static string WeightName(string linear, int level) => $"level{level}.{linear}.weight";

    public string MethodName => _options.MethodName;

    public bool NeedsCalibration => _options.NeedsCalibration;

    public bool Applies(LinearLayer linear) => true;

    // The pipeline's memory plan is the calibration level's: the other levels add one layer's compressed copies.
    public QuantizationPlan Plan(LlamaModel model, int? samples, int? sequenceLength, long? maxMemoryBytes) => _steps[_calibration].Plan(model, samples, sequenceLength, maxMemoryBytes);

    public void BeginLayer(DecoderLayer layer)
    {
        _layer = layer.Index;
        _remaining = layer.Linears.Count;
        _done = [];
        foreach (var step in _steps) step.BeginLayer(layer);
    }

    public (CompressedLinear Linear, LayerReport Report) Compress(LinearLayer linear, float[]? hessian)
    {
        var original = linear.Weight;
        long numel = (long)linear.OutFeatures * linear.InFeatures;
        var levels = new CompressedLinear[_steps.Length];
        var entries = new LevelEntry[_steps.Length];
        LayerReport? calibrationReport = null;
        // Every level starts from the stored weight; the calibration level goes last and stays installed.
        for (int k = 0; k < _steps.Length; k++)
        {
            int j = k < _calibration ? k : k == _steps.Length - 1 ? _calibration : k + 1;
            linear.Weight = original;
            var (compressed, report) = _steps[j].Compress(linear, hessian);
            levels[j] = compressed;
            long bytes = CompressedLinearTensors.DataBytes(compressed);
            entries[j] = new LevelEntry(CompressedLinearTensors.FormatName(compressed), bytes, bytes * 8.0 / numel,
                numel - (report.PrunedWeights ?? 0), report.RelativeWeightError, report.RelativeOutputError);
            if (j == _calibration) calibrationReport = report;
        }
        _done.Add((levels, new LinearLevels(linear.Name, linear.OutFeatures, linear.InFeatures, entries)));
        if (--_remaining == 0) WriteLayer();
        return (levels[_calibration], calibrationReport!);
    }

    private void WriteLayer()
    {
        var tensors = new List<TensorToWrite>();
        foreach (var (levels, stats) in _done)
            for (int j = 0; j < levels.Length; j++)
                CompressedLinearTensors.Add(levels[j], WeightName(stats.Name, j), tensors);
        var metadata = new Dictionary<string, string>
        {
            [MetadataKey] = JsonSerializer.Serialize(_done.Select(d => d.Stats).ToArray(), LevelDatabaseManifest.Json),
        };
        SafeTensorsWriter.Write(Path.Combine(_directory, FileName(_layer)), tensors, metadata);
        _done = [];
    }
}
