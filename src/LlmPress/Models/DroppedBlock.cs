namespace LlmPress.Models;

/// <summary>The two residual sub-blocks of a decoder layer, the units of depth pruning.</summary>
public enum DecoderBlock
{
    /// <summary>h = x + o_proj(attention(input_layernorm(x))).</summary>
    SelfAttention,

    /// <summary>y = h + down_proj(silu(gate_proj(m)) · up_proj(m)), m = post_attention_layernorm(h).</summary>
    Mlp,
}

/// <summary>A sub-block removed by depth pruning: the layer passes its residual through unchanged there.</summary>
/// <param name="Layer">Decoder layer index (in the checkpoint's own numbering).</param>
/// <param name="Block">Which sub-block.</param>
public sealed record DroppedBlock(int Layer, DecoderBlock Block)
{
    /// <summary>The config.json field listing dropped sub-blocks.</summary>
    public const string ConfigKey = "llmpress_dropped_blocks";

    /// <summary>The sub-block's module name in checkpoints: "self_attn" or "mlp".</summary>
    public string BlockName => BlockText(Block);

    /// <summary>"self_attn" or "mlp".</summary>
    public static string BlockText(DecoderBlock block) => block == DecoderBlock.SelfAttention ? "self_attn" : "mlp";
}
