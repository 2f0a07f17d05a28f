using System.Diagnostics;
using System.Runtime.InteropServices;
using LlmPress.Export;
using LlmPress.IO;
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
                SafeTensorsWriter.Write(Path.Combine(source, TensorStore.SingleFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
            }
            File.WriteAllText(Path.Combine(source, "config.json"), """
                {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                 "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152, "max_position_embeddings": 8192,
                 "rms_norm_eps": 1e-5, "rope_theta": 100000, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2,
                 "torch_dtype": "bfloat16"}
                """);
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
