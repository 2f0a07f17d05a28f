namespace LlmPress.Models;

/// <summary>
/// Activation buffers for one forward pass, allocated once and grown on demand (llama2.c's RunState), so
/// repeated windows and decode steps allocate nothing.
/// </summary>
public sealed class ForwardScratch(ModelConfig config)
{
    public ModelConfig Config { get; } = config;
    public int TokenCapacity { get; private set; }

    public float[] Hidden { get; private set; } = [];   // [tokens, hidden] residual stream
    public float[] Normed { get; private set; } = [];   // [tokens, hidden]
    public float[] Query { get; private set; } = [];    // [tokens, heads · headDim]
    public float[] Key { get; private set; } = [];      // [tokens, kvHeads · headDim]
    public float[] Value { get; private set; } = [];    // [tokens, kvHeads · headDim]
    public float[] Attention { get; private set; } = [];// [tokens, heads · headDim]
    public float[] Gate { get; private set; } = [];     // [tokens, intermediate]
    public float[] Up { get; private set; } = [];       // [tokens, intermediate]
    public float[] Projected { get; private set; } = [];// [tokens, hidden] output of o_proj / down_proj

    public void EnsureCapacity(int tokenCount)
    {
        if (tokenCount <= TokenCapacity) return;
        var c = Config;
        TokenCapacity = tokenCount;
        Hidden = new float[(long)tokenCount * c.HiddenSize];
        Normed = new float[(long)tokenCount * c.HiddenSize];
        Query = new float[(long)tokenCount * c.QueryDim];
        Key = new float[(long)tokenCount * c.KvDim];
        Value = new float[(long)tokenCount * c.KvDim];
        Attention = new float[(long)tokenCount * c.QueryDim];
        Gate = new float[(long)tokenCount * c.IntermediateSize];
        Up = new float[(long)tokenCount * c.IntermediateSize];
        Projected = new float[(long)tokenCount * c.HiddenSize];
    }
}
