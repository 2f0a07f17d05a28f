using LlmPress.Models;

namespace LlmPress.Gguf;

/// <summary>
/// llama.cpp tensor names (gguf-py constants.py TENSOR_NAMES for the llama and qwen2 architectures) and the Hugging
/// Face names they come from.
/// </summary>
public static class GgufTensorNames
{
    public const string Embedding = "token_embd.weight";
    public const string FinalNorm = "output_norm.weight";
    public const string Output = "output.weight";
    /// <summary>Llama 3.1 RoPE frequency factors (one per rotary pair), computed by convert_hf_to_gguf.py.</summary>
    public const string RopeFreqs = "rope_freqs.weight";

    public static string AttentionNorm(int layer) => $"blk.{layer}.attn_norm.weight";
    public static string FfnNorm(int layer) => $"blk.{layer}.ffn_norm.weight";

    /// <summary>The seven linear modules of layer <paramref name="layer"/>: (HF module, GGUF base name without ".weight").</summary>
    public static (string Module, string Gguf)[] Linears(int layer) =>
    [
        (TensorNames.QueryProj(layer), $"blk.{layer}.attn_q"),
        (TensorNames.KeyProj(layer), $"blk.{layer}.attn_k"),
        (TensorNames.ValueProj(layer), $"blk.{layer}.attn_v"),
        (TensorNames.OutputProj(layer), $"blk.{layer}.attn_output"),
        (TensorNames.GateProj(layer), $"blk.{layer}.ffn_gate"),
        (TensorNames.UpProj(layer), $"blk.{layer}.ffn_up"),
        (TensorNames.DownProj(layer), $"blk.{layer}.ffn_down"),
    ];

    /// <summary>The GGUF name of an HF linear module (".weight"/".bias" appended by the caller), or null when not a layer linear.</summary>
    public static string? ForModule(string module)
    {
        const string prefix = "model.layers.";
        if (!module.StartsWith(prefix, StringComparison.Ordinal)) return null;
        int dot = module.IndexOf('.', prefix.Length);
        if (dot < 0 || !int.TryParse(module.AsSpan(prefix.Length, dot - prefix.Length), out int layer)) return null;
        foreach (var (m, g) in Linears(layer))
            if (m == module) return g;
        return null;
    }
}
