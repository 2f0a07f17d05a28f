using System.Globalization;
using LlmPress.Models;

namespace LlmPress.Gguf;

/// <summary>
/// The architecture metadata of a Llama-family GGUF (llama.cpp's LLM_KV names, as convert_hf_to_gguf.py writes them)
/// from a <see cref="ModelConfig"/>, and back. Mistral is written as architecture "llama" (as llama.cpp's converter
/// does); Qwen2 as "qwen2". Llama 3.1 RoPE scaling is written the llama.cpp way (the rope_freqs.weight tensor, see
/// <see cref="RopeFrequencyFactors"/>) plus LlmPress keys holding the four parameters, so LlmPress can rebuild it.
/// </summary>
public static class GgufModelMetadata
{
    private const string LlmPressRope = "llmpress.rope_scaling.";

    /// <summary>The GGUF architecture name for a config: "llama" (llama, mistral) or "qwen2".</summary>
    public static string Architecture(ModelConfig config) => config.ModelType == "qwen2" ? "qwen2" : "llama";

    /// <summary>Whether q/k rows are permuted for llama.cpp's RoPE (llama yes, qwen2 no: it uses NEOX-style RoPE).</summary>
    public static bool PermutesQk(string architecture) => architecture == "llama";

    /// <summary>general.* and &lt;arch&gt;.* keys for <paramref name="config"/>.</summary>
    public static List<KeyValuePair<string, GgufValue>> Create(ModelConfig config, string name, uint fileType)
    {
        var c = config;
        string arch = Architecture(c);
        var kv = new List<KeyValuePair<string, GgufValue>>();
        void Add(string key, GgufValue value) => kv.Add(new(key, value));
        Add("general.architecture", GgufValue.String(arch));
        Add("general.name", GgufValue.String(name));
        Add("general.file_type", GgufValue.UInt32(fileType));
        Add("general.quantization_version", GgufValue.UInt32(2));
        Add($"{arch}.block_count", GgufValue.UInt32((uint)c.LayerCount));
        Add($"{arch}.context_length", GgufValue.UInt32((uint)c.MaxPositions));
        Add($"{arch}.embedding_length", GgufValue.UInt32((uint)c.HiddenSize));
        Add($"{arch}.feed_forward_length", GgufValue.UInt32((uint)c.IntermediateSize));
        Add($"{arch}.attention.head_count", GgufValue.UInt32((uint)c.HeadCount));
        Add($"{arch}.attention.head_count_kv", GgufValue.UInt32((uint)c.KvHeadCount));
        Add($"{arch}.rope.freq_base", GgufValue.Float32((float)c.RopeTheta));
        Add($"{arch}.attention.layer_norm_rms_epsilon", GgufValue.Float32((float)c.RmsNormEps));
        if (c.HeadDim * c.HeadCount != c.HiddenSize)
        {
            Add($"{arch}.attention.key_length", GgufValue.UInt32((uint)c.HeadDim));
            Add($"{arch}.attention.value_length", GgufValue.UInt32((uint)c.HeadDim));
        }
        Add($"{arch}.rope.dimension_count", GgufValue.UInt32((uint)c.HeadDim));
        Add($"{arch}.vocab_size", GgufValue.UInt32((uint)c.VocabSize));
        switch (c.RopeScaling.Type)
        {
            case RopeScalingType.Linear:
                Add($"{arch}.rope.scaling.type", GgufValue.String("linear"));
                Add($"{arch}.rope.scaling.factor", GgufValue.Float32((float)c.RopeScaling.Factor));
                break;
            case RopeScalingType.Llama3:
                Add(LlmPressRope + "type", GgufValue.String("llama3"));
                Add(LlmPressRope + "factor", GgufValue.Float32((float)c.RopeScaling.Factor));
                Add(LlmPressRope + "low_freq_factor", GgufValue.Float32((float)c.RopeScaling.LowFreqFactor));
                Add(LlmPressRope + "high_freq_factor", GgufValue.Float32((float)c.RopeScaling.HighFreqFactor));
                Add(LlmPressRope + "original_max_position_embeddings", GgufValue.UInt32((uint)c.RopeScaling.OriginalMaxPositions));
                break;
        }
        return kv;
    }

    /// <summary>
    /// Llama 3.1 RoPE factors as convert_hf_to_gguf.py computes rope_freqs.weight: for each rotary pair i with
    /// frequency f = θ^(−2i/d) and wavelength λ = 2π/f: 1 when λ &lt; original/high, factor when λ &gt; original/low,
    /// else 1/((1 − s)/factor + s) with s = (original/λ − low)/(high − low).
    /// </summary>
    public static float[] RopeFrequencyFactors(ModelConfig config)
    {
        var s = config.RopeScaling;
        int half = config.HeadDim / 2;
        var factors = new float[half];
        double lowWavelength = s.OriginalMaxPositions / s.LowFreqFactor, highWavelength = s.OriginalMaxPositions / s.HighFreqFactor;
        for (int i = 0; i < half; i++)
        {
            // The converter computes the frequencies in float32 (torch.arange(...) / dim, base ** that).
            float freq = 1f / MathF.Pow((float)config.RopeTheta, 2f * i / config.HeadDim);
            double wavelength = 2 * Math.PI / freq;
            if (wavelength < highWavelength) factors[i] = 1f;
            else if (wavelength > lowWavelength) factors[i] = (float)s.Factor;
            else
            {
                double smooth = (s.OriginalMaxPositions / wavelength - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                factors[i] = (float)(1 / ((1 - smooth) / s.Factor + smooth));
            }
        }
        return factors;
    }

    /// <summary>Rebuilds the model configuration from a GGUF's metadata and tensor shapes.</summary>
    /// <exception cref="InvalidDataException">Unsupported architecture, or a missing or invalid key (the message names it).</exception>
    public static ModelConfig ReadConfig(GgufFile file)
    {
        string arch = file.GetString("general.architecture")
            ?? throw new InvalidDataException($"{file.Path}: no general.architecture; not a model GGUF.");
        if (arch is not ("llama" or "qwen2"))
            throw new InvalidDataException($"{file.Path}: general.architecture '{GgufFile.Show(arch)}' is not supported (supported: llama, qwen2).");
        int Required(string key)
        {
            long v = file.GetInteger($"{arch}.{key}") ?? throw new InvalidDataException($"{file.Path}: metadata '{arch}.{key}' is missing.");
            if (v <= 0 || v > int.MaxValue) throw new InvalidDataException($"{file.Path}: metadata '{arch}.{key}' is {v}, expected a positive 32-bit integer.");
            return (int)v;
        }
        int hidden = Required("embedding_length");
        int heads = Required("attention.head_count");
        int kvHeads = file.Metadata.ContainsKey($"{arch}.attention.head_count_kv") ? Required("attention.head_count_kv") : heads;
        if (heads % kvHeads != 0) throw new InvalidDataException($"{file.Path}: {arch}.attention.head_count_kv {kvHeads} does not divide head_count {heads}.");
        int headDim = file.Metadata.ContainsKey($"{arch}.attention.key_length") ? Required("attention.key_length")
            : hidden % heads == 0 ? hidden / heads : throw new InvalidDataException($"{file.Path}: embedding_length {hidden} is not divisible by head_count {heads} and no key_length is given.");
        if (headDim % 2 != 0) throw new InvalidDataException($"{file.Path}: head dimension {headDim} must be even for rotary embeddings.");
        int vocab = file.Metadata.ContainsKey($"{arch}.vocab_size") ? Required("vocab_size")
            : file.TryGetTensor(GgufTensorNames.Embedding, out var embd) && embd.Shape.Length == 2 && embd.Shape[0] <= int.MaxValue ? (int)embd.Shape[0]
            : throw new InvalidDataException($"{file.Path}: no {arch}.vocab_size and no 2-D {GgufTensorNames.Embedding}.");
        int layers = Required("block_count");
        int intermediate = Required("feed_forward_length");
        // The metadata must agree with the tensors before anything is sized from it (a corrupt count must not allocate).
        RequireShape(file, GgufTensorNames.Embedding, vocab, hidden);
        RequireShape(file, "blk.0.attn_q.weight", (long)heads * headDim, hidden);
        RequireShape(file, "blk.0.attn_k.weight", (long)kvHeads * headDim, hidden);
        RequireShape(file, "blk.0.ffn_up.weight", intermediate, hidden);
        if (layers > file.Tensors.Count / 9)
            throw new InvalidDataException($"{file.Path}: {arch}.block_count is {layers} but the file has only {file.Tensors.Count} tensors (each layer needs 9).");
        double theta = Decimal(file.GetDouble($"{arch}.rope.freq_base")) ?? 10000;
        bool qwen = arch == "qwen2";
        bool qBias = file.TryGetTensor("blk.0.attn_q.bias", out _);
        bool oBias = file.TryGetTensor("blk.0.attn_output.bias", out _);
        if (qwen && !qBias) throw new InvalidDataException($"{file.Path}: a qwen2 model needs blk.0.attn_q.bias.");
        long? bos = file.GetInteger("tokenizer.ggml.bos_token_id");
        long? eos = file.GetInteger("tokenizer.ggml.eos_token_id");
        return new ModelConfig
        {
            ModelType = arch,
            HiddenSize = hidden,
            IntermediateSize = intermediate,
            LayerCount = layers,
            HeadCount = heads,
            KvHeadCount = kvHeads,
            HeadDim = headDim,
            VocabSize = vocab,
            MaxPositions = file.Metadata.ContainsKey($"{arch}.context_length") ? Required("context_length") : 2048,
            RmsNormEps = Decimal(file.GetDouble($"{arch}.attention.layer_norm_rms_epsilon")) ?? 1e-6,
            RopeTheta = theta,
            RopeScaling = ReadRopeScaling(file, arch, headDim, theta),
            TieWordEmbeddings = !file.TryGetTensor(GgufTensorNames.Output, out _),
            QkvBias = qBias,
            OutputBias = !qwen && oBias,
            BosTokenId = bos is long b && b >= 0 && b < vocab ? (int)b : null,
            EosTokenIds = eos is long e && e >= 0 && e < vocab ? [(int)e] : [],
        };
    }

    private static RopeScaling ReadRopeScaling(GgufFile file, string arch, int headDim, double theta)
    {
        if (file.GetString(LlmPressRope + "type") == "llama3")
        {
            double Get(string key) => Decimal(file.GetDouble(LlmPressRope + key))
                ?? throw new InvalidDataException($"{file.Path}: metadata '{LlmPressRope}{key}' is missing.");
            return new RopeScaling(RopeScalingType.Llama3, Get("factor"), Get("low_freq_factor"), Get("high_freq_factor"), (int)Get("original_max_position_embeddings"));
        }
        if (file.TryGetTensor(GgufTensorNames.RopeFreqs, out var freqs))
            return MatchLlama3Factors(file, freqs, headDim, theta);
        string? type = file.GetString($"{arch}.rope.scaling.type");
        switch (type)
        {
            case null or "none":
                return RopeScaling.NoScaling;
            case "linear":
                double factor = Decimal(file.GetDouble($"{arch}.rope.scaling.factor")) ?? throw new InvalidDataException($"{file.Path}: linear RoPE scaling without {arch}.rope.scaling.factor.");
                return new RopeScaling(RopeScalingType.Linear, factor);
            default:
                throw new InvalidDataException($"{file.Path}: {arch}.rope.scaling.type '{GgufFile.Show(type)}' is not supported (supported: none, linear).");
        }
    }

    /// <summary>
    /// A GGUF from llama.cpp's converter stores Llama 3.1 scaling only as rope_freqs.weight. The parameters every
    /// Llama 3.1 / 3.2 release uses (low_freq_factor 1, high_freq_factor 4, original context 8192, factor = the largest
    /// factor) are accepted when they reproduce the stored factors (to 1e-5 relative); anything else is refused.
    /// </summary>
    private static RopeScaling MatchLlama3Factors(GgufFile file, GgufTensorInfo info, int headDim, double theta)
    {
        if (info.Shape is not [long n] || n != headDim / 2 || info.Type != GgmlType.F32)
            throw new InvalidDataException($"{file.Path}: {GgufTensorNames.RopeFreqs} is {GgmlTypeInfo.Name(info.Type)} {info.ShapeText}, expected f32 [{headDim / 2}].");
        var stored = GgmlCodec.Decode(GgmlType.F32, file.GetData(info).Span, 1, headDim / 2);
        double factor = Decimal(stored[^1]) ?? 1;
        var candidate = new RopeScaling(RopeScalingType.Llama3, factor, 1, 4, 8192);
        var expected = RopeFrequencyFactors(new ModelConfig
        {
            ModelType = "llama", HiddenSize = 1, IntermediateSize = 1, LayerCount = 1, HeadCount = 1, KvHeadCount = 1,
            HeadDim = headDim, VocabSize = 1, MaxPositions = 1, RopeTheta = theta, RopeScaling = candidate,
        });
        for (int i = 0; i < expected.Length; i++)
            if (!(Math.Abs(expected[i] - stored[i]) <= 1e-5 * Math.Abs(expected[i])))
                throw new InvalidDataException(
                    $"{file.Path}: {GgufTensorNames.RopeFreqs} [{i}] = {stored[i]:R} does not match Llama 3.1 scaling with factor {factor:R}, low 1, high 4, " +
                    $"original context 8192 ({expected[i]:R}); LlmPress cannot rebuild other RoPE scalings from the factors alone.");
        return candidate;
    }

    private static void RequireShape(GgufFile file, string name, long rows, long cols)
    {
        var info = file.GetTensor(name);
        if (info.Shape is not [long r, long c] || r != rows || c != cols)
            throw new InvalidDataException($"{file.Path}: tensor '{name}' has shape {info.ShapeText} but the metadata implies [{rows}, {cols}].");
    }

    /// <summary>
    /// A float32 value read back as the shortest decimal that round-trips it (1e-5f → 1e-5), which is what config.json
    /// held before it was narrowed to float32; so a model loaded from GGUF uses the same double constants.
    /// </summary>
    private static double? Decimal(double? value) =>
        value is double v ? double.Parse(((float)v).ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture) : null;
}
