using System.Diagnostics;
using LlmPress.Export;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Bench;

/// <summary>
/// `bench ct-export [formats...]`: writes a random SmolLM2-135M-shaped BF16 checkpoint to a temporary directory,
/// RTN-quantizes it per format, then times `CompressedTensorsExporter.Export` with and without verification (best of two).
/// </summary>
internal static class CompressedTensorsExportBench
{
    public static void Run(string[] formats)
    {
        string dir = Path.Combine(Path.GetTempPath(), "llmpress-ct-bench-" + Environment.ProcessId);
        string source = Path.Combine(dir, "model");
        Directory.CreateDirectory(source);
        try
        {
            RandomCheckpoint.Write(source);
            // 576 = 9·64 columns: groups of 32 or 64 divide every linear of this shape (128 does not).
            foreach (string name in formats.Length > 0 ? formats : ["int4-asym-g64", "int4-sym-g32", "int8-sym-g64", "mxfp4"])
            {
                var format = QuantFormat.Parse(name);
                string quantized = Path.Combine(dir, name);
                var options = new QuantizeOptions { Method = QuantMethod.Rtn, Format = format };
                using (var model = LlamaModel.Load(source))
                    QuantizedCheckpointWriter.Write(source, model.Store!, QuantizationPipeline.Run(model, options), options, quantized, overwrite: false);
                // Best of two runs each, so the first run's JIT compilation is not counted.
                CompressedTensorsExportReport report = null!;
                double verified = double.MaxValue, unverified = double.MaxValue;
                for (int round = 0; round < 2; round++)
                {
                    var sw = Stopwatch.StartNew();
                    report = CompressedTensorsExporter.Export(quantized, Path.Combine(dir, name + "-ct"), new CompressedTensorsExportOptions { Overwrite = true });
                    verified = Math.Min(verified, sw.Elapsed.TotalSeconds);
                    sw.Restart();
                    CompressedTensorsExporter.Export(quantized, Path.Combine(dir, name + "-ct"), new CompressedTensorsExportOptions { Verify = false, Overwrite = true });
                    unverified = Math.Min(unverified, sw.Elapsed.TotalSeconds);
                }
                Console.WriteLine($"{name,-14} 135M ({Parallelism.MaxThreads} threads): export {unverified:F2} s, export + verify {verified:F2} s, " +
                    $"{report.Bytes / 1048576.0:F1} MiB ({report.Format}, {report.Layers.Count} layers); peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0:F0} MiB");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
