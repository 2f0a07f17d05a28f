using System.Diagnostics;
using System.Runtime.InteropServices;
using LlmPress.Export;
using LlmPress.Gguf;
using LlmPress.IO;
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
            var c = RandomModel.SmolLM2Shape;
            using (var model = RandomModel.Create(c, DType.BF16))
            {
                var tensors = new List<TensorToWrite> { new(TensorNames.Embedding, DType.BF16, [c.VocabSize, c.HiddenSize], model.Embedding.Data) };
                static TensorToWrite Norm(string name, float[] w) => new(name, DType.F32, [w.Length], MemoryMarshal.AsBytes(w.AsSpan()).ToArray());
                for (int l = 0; l < c.LayerCount; l++)
                {
                    var layer = model.Layers[l];
                    tensors.Add(Norm(TensorNames.InputNorm(l), layer.InputNorm.Weight));
                    tensors.Add(Norm(TensorNames.PostAttentionNorm(l), layer.PostAttentionNorm.Weight));
                    foreach (var linear in layer.Linears)
                        tensors.Add(new(TensorNames.Weight(linear.Name), DType.BF16, [linear.OutFeatures, linear.InFeatures], linear.Weight.Data));
                }
                tensors.Add(Norm(TensorNames.FinalNorm, model.FinalNorm.Weight));
                SafeTensorsWriter.Write(Path.Combine(dir, TensorStore.SingleFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
            }
            File.WriteAllText(Path.Combine(dir, "config.json"), """
                {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                 "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152, "max_position_embeddings": 8192,
                 "rms_norm_eps": 1e-5, "rope_theta": 100000, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2}
                """);
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
