using LlmPress.IO;
using LlmPress.Numerics;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Models;

/// <summary>
/// A Llama-family causal LM (llama, mistral, qwen2) over a memory-mapped checkpoint. Weights stay in their stored
/// dtype; activations are FP32. Callers either run the whole model (<see cref="ForwardHidden"/> then
/// <see cref="ComputeLogits"/>) or drive it layer by layer (<see cref="Embed"/>, <see cref="Layers"/>,
/// <see cref="FinalNorm"/>) as compression does.
/// </summary>
public sealed class LlamaModel : IDisposable
{
    private readonly TensorStore? _store;

    public LlamaModel(ModelConfig config, WeightView embedding, IReadOnlyList<DecoderLayer> layers, RmsNorm finalNorm,
        LinearLayer lmHead, TensorStore? store = null, string? directory = null)
    {
        Config = config;
        Embedding = embedding;
        Layers = layers;
        FinalNorm = finalNorm;
        LmHead = lmHead;
        _store = store;
        Directory = directory;
    }

    public ModelConfig Config { get; }
    /// <summary>Directory the model was loaded from, when it came from disk.</summary>
    public string? Directory { get; }
    /// <summary>[vocab, hidden].</summary>
    public WeightView Embedding { get; }
    public IReadOnlyList<DecoderLayer> Layers { get; }
    public RmsNorm FinalNorm { get; }
    /// <summary>[vocab, hidden]; shares the embedding's storage when tied.</summary>
    public LinearLayer LmHead { get; }
    /// <summary>The opened checkpoint (null for models built in memory).</summary>
    public TensorStore? Store => _store;

    /// <summary>Loads config.json and the safetensors weights (single or sharded) of a model directory.</summary>
    /// <exception cref="FileNotFoundException">config.json or the weights are missing.</exception>
    /// <exception cref="InvalidDataException">Unsupported architecture, missing tensor or wrong shape; the message names file and tensor.</exception>
    public static LlamaModel Load(string directory)
    {
        if (!System.IO.Directory.Exists(directory))
            throw new DirectoryNotFoundException($"{directory}: model directory not found.");
        var config = ModelConfig.Load(directory);
        var store = TensorStore.Open(directory);
        try
        {
            return FromStore(config, store, directory);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>Builds the model over tensors of an opened checkpoint; the model owns and disposes the store.</summary>
    public static LlamaModel FromStore(ModelConfig config, TensorStore store, string? directory = null)
    {
        var c = config;
        int d = c.HiddenSize;
        var rope = new RotaryEmbedding(c.HeadDim, c.RopeTheta, c.RopeScaling);
        var embedding = store.GetMatrix(TensorNames.Embedding, c.VocabSize, d);
        // An `llmpress quantize` output: its quantized linears run from their packed tensors (or FP32 copies where the
        // packed kernels do not take the format).
        var quantized = directory is null ? null : QuantizedCheckpoint.TryLoad(directory);
        // A compressed-tensors directory (`llmpress export --compressed-tensors`, llm-compressor): likewise dequantized.
        var compressed = directory is null || quantized is not null ? null : Export.CompressedTensorsCheckpoint.TryLoad(directory);
        // An `llmpress prune` output: N:M layers in the bitmask layout are decoded to dense weights (dense ones load as usual).
        var sparse = directory is null ? null : Sparsity.SparseCheckpoint.TryLoad(directory);

        LinearLayer Linear(string module, int rows, int cols, bool bias)
        {
            var b = bias ? store.ReadFloats(TensorNames.Bias(module), rows) : null;
            if (quantized is not null && quantized.IsQuantized(module)) return quantized.LoadLinear(store, module, rows, cols, b);
            if (compressed?.SchemeFor(module) is not null) return new LinearLayer(module, compressed.LoadWeight(store, module, rows, cols), b);
            if (sparse is not null && sparse.IsBitmask(module)) return new LinearLayer(module, sparse.LoadWeight(store, module, rows, cols), b);
            return new LinearLayer(module, store.GetMatrix(TensorNames.Weight(module), rows, cols), b);
        }

        var layers = new DecoderLayer[c.LayerCount];
        for (int l = 0; l < c.LayerCount; l++)
            layers[l] = DecoderLayer.Create(l, c, rope,
                new RmsNorm(store.ReadFloats(TensorNames.InputNorm(l), d), c.RmsNormEps),
                new RmsNorm(store.ReadFloats(TensorNames.PostAttentionNorm(l), d), c.RmsNormEps),
                Linear);
        var finalNorm = new RmsNorm(store.ReadFloats(TensorNames.FinalNorm, d), c.RmsNormEps);
        // Some tied checkpoints still ship lm_head.weight; when tied, the embedding is the head either way. A quantized
        // head (`quantize --lm-head`; a compressed-tensors lm_head with packed tensors, which "Linear" targets alone do
        // not imply) runs from its own tensors.
        string headModule = ModelConfig.LmHeadModule;
        var head = quantized is not null && quantized.IsQuantized(headModule) ? quantized.LoadLinear(store, headModule, c.VocabSize, d, null)
            : compressed?.SchemeFor(headModule) is not null && store.Contains(headModule + ".weight_packed") ? new LinearLayer(headModule, compressed.LoadWeight(store, headModule, c.VocabSize, d))
            : c.TieWordEmbeddings ? new LinearLayer(headModule, embedding)
            : new LinearLayer(headModule, store.GetMatrix(TensorNames.LmHead, c.VocabSize, d));
        return new LlamaModel(c, embedding, layers, finalNorm, head, store, directory);
    }

    /// <summary>Looks up embeddings: tokens [n] → hidden [n, hidden].</summary>
    public void Embed(ReadOnlySpan<int> tokens, Span<float> hidden)
    {
        int d = Config.HiddenSize;
        for (int t = 0; t < tokens.Length; t++)
        {
            int id = tokens[t];
            if ((uint)id >= (uint)Config.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"Token id {id} at position {t} is outside the vocabulary (size {Config.VocabSize}).");
            Embedding.ReadRow(id, hidden.Slice(t * d, d));
        }
    }

    /// <summary>
    /// Runs embedding, every decoder layer and the final norm. Returns scratch.Normed[.. tokens · hidden]: the
    /// normed last hidden states, ready for <see cref="ComputeLogits"/>. With a cache, tokens continue it and the
    /// cache is advanced.
    /// </summary>
    public ReadOnlySpan<float> ForwardHidden(ReadOnlySpan<int> tokens, ForwardScratch scratch, KvCache? cache = null, LinearInputObserver? observer = null)
    {
        int n = tokens.Length, d = Config.HiddenSize;
        int start = cache?.Length ?? 0;
        scratch.EnsureCapacity(n);
        Embed(tokens, scratch.Hidden.AsSpan(0, n * d));
        foreach (var layer in Layers)
            layer.Forward(n, start, scratch, cache, observer);
        cache?.Advance(n);
        FinalNorm.Forward(scratch.Hidden.AsSpan(0, n * d), n, scratch.Normed.AsSpan(0, n * d));
        return scratch.Normed.AsSpan(0, n * d);
    }

    /// <summary>normed: [rows, hidden] → logits: [rows, vocab].</summary>
    public void ComputeLogits(ReadOnlySpan<float> normed, int rows, Span<float> logits)
        => LmHead.Forward(normed, rows, logits);

    /// <summary>Convenience for small inputs: logits for every position, [tokens, vocab].</summary>
    public float[] Forward(ReadOnlySpan<int> tokens)
    {
        var scratch = new ForwardScratch(Config);
        var normed = ForwardHidden(tokens, scratch);
        var logits = new float[(long)tokens.Length * Config.VocabSize];
        ComputeLogits(normed, tokens.Length, logits);
        return logits;
    }

    public void Dispose() => _store?.Dispose();
}
