using System.Text.Json;
using LlmPress.Gguf;
using LlmPress.Tokenization;

namespace LlmPress.Export;

/// <summary>
/// The tokenizer.ggml.* metadata llama.cpp needs, from a Hugging Face tokenizer.json (+ tokenizer_config.json), as
/// convert_hf_to_gguf.py writes it:
/// byte-level BPE → model "gpt2" with tokens, token_type and merges ("a b"), and pre naming llama.cpp's pre-tokenizer;
/// SentencePiece-style BPE (byte_fallback, "▁" normalizer) → model "llama" with tokens, scores and token_type.
/// A SentencePiece tokenizer.json has no scores, so they are derived from the merges: the token made by merge r scores
/// −r (earlier merges win in llama.cpp's SPM tokenizer just as in BPE), other tokens 0 (single characters, bytes,
/// specials) or below every merge (multi-character tokens no merge makes).
/// </summary>
public static class GgufTokenizerMetadata
{
    /// <summary>llama.cpp token types (llama_token_type).</summary>
    public const int Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6;

    /// <summary>Key/value pairs for the tokenizer at <paramref name="tokenizerFile"/>, padded with unused tokens up to <paramref name="vocabSize"/>.</summary>
    /// <exception cref="InvalidDataException">The tokenizer is not one GGUF can describe, or is larger than the model's vocabulary.</exception>
    public static List<KeyValuePair<string, GgufValue>> Create(string tokenizerFile, int vocabSize, List<string> warnings)
    {
        var tokenizer = Tokenizer.Load(tokenizerFile);
        using var doc = TokenizerJsonReader.ParseFile(tokenizerFile);
        var root = doc.RootElement;
        var model = root.GetProperty("model");
        bool byteLevel = ContainsType(root, "pre_tokenizer", "ByteLevel") || ContainsType(root, "decoder", "ByteLevel");
        bool byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;
        if (tokenizer.VocabSize > vocabSize)
            throw new InvalidDataException($"{tokenizerFile}: {tokenizer.VocabSize} tokens, more than the model's vocab_size {vocabSize}.");

        var merges = ReadMerges(model);
        var tokens = new string[vocabSize];
        var types = new int[vocabSize];
        var added = new Dictionary<int, bool>(); // id → special
        if (root.TryGetProperty("added_tokens", out var addedTokens) && addedTokens.ValueKind == JsonValueKind.Array)
            foreach (var t in addedTokens.EnumerateArray())
                added[t.GetProperty("id").GetInt32()] = t.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True;
        string? unk = model.TryGetProperty("unk_token", out var u) && u.ValueKind == JsonValueKind.String ? u.GetString() : null;
        int? unkId = null;
        for (int id = 0; id < vocabSize; id++)
        {
            string? text = id < tokenizer.VocabSize ? TryToken(tokenizer, id) : null;
            if (text is null)
            {
                tokens[id] = $"[PAD{id}]";
                types[id] = Unused;
                continue;
            }
            tokens[id] = text;
            if (text == unk)
            {
                types[id] = Unknown;
                unkId = id;
            }
            else if (added.TryGetValue(id, out bool special)) types[id] = special ? Control : UserDefined;
            else if (byteFallback && text.Length == 6 && text.StartsWith("<0x", StringComparison.Ordinal) && text[^1] == '>') types[id] = Byte;
            else types[id] = Normal;
        }

        var kv = new List<KeyValuePair<string, GgufValue>>();
        void Add(string key, GgufValue value) => kv.Add(new(key, value));
        if (byteLevel)
        {
            Add("tokenizer.ggml.model", GgufValue.String("gpt2"));
            string pre = PreTokenizerName(root);
            if (pre == "default") warnings.Add($"{tokenizerFile}: pre-tokenizer not recognised; tokenizer.ggml.pre = \"default\" (llama.cpp may split text differently).");
            Add("tokenizer.ggml.pre", GgufValue.String(pre));
            Add("tokenizer.ggml.tokens", GgufValue.Strings(tokens));
            Add("tokenizer.ggml.token_type", GgufValue.Int32s(types));
            var mergeText = new string[merges.Count];
            for (int i = 0; i < merges.Count; i++) mergeText[i] = merges[i].Left + " " + merges[i].Right;
            Add("tokenizer.ggml.merges", GgufValue.Strings(mergeText));
        }
        else if (byteFallback)
        {
            Add("tokenizer.ggml.model", GgufValue.String("llama"));
            Add("tokenizer.ggml.pre", GgufValue.String("default"));
            Add("tokenizer.ggml.tokens", GgufValue.Strings(tokens));
            Add("tokenizer.ggml.scores", GgufValue.Float32s(Scores(tokens, types, merges)));
            Add("tokenizer.ggml.token_type", GgufValue.Int32s(types));
            Add("tokenizer.ggml.add_space_prefix", GgufValue.Bool(ContainsType(root, "normalizer", "Prepend")));
        }
        else
        {
            throw new InvalidDataException($"{tokenizerFile}: neither byte-level BPE nor SentencePiece-style BPE with byte_fallback; GGUF export supports those two.");
        }
        if (tokenizer.BosTokenId is int bos) Add("tokenizer.ggml.bos_token_id", GgufValue.UInt32((uint)bos));
        if (tokenizer.EosTokenId is int eos) Add("tokenizer.ggml.eos_token_id", GgufValue.UInt32((uint)eos));
        if (unkId is int unkIndex) Add("tokenizer.ggml.unknown_token_id", GgufValue.UInt32((uint)unkIndex));
        // Whether encoding adds BOS: tokenizer_config.json's add_bos_token, else whether the post-processor adds it.
        bool addBos = tokenizer.AddBosToken ?? (tokenizer.BosTokenId is int b && tokenizer.Encode("a", addSpecialTokens: true) is [var first, ..] && first == b);
        Add("tokenizer.ggml.add_bos_token", GgufValue.Bool(addBos));
        Add("tokenizer.ggml.add_eos_token", GgufValue.Bool(false));
        if (tokenizer.ChatTemplate is string template) Add("tokenizer.chat_template", GgufValue.String(template));
        return kv;
    }

    private static string? TryToken(Tokenizer tokenizer, int id)
    {
        try
        {
            return tokenizer.GetTokenString(id);
        }
        catch (ArgumentException)
        {
            return null; // an id the vocabulary skips
        }
    }

    private static List<(string Left, string Right)> ReadMerges(JsonElement model)
    {
        var merges = new List<(string, string)>();
        if (!model.TryGetProperty("merges", out var m) || m.ValueKind != JsonValueKind.Array) return merges;
        foreach (var e in m.EnumerateArray())
        {
            if (e.ValueKind == JsonValueKind.String)
            {
                string s = e.GetString()!;
                int space = s.IndexOf(' ', StringComparison.Ordinal);
                merges.Add((s[..space], s[(space + 1)..]));
            }
            else
            {
                merges.Add((e[0].GetString()!, e[1].GetString()!));
            }
        }
        return merges;
    }

    private static float[] Scores(string[] tokens, int[] types, List<(string Left, string Right)> merges)
    {
        var rank = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int r = 0; r < merges.Count; r++) rank.TryAdd(merges[r].Left + merges[r].Right, r);
        var scores = new float[tokens.Length];
        for (int id = 0; id < tokens.Length; id++)
        {
            if (rank.TryGetValue(tokens[id], out int r)) scores[id] = -r;
            else if (types[id] == Normal && tokens[id].Length > 1 && !(tokens[id].Length == 2 && char.IsSurrogatePair(tokens[id], 0)))
                scores[id] = -(merges.Count + id + 1);
        }
        return scores;
    }

    /// <summary>llama.cpp's name for the pre-tokenizer (llama-vocab.cpp LLAMA_VOCAB_PRE_TYPE_*), recognised by its split pattern.</summary>
    private static string PreTokenizerName(JsonElement root)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object) return "default";
        var patterns = new List<string>();
        CollectRegexes(pre, patterns);
        if (patterns.Contains(KnownPatternMatcher.Llama3Pattern)) return "llama-bpe";
        if (patterns.Contains(KnownPatternMatcher.QwenPattern)) return "qwen2";
        if (ContainsType(root, "pre_tokenizer", "Digits")) return "smollm";
        if (pre.TryGetProperty("type", out var t) && t.GetString() == "ByteLevel") return "gpt-2";
        return "default";
    }

    private static void CollectRegexes(JsonElement e, List<string> patterns)
    {
        if (e.ValueKind == JsonValueKind.Object)
        {
            foreach (var p in e.EnumerateObject())
            {
                if (p.Name == "Regex" && p.Value.ValueKind == JsonValueKind.String) patterns.Add(p.Value.GetString()!);
                else CollectRegexes(p.Value, patterns);
            }
        }
        else if (e.ValueKind == JsonValueKind.Array)
        {
            foreach (var x in e.EnumerateArray()) CollectRegexes(x, patterns);
        }
    }

    private static bool ContainsType(JsonElement root, string section, string type) =>
        root.TryGetProperty(section, out var s) && s.ValueKind == JsonValueKind.Object && Contains(s, type);

    private static bool Contains(JsonElement e, string type)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                if (e.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == type) return true;
                foreach (var p in e.EnumerateObject())
                    if (Contains(p.Value, type)) return true;
                return false;
            case JsonValueKind.Array:
                foreach (var x in e.EnumerateArray())
                    if (Contains(x, type)) return true;
                return false;
            default:
                return false;
        }
    }
}
