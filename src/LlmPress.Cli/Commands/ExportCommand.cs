using System.CommandLine;
using LlmPress.Export;
using LlmPress.Gguf;

namespace LlmPress.Cli.Commands;

/// <summary>
/// `llmpress export &lt;model&gt; --gguf out.gguf [--type ...]`: a GGUF file llama.cpp loads as is; or
/// `--compressed-tensors DIR`: the compressed-tensors directory vLLM loads (<see cref="ExportCompressedTensors"/>).
/// </summary>
internal static class ExportCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new Argument<string>("model") { Description = "Model directory: a Hugging Face checkpoint (any float dtype) or an `llmpress quantize` output." };
        var gguf = new Option<string?>("--gguf") { Description = "GGUF file to write (v3, llama.cpp tensor names and tokenizer)." };
        var compressedTensors = new Option<string?>("--compressed-tensors")
        {
            HelpName = "dir",
            Description = "Directory to write for vLLM instead of --gguf: safetensors + config.json quantization_config in the compressed-tensors layout " +
                "(pack-quantized INT4/INT8, mxfp4-pack-quantized, nvfp4-pack-quantized; codes and scales copied exactly). Takes an `llmpress quantize` output.",
        };
        var denseFallback = new Option<bool>("--dense-fallback")
        {
            Description = "With --compressed-tensors: write layers it cannot hold (INT2/INT3, HIGGS, rotated formats, groups that do not divide the columns) " +
                "as dequantized FP32 weights listed in quantization_config.ignore, instead of failing.",
        };
        var type = new Option<string>("--type")
        {
            Description = "Type of float weights and of quantized layers without an exact GGUF type: f32, f16, bf16, q8_0, q4_0 or mxfp4 (default f16). " +
                "Norms stay f32. Quantized int4-sym-g32, int8-sym-g32 and mxfp4 layers are written exactly as q4_0, q8_0 and mxfp4 whatever --type says. " +
                "Matrices whose columns are not a multiple of 32 fall back to f16 (f32 for dequantized layers). With mxfp4 the embedding and output head use q8_0.",
            DefaultValueFactory = _ => "f16",
        };
        var exact = new Option<bool>("--exact") { Description = "Fail instead of converting quantized layers that have no exact GGUF type." };
        var noVerify = new Option<bool>("--no-verify") { Description = "Skip reading the file back (by default every tensor is checked before the file gets its name)." };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "tokenizer.json to embed (default: the model directory's)." };
        var force = new Option<bool>("--force") { Description = "Replace an existing output file (or --compressed-tensors directory)." };
        var json = new Option<bool>("--json") { Description = "Print the export report as JSON on stdout." };
        var command = new Command("export", "Export a model (float or quantized) to a deployable file: GGUF for llama.cpp, or a compressed-tensors directory for vLLM.")
        {
            model, gguf, type, exact, noVerify, tokenizer, force, json, compressedTensors, denseFallback,
        };
        command.SetAction(parse => console.Guard(parse, () =>
        {
            string? ctOutput = parse.GetValue(compressedTensors);
            if ((ctOutput is null) == (parse.GetValue(gguf) is null))
                throw new CliException("export: give exactly one of --gguf FILE (llama.cpp) or --compressed-tensors DIR (vLLM).");
            if (ctOutput is not null)
            {
                if (parse.GetResult(type) is { Implicit: false } || parse.GetValue(exact) || parse.GetValue(tokenizer) is not null)
                    throw new CliException("--type, --exact and --tokenizer apply to --gguf only; --compressed-tensors copies codes and scales as quantized.");
                return ExportCompressedTensors.Run(console, parse.GetValue(model)!, ctOutput, new CompressedTensorsExportOptions
                {
                    Verify = !parse.GetValue(noVerify),
                    DenseFallback = parse.GetValue(denseFallback),
                    Overwrite = parse.GetValue(force),
                }, parse.GetValue(json));
            }
            if (parse.GetValue(denseFallback)) throw new CliException("--dense-fallback applies to --compressed-tensors only.");
            string typeName = parse.GetValue(type)!;
            if (!GgmlTypeInfo.TryParse(typeName, out var ggmlType))
                throw new CliException($"--type: unknown type '{typeName}'; expected f32, f16, bf16, q8_0, q4_0 or mxfp4.");
            var options = new GgufExportOptions
            {
                Type = ggmlType,
                Verify = !parse.GetValue(noVerify),
                RequireExact = parse.GetValue(exact),
                TokenizerPath = parse.GetValue(tokenizer),
            };
            return Run(console, parse.GetValue(model)!, parse.GetValue(gguf)!, options, parse.GetValue(force), parse.GetValue(json));
        }));
        return command;
    }

    private static int Run(CliConsole console, string modelPath, string output, GgufExportOptions options, bool force, bool json)
    {
        if (File.Exists(modelPath)) throw new CliException($"{modelPath}: expected a model directory (config.json + *.safetensors), got a file.");
        if (!Directory.Exists(modelPath)) throw new CliException($"{modelPath}: model directory not found.");
        if (Directory.Exists(output)) throw new CliException($"{output}: is a directory; --gguf takes a file name such as model.gguf.");
        if (File.Exists(output) && !force) throw new CliException($"{output}: already exists; choose another --gguf file or pass --force to replace it.");
        string? directory = Path.GetDirectoryName(Path.GetFullPath(output));
        if (directory is not null && !Directory.Exists(directory)) throw new CliException($"{output}: directory {directory} does not exist.");

        var report = console.WithProgress($"GGUF {GgmlTypeInfo.Name(options.Type)}", 1000,
            progress => GgufExporter.Export(modelPath, output, options, (done, total) => progress((int)(1000L * done / total))));
        foreach (var warning in report.Warnings) console.Log($"warning: {warning}");
        if (json)
        {
            console.WriteJson(new Dictionary<string, object?>
            {
                ["path"] = report.Path,
                ["bytes"] = report.Bytes,
                ["architecture"] = report.Architecture,
                ["type"] = GgmlTypeInfo.Name(options.Type),
                ["verified"] = report.Verified,
                ["seconds"] = report.Seconds,
                ["warnings"] = report.Warnings,
                ["tensors"] = report.Tensors.Select(t => new Dictionary<string, object>
                {
                    ["name"] = t.Name, ["source"] = t.Source, ["type"] = GgmlTypeInfo.Name(t.Type), ["shape"] = t.Shape,
                    ["mapping"] = t.Mapping.ToString().ToLowerInvariant(), ["detail"] = t.Detail,
                }).ToArray(),
            });
            return 0;
        }
        var rows = new List<(string, string)>();
        foreach (var group in report.Tensors.GroupBy(t => (t.Mapping, t.Detail)))
        {
            var names = group.Select(t => t.Name).ToList();
            string shown = names.Count <= 3 ? string.Join(", ", names) : $"{names.Count} tensors ({names[0]}, ...)";
            rows.Add((group.Key.Mapping.ToString().ToLowerInvariant(), $"{group.Key.Detail}: {shown}"));
        }
        rows.Add(("verified", report.Verified ? "read back: every tensor byte-identical to a fresh encoding; exact and lossless ones decode bit-identically to the source, converted ones within their type's rounding bound" : "no (--no-verify)"));
        rows.Add(("written", $"{report.Path} ({Format.Bytes(report.Bytes)}, {Format.Number(report.Seconds, "0.00")} s)"));
        console.WriteTable($"GGUF {report.Architecture}, {report.Tensors.Count} tensors", rows);
        return 0;
    }
}
