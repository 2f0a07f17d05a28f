using System.Text;
using System.Text.Json;
using LlmPress.Gguf;

namespace LlmPress.Tokenization;

/// <summary>
/// Rebuilds a <see cref="Tokenizer"/> from a GGUF file's tokenizer.ggml.* metadata, by writing the equivalent
/// Hugging Face tokenizer.json in memory and reading it with the same reader as a real one:
/// "gpt2" (byte-level BPE): tokens, merges, pre (llama-bpe, qwen2, smollm, gpt-2/default) → the matching pre-tokenizer;
/// "llama" (SentencePiece BPE with byte fallback): tokens and scores; merges are derived from the scores as Hugging
/// Face's SentencePiece converter does (every split of a token into two vocabulary tokens, ordered by the token's
/// score, then token id, then the pieces' ids). Control and unknown tokens become special added tokens.
/// </summary>
public static class GgufTokenizer
{
    private const string Metaspace = "\u2581";

    /// <summary>Whether the file carries a tokenizer.</summary>
    public static bool HasTokenizer(GgufFile file) => file.Metadata.ContainsKey("tokenizer.ggml.model");

    /// <exception cref="InvalidDataException">No tokenizer, an unsupported tokenizer.ggml.model or pre, or inconsistent arrays.</exception>
    public static Tokenizer Load(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        string model = file.GetString("tokenizer.ggml.model")
            ?? throw new InvalidDataException($"{file.Path}: no tokenizer.ggml.model; this GGUF has no tokenizer (pass a tokenizer.json instead).");
        string[] tokens = file.GetArray<string>("tokenizer.ggml.tokens") ?? throw new InvalidDataException($"{file.Path}: no tokenizer.ggml.tokens.");
        int[] types = file.GetArray<int>("tokenizer.ggml.token_type") ?? Array.ConvertAll(tokens, _ => 1);
        if (types.Length != tokens.Length)
            throw new InvalidDataException($"{file.Path}: tokenizer.ggml.token_type has {types.Length} entries for {tokens.Length} tokens.");
        string? Token(string key) => file.GetInteger(key) is long id && id >= 0 && id < tokens.Length ? tokens[id] : null;

        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteStartArray("added_tokens");
            for (int id = 0; id < tokens.Length; id++)
            {
                if (types[id] is not (2 or 3 or 4)) continue; // unknown, control, user-defined
                w.WriteStartObject();
                w.WriteNumber("id", id);
                w.WriteString("content", tokens[id]);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("lstrip", false);
                w.WriteBoolean("rstrip", false);
                w.WriteBoolean("normalized", false);
                w.WriteBoolean("special", types[id] != 4);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            switch (model)
            {
                case "gpt2":
                    WriteByteLevel(w, file, tokens);
                    break;
                case "llama":
                    WriteSentencePiece(w, file, tokens, types, Token("tokenizer.ggml.unknown_token_id"));
                    break;
                default:
                    throw new InvalidDataException($"{file.Path}: tokenizer.ggml.model '{GgufFile.Show(model)}' is not supported (supported: gpt2, llama).");
            }
            w.WriteEndObject();
        }
        var definition = TokenizerJsonReader.Read(buffer.ToArray(), $"{file.Path} (tokenizer.ggml.*)");
        string? bos = Token("tokenizer.ggml.bos_token_id"), eos = Token("tokenizer.ggml.eos_token_id");
        var config = new TokenizerConfig
        {
            HasBosToken = true,
            BosToken = bos,
            HasEosToken = true,
            EosToken = eos,
            AddBosToken = file.GetBool("tokenizer.ggml.add_bos_token") ?? (model == "llama" && bos is not null),
            AddEosToken = file.GetBool("tokenizer.ggml.add_eos_token") ?? false,
            ChatTemplate = file.GetString("tokenizer.chat_template"),
        };
        return Tokenizer.Create(definition, config);
    }

    private static void WriteByteLevel(Utf8JsonWriter w, GgufFile file, string[] tokens)
    {
        string pre = file.GetString("tokenizer.ggml.pre") ?? "default";
        w.WriteNull("normalizer");
        w.WritePropertyName("pre_tokenizer");
        switch (pre)
        {
            case "llama-bpe" or "llama3":
                WriteSplitThenByteLevel(w, KnownPatternMatcher.Llama3Pattern);
                break;
            case "qwen2":
                WriteSplitThenByteLevel(w, KnownPatternMatcher.QwenPattern);
                break;
            case "smollm":
                w.WriteStartObject();
                w.WriteString("type", "Sequence");
                w.WriteStartArray("pretokenizers");
                w.WriteStartObject();
                w.WriteString("type", "Digits");
                w.WriteBoolean("individual_digits", true);
                w.WriteEndObject();
                WriteByteLevelObject(w, useRegex: true);
                w.WriteEndArray();
                w.WriteEndObject();
                break;
            case "gpt-2" or "default":
                WriteByteLevelObject(w, useRegex: true);
                break;
            default:
                throw new InvalidDataException($"{file.Path}: tokenizer.ggml.pre '{GgufFile.Show(pre)}' is not supported (supported: llama-bpe, qwen2, smollm, gpt-2, default).");
        }
        w.WriteNull("post_processor");
        w.WritePropertyName("decoder");
        WriteByteLevelObject(w, useRegex: true);
        string[] merges = file.GetArray<string>("tokenizer.ggml.merges") ?? throw new InvalidDataException($"{file.Path}: a gpt2 tokenizer needs tokenizer.ggml.merges.");
        w.WriteStartObject("model");
        w.WriteString("type", "BPE");
        w.WriteBoolean("byte_fallback", false);
        // llama.cpp skips merges for words already in the vocabulary with the Llama-3 pre-tokenizer, as tokenizers' ignore_merges does.
        w.WriteBoolean("ignore_merges", pre is "llama-bpe" or "llama3");
        WriteVocab(w, tokens);
        w.WriteStartArray("merges");
        foreach (string m in merges) w.WriteStringValue(m);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteSplitThenByteLevel(Utf8JsonWriter w, string pattern)
    {
        w.WriteStartObject();
        w.WriteString("type", "Sequence");
        w.WriteStartArray("pretokenizers");
        w.WriteStartObject();
        w.WriteString("type", "Split");
        w.WriteStartObject("pattern");
        w.WriteString("Regex", pattern);
        w.WriteEndObject();
        w.WriteString("behavior", "Isolated");
        w.WriteBoolean("invert", false);
        w.WriteEndObject();
        WriteByteLevelObject(w, useRegex: false);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    // A tokenizer.json "Replace" normalizer/decoder: every occurrence of the string pattern becomes content.
    private static void WriteReplace(Utf8JsonWriter w, string pattern, string content)
    {
        w.WriteStartObject();
        w.WriteString("type", "Replace");
        w.WriteStartObject("pattern");
        w.WriteString("String", pattern);
        w.WriteEndObject();
        w.WriteString("content", content);
        w.WriteEndObject();
    }

    private static void WriteByteLevelObject(Utf8JsonWriter w, bool useRegex)
    {
        w.WriteStartObject();
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", false);
        w.WriteBoolean("trim_offsets", true);
        w.WriteBoolean("use_regex", useRegex);
        w.WriteEndObject();
    }

    private static void WriteSentencePiece(Utf8JsonWriter w, GgufFile file, string[] tokens, int[] types, string? unk)
    {
        float[] scores = file.GetArray<float>("tokenizer.ggml.scores") ?? throw new InvalidDataException($"{file.Path}: a llama tokenizer needs tokenizer.ggml.scores.");
        if (scores.Length != tokens.Length)
            throw new InvalidDataException($"{file.Path}: tokenizer.ggml.scores has {scores.Length} entries for {tokens.Length} tokens.");
        bool prefix = file.GetBool("tokenizer.ggml.add_space_prefix") ?? true;
        w.WriteStartObject("normalizer");
        w.WriteString("type", "Sequence");
        w.WriteStartArray("normalizers");
        if (prefix)
        {
            w.WriteStartObject();
            w.WriteString("type", "Prepend");
            w.WriteString("prepend", Metaspace);
            w.WriteEndObject();
        }
        WriteReplace(w, " ", Metaspace);
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteNull("pre_tokenizer");
        w.WriteNull("post_processor");
        w.WriteStartObject("decoder");
        w.WriteString("type", "Sequence");
        w.WriteStartArray("decoders");
        WriteReplace(w, Metaspace, " ");
        w.WriteStartObject();
        w.WriteString("type", "ByteFallback");
        w.WriteEndObject();
        w.WriteStartObject();
        w.WriteString("type", "Fuse");
        w.WriteEndObject();
        if (prefix)
        {
            w.WriteStartObject();
            w.WriteString("type", "Strip");
            w.WriteString("content", " ");
            w.WriteNumber("start", 1);
            w.WriteNumber("stop", 0);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteStartObject("model");
        w.WriteString("type", "BPE");
        if (unk is null) w.WriteNull("unk_token");
        else w.WriteString("unk_token", unk);
        w.WriteBoolean("fuse_unk", true);
        w.WriteBoolean("byte_fallback", true);
        var ids = WriteVocab(w, tokens);
        w.WriteStartArray("merges");
        foreach (var (left, right) in DeriveMerges(tokens, types, scores, ids))
        {
            w.WriteStartArray();
            w.WriteStringValue(left);
            w.WriteStringValue(right);
            w.WriteEndArray();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    // vocab: token → id, the first id of a token that appears twice (such ids stay reachable only as added tokens).
    private static Dictionary<string, int> WriteVocab(Utf8JsonWriter w, string[] tokens)
    {
        var ids = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        w.WriteStartObject("vocab");
        for (int id = 0; id < tokens.Length; id++)
            if (ids.TryAdd(tokens[id], id)) w.WriteNumber(tokens[id], id);
        w.WriteEndObject();
        return ids;
    }

    /// <summary>
    /// Hugging Face's SentencePieceExtractor: for each normal token, every split into two vocabulary tokens is a
    /// merge; merges are ordered by the token's score (highest first), then by token id, then by the pieces' ids.
    /// </summary>
    internal static List<(string Left, string Right)> DeriveMerges(string[] tokens, int[] types, float[] scores, Dictionary<string, int> ids)
    {
        var merges = new List<(float Score, int Token, int Left, int Right)>();
        for (int id = 0; id < tokens.Length; id++)
        {
            string t = tokens[id];
            if (types[id] != 1 || t.Length < 2 || ids[t] != id) continue;
            for (int k = 1; k < t.Length; k++)
            {
                if (char.IsHighSurrogate(t[k - 1]) && char.IsLowSurrogate(t[k])) continue; // never split a code point
                if (ids.TryGetValue(t[..k], out int left) && ids.TryGetValue(t[k..], out int right))
                    merges.Add((scores[id], id, left, right));
            }
        }
        merges.Sort((a, b) =>
        {
            int c = b.Score.CompareTo(a.Score);
            if (c != 0) return c;
            c = a.Token.CompareTo(b.Token);
            return c != 0 ? c : a.Left != b.Left ? a.Left.CompareTo(b.Left) : a.Right.CompareTo(b.Right);
        });
        return merges.ConvertAll(m => (tokens[m.Left], tokens[m.Right]));
    }
}
