using System.Numerics.Tensors;
using LlmPress.Numerics;

namespace LlmPress.Models;

/// <summary>Called with the input a linear layer is about to see (calibration captures Hessians through this).</summary>
/// <param name="layer">The linear layer.</param>
/// <param name="input">[tokenCount, layer.InFeatures].</param>
public delegate void LinearInputObserver(LinearLayer layer, ReadOnlySpan<float> input, int tokenCount);

/// <summary>
/// One Llama decoder block:
///   h = x + o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))),  n = input_layernorm(x)
///   y = h + down_proj(silu(gate_proj(m)) · up_proj(m)),                   m = post_attention_layernorm(h)
/// Runs on its own so compression can stream a model one layer at a time.
/// </summary>
public sealed class DecoderLayer
{
    private readonly ModelConfig _config;
    private readonly RotaryEmbedding _rope;

    public DecoderLayer(int index, ModelConfig config, RotaryEmbedding rope, RmsNorm inputNorm, RmsNorm postAttentionNorm,
        LinearLayer queryProj, LinearLayer keyProj, LinearLayer valueProj, LinearLayer outputProj,
        LinearLayer gateProj, LinearLayer upProj, LinearLayer downProj)
    {
        Index = index;
        _config = config;
        _rope = rope;
        InputNorm = inputNorm;
        PostAttentionNorm = postAttentionNorm;
        QueryProj = queryProj;
        KeyProj = keyProj;
        ValueProj = valueProj;
        OutputProj = outputProj;
        GateProj = gateProj;
        UpProj = upProj;
        DownProj = downProj;
        SkipAttention = config.IsDropped(index, DecoderBlock.SelfAttention);
        SkipMlp = config.IsDropped(index, DecoderBlock.Mlp);
    }

    /// <summary>Supplies one linear layer: (checkpoint module name, rows = out features, cols = in features, has bias).</summary>
    public delegate LinearLayer LinearFactory(string module, int rows, int cols, bool bias);

    /// <summary>Builds layer <paramref name="index"/> with the architecture's shapes, names and biases.</summary>
    public static DecoderLayer Create(int index, ModelConfig config, RotaryEmbedding rope, RmsNorm inputNorm,
        RmsNorm postAttentionNorm, LinearFactory linear)
    {
        var c = config;
        int d = c.HiddenSize, l = index;
        return new DecoderLayer(l, c, rope, inputNorm, postAttentionNorm,
            linear(TensorNames.QueryProj(l), c.QueryDim, d, c.QkvBias),
            linear(TensorNames.KeyProj(l), c.KvDim, d, c.QkvBias),
            linear(TensorNames.ValueProj(l), c.KvDim, d, c.QkvBias),
            linear(TensorNames.OutputProj(l), d, c.QueryDim, c.OutputBias),
            linear(TensorNames.GateProj(l), c.IntermediateSize, d, false),
            linear(TensorNames.UpProj(l), c.IntermediateSize, d, false),
            linear(TensorNames.DownProj(l), d, c.IntermediateSize, false));
    }

    public int Index { get; }
    public RmsNorm InputNorm { get; }
    public RmsNorm PostAttentionNorm { get; }
    public LinearLayer QueryProj { get; }   // [heads · headDim, hidden]
    public LinearLayer KeyProj { get; }     // [kvHeads · headDim, hidden]
    public LinearLayer ValueProj { get; }   // [kvHeads · headDim, hidden]
    public LinearLayer OutputProj { get; }  // [hidden, heads · headDim]
    public LinearLayer GateProj { get; }    // [intermediate, hidden]
    public LinearLayer UpProj { get; }      // [intermediate, hidden]
    public LinearLayer DownProj { get; }    // [hidden, intermediate]

    /// <summary>
    /// Depth pruning: the attention sub-block is not run, so h = x (the residual passes through unchanged), nothing is
    /// computed and nothing is written to or read from the KV cache for this layer. Set at construction from
    /// <see cref="ModelConfig.DroppedBlocks"/>; a search toggles it on the model it evaluates.
    /// </summary>
    public bool SkipAttention { get; set; }

    /// <summary>Depth pruning: the MLP sub-block is not run (y = h), at no compute. See <see cref="SkipAttention"/>.</summary>
    public bool SkipMlp { get; set; }

    /// <summary>The seven linear layers in execution order (q, k, v, o, gate, up, down).</summary>
    public IReadOnlyList<LinearLayer> Linears => [QueryProj, KeyProj, ValueProj, OutputProj, GateProj, UpProj, DownProj];

    /// <summary>
    /// Transforms scratch.Hidden[0 .. tokenCount · hidden] in place. Tokens sit at positions startPosition.. .
    /// With a cache, keys/values are appended to it (the caller advances it after the last layer) and attention
    /// covers everything cached; without one, startPosition must be 0. A skipped sub-block (<see cref="SkipAttention"/>,
    /// <see cref="SkipMlp"/>) leaves Hidden as it is; a skipped attention leaves the layer's cache slots untouched, and
    /// since every later token skips it too, they are never read.
    /// </summary>
    public void Forward(int tokenCount, int startPosition, ForwardScratch scratch, KvCache? cache = null, LinearInputObserver? observer = null)
    {
        scratch.EnsureCapacity(tokenCount);
        if (!SkipAttention)
        {
            NormalizeAttentionInput(tokenCount, scratch);
            Attend(tokenCount, startPosition, scratch, cache, observer);
            ProjectAttentionOutput(tokenCount, scratch, observer);
        }
        if (!SkipMlp)
        {
            NormalizeMlpInput(tokenCount, scratch);
            ActivateMlp(tokenCount, scratch, observer);
            ProjectMlpOutput(tokenCount, scratch, observer);
        }
    }

    // The six stages of Forward, public so calibration can quantize a layer's linears in execution order (GPTQ's
    // true-sequential schedule) and feed each group the inputs produced by the already-quantized groups before it.
    // Each reads and writes scratch buffers for tokens [0, tokenCount); the caller has sized the scratch.

    /// <summary>Stage 1: Normed = input_layernorm(Hidden).</summary>
    public void NormalizeAttentionInput(int tokenCount, ForwardScratch scratch)
    {
        int m = tokenCount * _config.HiddenSize;
        InputNorm.Forward(scratch.Hidden.AsSpan(0, m), tokenCount, scratch.Normed.AsSpan(0, m));
    }

    /// <summary>Stage 2: Attention = attn(rope(q_proj(Normed)), rope(k_proj(Normed)), v_proj(Normed)).</summary>
    public void Attend(int tokenCount, int startPosition, ForwardScratch scratch, KvCache? cache = null, LinearInputObserver? observer = null)
    {
        if (cache is null && startPosition != 0)
            throw new ArgumentException("Without a KV cache the sequence must start at position 0.", nameof(startPosition));
        var c = _config;
        int n = tokenCount;
        ReadOnlySpan<float> normed = scratch.Normed.AsSpan(0, n * c.HiddenSize);
        ProjectShared([QueryProj, KeyProj, ValueProj], normed, n, [scratch.Query, scratch.Key, scratch.Value], observer);
        _rope.Apply(scratch.Query.AsSpan(0, n * c.QueryDim), n, c.HeadCount, startPosition);
        _rope.Apply(scratch.Key.AsSpan(0, n * c.KvDim), n, c.KvHeadCount, startPosition);

        if (cache is null)
        {
            CausalAttention.Forward(scratch.Query, scratch.Key, scratch.Value, n, startPosition, c.HeadCount, c.KvHeadCount, c.HeadDim,
                c.SlidingWindow, scratch.Attention);
            return;
        }
        if (cache.KvHeadCount != c.KvHeadCount || cache.HeadDim != c.HeadDim)
            throw new ArgumentException($"The cache holds {cache.KvHeadCount} KV heads of {cache.HeadDim}, the layer {c.KvHeadCount} of {c.HeadDim}.", nameof(cache));
        if (startPosition != cache.Length || startPosition + n > cache.Capacity)
            throw new ArgumentException($"Positions {startPosition}..{startPosition + n} do not continue the cache (length {cache.Length}, capacity {cache.Capacity}).");
        cache.Write(Index, startPosition, n, scratch.Key, scratch.Value);
        CausalAttention.Forward(scratch.Query, cache, Index, n, startPosition, c.HeadCount, c.SlidingWindow, scratch.Attention);
    }

    /// <summary>Stage 3: Hidden += o_proj(Attention).</summary>
    public void ProjectAttentionOutput(int tokenCount, ForwardScratch scratch, LinearInputObserver? observer = null)
    {
        Project(OutputProj, scratch.Attention, tokenCount, scratch.Projected, observer);
        AddResidual(scratch, tokenCount);
    }

    /// <summary>Stage 4: Normed = post_attention_layernorm(Hidden).</summary>
    public void NormalizeMlpInput(int tokenCount, ForwardScratch scratch)
    {
        int m = tokenCount * _config.HiddenSize;
        PostAttentionNorm.Forward(scratch.Hidden.AsSpan(0, m), tokenCount, scratch.Normed.AsSpan(0, m));
    }

    /// <summary>Stage 5: Gate = silu(gate_proj(Normed)) · up_proj(Normed).</summary>
    public void ActivateMlp(int tokenCount, ForwardScratch scratch, LinearInputObserver? observer = null)
    {
        ReadOnlySpan<float> normed = scratch.Normed.AsSpan(0, tokenCount * _config.HiddenSize);
        ProjectShared([GateProj, UpProj], normed, tokenCount, [scratch.Gate, scratch.Up], observer);
        SiluMultiply(scratch.Gate, scratch.Up, tokenCount * _config.IntermediateSize);
    }

    /// <summary>Stage 6: Hidden += down_proj(Gate).</summary>
    public void ProjectMlpOutput(int tokenCount, ForwardScratch scratch, LinearInputObserver? observer = null)
    {
        Project(DownProj, scratch.Gate, tokenCount, scratch.Projected, observer);
        AddResidual(scratch, tokenCount);
    }

    /// <summary>Hidden += Projected over [tokenCount, hidden], token chunks split over threads (element-wise: same bits).</summary>
    private void AddResidual(ForwardScratch scratch, int tokenCount)
    {
        int d = _config.HiddenSize;
        float[] hidden = scratch.Hidden, projected = scratch.Projected;
        if (tokenCount < 256)
        {
            TensorPrimitives.Add(hidden.AsSpan(0, tokenCount * d), projected.AsSpan(0, tokenCount * d), hidden.AsSpan(0, tokenCount * d));
            return;
        }
        RowParallel.For(tokenCount, (first, count) =>
        {
            var h = hidden.AsSpan(first * d, count * d);
            TensorPrimitives.Add(h, projected.AsSpan(first * d, count * d), h);
        });
    }

    private static void Project(LinearLayer layer, ReadOnlySpan<float> input, int n, Span<float> output, LinearInputObserver? observer)
    {
        var x = input[..(n * layer.InFeatures)];
        observer?.Invoke(layer, x, n);
        layer.Forward(x, n, output);
    }

    /// <summary>Linears reading the same input: one shared pass at decode sizes (see <see cref="SharedInputProjection"/>).</summary>
    private static void ProjectShared(ReadOnlySpan<LinearLayer> layers, ReadOnlySpan<float> input, int n, ReadOnlySpan<float[]> outputs,
        LinearInputObserver? observer)
    {
        var x = input[..(n * layers[0].InFeatures)];
        if (observer is not null)
            foreach (var layer in layers) observer(layer, x, n);
        SharedInputProjection.Forward(layers, x, n, outputs);
    }

    /// <summary>gate ← silu(gate) · up, with silu(x) = x · σ(x); elements [0, length).</summary>
    internal static void SiluMultiply(float[] gate, float[] up, int length)
    {
        const int Chunk = 16384; // 64 KiB of gate and of up per work item
        int chunks = (length + Chunk - 1) / Chunk;
        void Run(int chunk)
        {
            int start = chunk * Chunk, len = Math.Min(Chunk, length - start);
            SwiGlu.Apply(gate.AsSpan(start, len), up.AsSpan(start, len));
        }
        // Element-wise, so any split gives identical results; worth a thread hand-off only for prefill-sized work.
        if (chunks < 4 || Parallelism.MaxThreads == 1)
            for (int c = 0; c < chunks; c++) Run(c);
        else
            Parallel.For(0, chunks, Parallelism.Options, Run);
    }
}
