using LlmPress.Export;

namespace LlmPress.Cli.Commands;

/// <summary>`llmpress export &lt;quantized-dir&gt; --compressed-tensors &lt;out-dir&gt;`: the safetensors + quantization_config layout vLLM loads.</summary>
internal static class ExportCompressedTensors
{
    public static int Run(CliConsole console, string modelPath, string output, CompressedTensorsExportOptions options, bool json)
    {
        if (File.Exists(modelPath)) throw new CliException($"{modelPath}: expected a quantized model directory (an `llmpress quantize` output), got a file.");
        if (!Directory.Exists(modelPath)) throw new CliException($"{modelPath}: model directory not found.");
        if (File.Exists(output)) throw new CliException($"{output}: is a file; --compressed-tensors takes a directory.");
        if (Directory.Exists(output) && !options.Overwrite)
            throw new CliException($"{output}: already exists; choose another --compressed-tensors directory or pass --force to replace it.");
        if (Path.GetFullPath(output).TrimEnd(Path.DirectorySeparatorChar) == Path.GetFullPath(modelPath).TrimEnd(Path.DirectorySeparatorChar))
            throw new CliException($"{output}: is the model directory itself; choose another --compressed-tensors directory.");

        var report = console.WithProgress("compressed-tensors", 1000,
            progress => CompressedTensorsExporter.Export(modelPath, output, options, (done, total) => progress((int)(1000L * done / total))));
        foreach (var warning in report.Warnings) console.Log($"warning: {warning}");
        if (json)
        {
            console.WriteJson(new Dictionary<string, object?>
            {
                ["path"] = report.Directory,
                ["bytes"] = report.Bytes,
                ["format"] = report.Format,
                ["verified"] = report.Verified,
                ["seconds"] = report.Seconds,
                ["copied_tensors"] = report.CopiedTensors,
                ["ignore"] = report.Ignore,
                ["warnings"] = report.Warnings,
                ["layers"] = report.Layers.Select(l => new Dictionary<string, object?>
                {
                    ["module"] = l.Module, ["source_format"] = l.SourceFormat, ["scheme"] = l.Scheme?.ToString(), ["dense"] = l.Scheme is null, ["detail"] = l.Detail,
                }).ToArray(),
            });
            return 0;
        }
        var rows = new List<(string, string)>();
        foreach (var group in report.Layers.GroupBy(l => l.Detail))
        {
            var names = group.Select(l => l.Module).ToList();
            rows.Add((group.First().Scheme is null ? "dense" : "exact", $"{group.Key}: {(names.Count <= 3 ? string.Join(", ", names) : $"{names.Count} layers ({names[0]}, ...)")}"));
        }
        rows.Add(("copied", $"{report.CopiedTensors} tensors as stored (embeddings, norms, float linears)"));
        rows.Add(("ignore", string.Join(", ", report.Ignore)));
        rows.Add(("verified", report.Verified
            ? "read back: every layer, dequantized by compressed-tensors' rules, bit-identical to the quantizer's output; other tensors byte-identical"
            : "no (--no-verify)"));
        rows.Add(("written", $"{report.Directory} ({Format.Bytes(report.Bytes)}, {Format.Number(report.Seconds, "0.00")} s)"));
        console.WriteTable($"compressed-tensors ({report.Format}), {report.Layers.Count} quantized layers", rows);
        return 0;
    }
}
