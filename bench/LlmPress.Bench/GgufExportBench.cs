using System.Diagnostics;
using LlmPress.Export;
using LlmPress.Gguf;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Bench;

/// <summary>
/// `bench gguf-export [types...]`: writes a random SmolLM2-135M-shaped BF16 checkpoint to a temporary directory, then
/// times `GgufExporter.Export` (verification included) per type and `GgufModelLoader.Load` of the result.
/// </summary>
internal static class GgufExportBench
{
    public static void Run(string[] types)
    {
        string dir = Path.Combine(Path.GetTempPath(), "llmpress-gguf-bench-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        try
        {
            RandomCheckpoint.Write(dir);
            foreach (string name in types.Length > 0 ? types : ["f16", "q8_0", "q4_0", "mxfp4"])
            {
                if (!GgmlTypeInfo.TryParse(name, out var type)) throw new ArgumentException($"unknown type {name}");
                string output = Path.Combine(dir, name + ".gguf");
                var sw = Stopwatch.StartNew();
                var report = GgufExporter.Export(dir, output, new GgufExportOptions { Type = type });
                double export = sw.Elapsed.TotalSeconds;
                sw.Restart();
                using (GgufModelLoader.Load(output)) { }
                double load = sw.Elapsed.TotalSeconds;
                Console.WriteLine($"{name,-6} 135M ({Parallelism.MaxThreads} threads): export + verify {export:F2} s, {report.Bytes / 1048576.0:F1} MiB; load {load:F2} s; " +
                    $"peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0:F0} MiB");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
