namespace LlmPress.Models;

/// <summary>Hugging Face checkpoint tensor names for Llama-family models, mapped in one place.</summary>
public static class TensorNames
{
    public const string Embedding = "model.embed_tokens.weight";
    public const string FinalNorm = "model.norm.weight";
    public const string LmHead = "lm_head.weight";

    public static string Layer(int index) => $"model.layers.{index}";
    public static string InputNorm(int layer) => $"{Layer(layer)}.input_layernorm.weight";
    public static string PostAttentionNorm(int layer) => $"{Layer(layer)}.post_attention_layernorm.weight";
    public static string QueryProj(int layer) => $"{Layer(layer)}.self_attn.q_proj";
    public static string KeyProj(int layer) => $"{Layer(layer)}.self_attn.k_proj";
    public static string ValueProj(int layer) => $"{Layer(layer)}.self_attn.v_proj";
    public static string OutputProj(int layer) => $"{Layer(layer)}.self_attn.o_proj";
    public static string GateProj(int layer) => $"{Layer(layer)}.mlp.gate_proj";
    public static string UpProj(int layer) => $"{Layer(layer)}.mlp.up_proj";
    public static string DownProj(int layer) => $"{Layer(layer)}.mlp.down_proj";

    public static string Weight(string module) => module + ".weight";
    public static string Bias(string module) => module + ".bias";
}
