using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// Renders a <see cref="QuantizationReport"/> as report.json (snake_case keys) and report.md (tables); a pruning run's
/// report adds the sparsity fields (target, pruned count, achieved sparsity, iterations).
/// </summary>
public static class QuantizationReportWriter
{
    private static readonly JsonSerializerOptions s_indented = new() { WriteIndented = true };

    /// <summary>The report as a JSON object: {method, format, calibration, totals, layers: [...]}.</summary>
    public static JsonObject ToJson(QuantizationReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var layers = new JsonArray();
        foreach (var l in report.Layers)
        {
            var layer = new JsonObject
            {
                ["name"] = l.Name,
                ["shape"] = new JsonArray(l.Rows, l.Cols),
                ["format"] = l.Format,
                ["bits_per_weight"] = l.BitsPerWeight,
                ["relative_weight_error"] = l.RelativeWeightError,
                ["relative_output_error"] = l.RelativeOutputError,
                ["seconds"] = l.Seconds,
                ["bytes_before"] = l.BytesBefore,
                ["bytes_after"] = l.BytesAfter,
            };
            if (report.Sparsity is not null)
            {
                layer["target_sparsity"] = l.Sparsity;
                layer["pruned_weights"] = l.PrunedWeights;
                layer["sparsity"] = l.AchievedSparsity;
                layer["iterations"] = l.Iterations;
            }
            layers.Add(layer);
        }
        var json = new JsonObject
        {
            ["method"] = report.Method,
            ["format"] = report.Format,
            ["calibration"] = report.CalibrationSamples is null ? null : new JsonObject
            {
                ["samples"] = report.CalibrationSamples,
                ["seq_len"] = report.CalibrationSequenceLength,
                ["seed"] = report.Seed,
            },
            ["totals"] = new JsonObject
            {
                ["quantized_layers"] = report.Layers.Count,
                ["quantized_bytes_before"] = report.QuantizedBytesBefore,
                ["quantized_bytes_after"] = report.QuantizedBytesAfter,
                ["total_bytes_before"] = report.TotalBytesBefore,
                ["total_bytes_after"] = report.TotalBytesAfter,
                ["average_bits_per_weight"] = report.AverageBitsPerWeight,
                ["wall_seconds"] = report.WallSeconds,
                ["peak_working_set_bytes"] = report.PeakWorkingSetBytes,
                ["peak_managed_bytes"] = report.PeakManagedBytes,
            },
            ["layers"] = layers,
        };
        if (report.Sparsity is not null)
        {
            json.Insert(2, "sparsity", report.Sparsity);
            var totals = (JsonObject)json["totals"]!;
            totals.Insert(1, "pruned_weights", report.PrunedWeights);
            totals.Insert(2, "sparsity", report.AchievedSparsity);
        }
        return json;
    }

    public static string ToJsonText(QuantizationReport report) => ToJson(report).ToJsonString(s_indented);

    /// <summary>The report as Markdown: a summary list and one table row per layer.</summary>
    public static string ToMarkdown(QuantizationReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        bool pruned = report.Sparsity is not null;
        if (pruned) sb.Append(c, $"# Pruning report: {report.Method} {report.Sparsity}, {report.Format}\n\n");
        else sb.Append(c, $"# Quantization report: {report.Method} {report.Format}\n\n");
        if (report.CalibrationSamples is { } n)
            sb.Append(c, $"- calibration: {n} × {report.CalibrationSequenceLength} tokens, seed {report.Seed}\n");
        string what = pruned ? "compressed" : "quantized";
        if (pruned)
        {
            sb.Append(c, $"- pruned weights: {report.PrunedWeights:N0} ({report.AchievedSparsity:0.0000} of the compressed layers)\n");
            sb.Append("- errors compare the source weights with the weights as stored (rounded to the checkpoint's dtype, or dequantized), "
                      + "which are also what later layers' calibration inputs were computed with\n");
        }
        sb.Append(c, $"- {what} layers: {report.Layers.Count}, {report.AverageBitsPerWeight:0.000} bits/weight on average\n");
        sb.Append(c, $"- {what} weights: {report.QuantizedBytesBefore:N0} → {report.QuantizedBytesAfter:N0} bytes\n");
        sb.Append(c, $"- all tensors: {report.TotalBytesBefore:N0} → {report.TotalBytesAfter:N0} bytes\n");
        sb.Append(c, $"- wall time: {report.WallSeconds:0.00} s, peak working set {report.PeakWorkingSetBytes / 1048576.0:0.0} MiB, peak managed heap {report.PeakManagedBytes / 1048576.0:0.0} MiB\n\n");
        if (pruned)
        {
            sb.Append("| layer | shape | format | target | pruned | sparsity | bits/weight | rel. weight error | rel. output error | iterations | seconds |\n");
            sb.Append("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        }
        else
        {
            sb.Append("| layer | shape | format | bits/weight | rel. weight error | rel. output error | seconds |\n");
            sb.Append("|---|---|---|---:|---:|---:|---:|\n");
        }
        foreach (var l in report.Layers)
        {
            string outputError = l.RelativeOutputError is { } e ? e.ToString("0.000e+00", c) : "–";
            if (pruned)
                sb.Append(c, $"| {l.Name} | {l.Rows}×{l.Cols} | {l.Format} | {l.Sparsity} | {l.PrunedWeights:N0} | {l.AchievedSparsity:0.0000} | {l.BitsPerWeight:0.000} | {l.RelativeWeightError:0.000e+00} | {outputError} | {(l.Iterations is { } i ? i.ToString(c) : "–")} | {l.Seconds:0.000} |\n");
            else
                sb.Append(c, $"| {l.Name} | {l.Rows}×{l.Cols} | {l.Format} | {l.BitsPerWeight:0.000} | {l.RelativeWeightError:0.000e+00} | {outputError} | {l.Seconds:0.000} |\n");
        }
        return sb.ToString();
    }
}
