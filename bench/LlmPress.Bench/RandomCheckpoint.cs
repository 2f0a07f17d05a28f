using System.Runtime.InteropServices;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Bench;

/// <summary>A random-weight SmolLM2-135M-shaped BF16 checkpoint (model.safetensors + config.json) for the export benches.</summary>
internal static class RandomCheckpoint
{
    /// <summary>Writes the checkpoint into <paramref name="directory"/> (which must exist).</summary>
    public static void Write(string directory)
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
            SafeTensorsWriter.Write(Path.Combine(directory, TensorStore.SingleFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        File.WriteAllText(Path.Combine(directory, "config.json"), """
            {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
             "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152, "max_position_embeddings": 8192,
             "rms_norm_eps": 1e-5, "rope_theta": 100000, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2,
             "torch_dtype": "bfloat16"}
            """);
    }
}
