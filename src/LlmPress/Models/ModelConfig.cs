using System.Text.Json;

namespace LlmPress.Models;

/// <summary>
/// The architecture of a Llama-family decoder as described by a Hugging Face config.json
/// (model_type llama, mistral or qwen2). Everything the forward pass needs, validated once at load.
/// </summary>
public sealed record ModelConfig
{
    public required string ModelType { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int LayerCount { get; init; }
    public required int HeadCount { get; init; }
    public required int KvHeadCount { get; init; }
    /// <summary>Per-head dimension; explicit in some configs (tiny-mistral: 32 ≠ hidden/heads).</summary>
    public required int HeadDim { get; init; }
    public required int VocabSize { get; init; }
    public required int MaxPositions { get; init; }
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000;
    public RopeScaling RopeScaling { get; init; } = RopeScaling.NoScaling;
    public bool TieWordEmbeddings { get; init; }
    /// <summary>q/k/v projections carry biases (always for qwen2, attention_bias for llama).</summary>
    public bool QkvBias { get; init; }
    /// <summary>o_proj carries a bias (llama attention_bias=true).</summary>
    public bool OutputBias { get; init; }
    /// <summary>Mistral's sliding attention window, or null for full causal attention.</summary>
    public int? SlidingWindow { get; init; }
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    /// <summary>The stored dtype config.json declares ("float32", "bfloat16", ...), informational.</summary>
    public string? TorchDtype { get; init; }

    /// <summary>
    /// Sub-blocks removed by depth pruning (config.json "llmpress_dropped_blocks", written by `llmpress search
    /// --drop-blocks`): their layers skip them (<see cref="DecoderLayer.SkipAttention"/>). Their output projections are
    /// stored as exact zeros, so engines that ignore the field compute the same model.
    /// </summary>
    public IReadOnlyList<DroppedBlock> DroppedBlocks { get; init; } = [];

    /// <summary>True when <paramref name="block"/> of decoder layer <paramref name="layer"/> is in <see cref="DroppedBlocks"/>.</summary>
    public bool IsDropped(int layer, DecoderBlock block)
    {
        foreach (var b in DroppedBlocks)
            if (b.Layer == layer && b.Block == block) return true;
        return false;
    }

    public int QueryDim => HeadCount * HeadDim;
    public int KvDim => KvHeadCount * HeadDim;

    /// <summary>Module name of the output projection (its weight is <see cref="TensorNames.LmHead"/>).</summary>
    public const string LmHeadModule = "lm_head";

    /// <summary>[out, in] of a decoder-layer linear ("model.layers.3.mlp.down_proj") or of <see cref="LmHeadModule"/>.</summary>
    /// <exception cref="InvalidDataException">Not a linear of this architecture.</exception>
    public (int Rows, int Cols) LinearShape(string module)
    {
        if (module == LmHeadModule) return (VocabSize, HiddenSize);
        string name = module[(module.LastIndexOf('.') + 1)..];
        return name switch
        {
            "q_proj" => (QueryDim, HiddenSize),
            "k_proj" or "v_proj" => (KvDim, HiddenSize),
            "o_proj" => (HiddenSize, QueryDim),
            "gate_proj" or "up_proj" => (IntermediateSize, HiddenSize),
            "down_proj" => (HiddenSize, IntermediateSize),
            _ => throw new InvalidDataException($"{module}: not a linear layer LlmPress knows the shape of."),
        };
    }

    /// <summary>Parameters of the architecture (embeddings and head counted once when tied).</summary>
    public long ParameterCount
    {
        get
        {
            long d = HiddenSize;
            long attn = d * QueryDim + 2 * d * KvDim + (long)QueryDim * d;
            if (QkvBias) attn += QueryDim + 2 * KvDim;
            if (OutputBias) attn += d;
            long mlp = 3 * d * IntermediateSize;
            long perLayer = attn + mlp + 2 * d;
            long embed = (long)VocabSize * d;
            return LayerCount * perLayer + embed + (TieWordEmbeddings ? 0 : embed) + d;
        }
    }

    private static readonly string[] s_supportedTypes = ["llama", "mistral", "qwen2"];

    /// <summary>Reads config.json (a file, or a directory holding one).</summary>
    /// <exception cref="FileNotFoundException">No config.json.</exception>
    /// <exception cref="InvalidDataException">Malformed JSON, an unsupported architecture or an invalid field; the message names the file and field.</exception>
    public static ModelConfig Load(string path)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, "config.json") : path;
        if (!File.Exists(file))
            throw new FileNotFoundException($"{file}: config.json not found; a model directory needs the Hugging Face config.json.", file);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(file), new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{file}: not valid JSON ({e.Message}).", e);
        }
        using (doc)
            return Parse(doc.RootElement, file);
    }

    /// <summary>Parses the root object of a config.json; <paramref name="file"/> is used in error messages.</summary>
    public static ModelConfig Parse(JsonElement root, string file)
    {
        var r = new ConfigReader(root, file);
        if (root.ValueKind != JsonValueKind.Object) throw r.Error("", "the root must be a JSON object");
        string modelType = r.RequiredString("model_type");
        if (Array.IndexOf(s_supportedTypes, modelType) < 0)
            throw r.Error("model_type", $"'{modelType}' is not supported (supported: {string.Join(", ", s_supportedTypes)})");

        int hidden = r.PositiveInt("hidden_size");
        int heads = r.PositiveInt("num_attention_heads");
        int kvHeads = r.OptionalPositiveInt("num_key_value_heads") ?? heads;
        if (heads % kvHeads != 0)
            throw r.Error("num_key_value_heads", $"{kvHeads} does not divide num_attention_heads {heads}");
        int? explicitHeadDim = r.OptionalPositiveInt("head_dim");
        if (explicitHeadDim is null && hidden % heads != 0)
            throw r.Error("hidden_size", $"{hidden} is not divisible by num_attention_heads {heads} and no head_dim is given");
        int headDim = explicitHeadDim ?? hidden / heads;
        if (headDim % 2 != 0) throw r.Error("head_dim", $"{headDim} must be even for rotary embeddings");

        string act = r.OptionalString("hidden_act") ?? "silu";
        if (act != "silu") throw r.Error("hidden_act", $"'{act}' is not supported (only silu)");
        if (r.OptionalBool("mlp_bias") == true) throw r.Error("mlp_bias", "MLP biases are not supported");

        bool attentionBias = r.OptionalBool("attention_bias") ?? false;
        bool qwen = modelType == "qwen2";
        int? slidingWindow = null;
        if (modelType == "mistral") slidingWindow = r.OptionalPositiveInt("sliding_window");
        else if (qwen && r.OptionalBool("use_sliding_window") == true)
            throw r.Error("use_sliding_window", "Qwen2 sliding-window attention is not supported");

        int layerCount = r.PositiveInt("num_hidden_layers");
        return new ModelConfig
        {
            ModelType = modelType,
            HiddenSize = hidden,
            IntermediateSize = r.PositiveInt("intermediate_size"),
            LayerCount = layerCount,
            HeadCount = heads,
            KvHeadCount = kvHeads,
            HeadDim = headDim,
            VocabSize = r.PositiveInt("vocab_size"),
            MaxPositions = r.OptionalPositiveInt("max_position_embeddings") ?? 2048,
            RmsNormEps = r.OptionalDouble("rms_norm_eps") ?? 1e-6,
            RopeTheta = r.OptionalDouble("rope_theta") ?? 10000,
            RopeScaling = ParseRopeScaling(r),
            TieWordEmbeddings = r.OptionalBool("tie_word_embeddings") ?? false,
            QkvBias = qwen || attentionBias,
            OutputBias = !qwen && attentionBias,
            SlidingWindow = slidingWindow,
            BosTokenId = r.OptionalInt("bos_token_id"),
            EosTokenIds = r.IntOrIntList("eos_token_id"),
            TorchDtype = r.OptionalString("torch_dtype"),
            DroppedBlocks = ParseDroppedBlocks(r, layerCount),
        };
    }

    // "llmpress_dropped_blocks": [{"layer": i, "block": "self_attn" | "mlp"}, ...], layers in this config's numbering.
    private static DroppedBlock[] ParseDroppedBlocks(ConfigReader r, int layerCount)
    {
        const string Field = DroppedBlock.ConfigKey;
        if (!r.Root.TryGetProperty(Field, out var list) || list.ValueKind == JsonValueKind.Null) return [];
        if (list.ValueKind != JsonValueKind.Array) throw r.Error(Field, "must be a list of {\"layer\": i, \"block\": \"self_attn\" or \"mlp\"}");
        var blocks = new List<DroppedBlock>();
        foreach (var e in list.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Object) throw r.Error(Field, $"must hold objects, not {e.GetRawText()}");
            var er = new ConfigReader(e, r.File, Field + ".");
            int layer = er.OptionalInt("layer") ?? throw r.Error(Field, $"entry {e.GetRawText()} has no layer");
            if ((uint)layer >= (uint)layerCount) throw r.Error(Field, $"names layer {layer}, but the model has {layerCount} (0..{layerCount - 1})");
            var block = er.OptionalString("block") switch
            {
                "self_attn" => DecoderBlock.SelfAttention,
                "mlp" => DecoderBlock.Mlp,
                var b => throw r.Error(Field, $"entry {e.GetRawText()}: block '{b}' is neither self_attn nor mlp"),
            };
            blocks.Add(new DroppedBlock(layer, block));
        }
        return [.. blocks];
    }

    private static RopeScaling ParseRopeScaling(ConfigReader r)
    {
        if (!r.Root.TryGetProperty("rope_scaling", out var s) || s.ValueKind == JsonValueKind.Null)
            return RopeScaling.NoScaling;
        if (s.ValueKind != JsonValueKind.Object) throw r.Error("rope_scaling", "must be an object or null");
        var sr = new ConfigReader(s, r.File, "rope_scaling.");
        string type = sr.OptionalString("rope_type") ?? sr.OptionalString("type")
            ?? throw r.Error("rope_scaling", "has neither rope_type nor type");
        switch (type)
        {
            case "default":
                return RopeScaling.NoScaling;
            case "linear":
                return new RopeScaling(RopeScalingType.Linear, Factor: sr.PositiveDouble("factor"));
            case "llama3":
                var scaling = new RopeScaling(RopeScalingType.Llama3,
                    Factor: sr.PositiveDouble("factor"),
                    LowFreqFactor: sr.PositiveDouble("low_freq_factor"),
                    HighFreqFactor: sr.PositiveDouble("high_freq_factor"),
                    OriginalMaxPositions: sr.PositiveInt("original_max_position_embeddings"));
                if (scaling.HighFreqFactor <= scaling.LowFreqFactor)
                    throw r.Error("rope_scaling.high_freq_factor", "must exceed low_freq_factor");
                return scaling;
            default:
                throw r.Error("rope_scaling.rope_type", $"'{type}' is not supported (supported: default, linear, llama3)");
        }
    }
}
