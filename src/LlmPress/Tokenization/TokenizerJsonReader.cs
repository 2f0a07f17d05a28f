using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace LlmPress.Tokenization;

/// <summary>
/// Reads a Hugging Face tokenizer.json (model type BPE) into a <see cref="TokenizerDefinition"/>. Every problem is an
/// <see cref="InvalidDataException"/> naming the file and the JSON field.
/// </summary>
internal static class TokenizerJsonReader
{
    private const char Metaspace = '\u2581';

    private static readonly JsonDocumentOptions s_options = new() { MaxDepth = 256 };

    /// <summary>Parses a JSON file, turning syntax errors into <see cref="InvalidDataException"/>.</summary>
    public static JsonDocument ParseFile(string path)
    {
        byte[] bytes = ReadWithoutBom(path);
        try
        {
            return JsonDocument.Parse(bytes, s_options);
        }
        catch (JsonException e)
        {
            TokenizerThrow.InvalidJson(path, e);
            return null;
        }
    }

    public static TokenizerDefinition Read(string path) => Read(ReadWithoutBom(path), path);

    /// <summary>Reads tokenizer.json content held in memory; <paramref name="path"/> names it in error messages.</summary>
    public static TokenizerDefinition Read(byte[] bytes, string path)
    {
        Layout layout;
        try
        {
            layout = Scan(bytes, path);
        }
        catch (JsonException e)
        {
            TokenizerThrow.InvalidJson(path, e);
            return null;
        }
        using JsonDocument rootDocument = layout.Root;
        using JsonDocument modelDocument = layout.Model;
        JsonElement root = rootDocument.RootElement;

        var reader = new Reader(path);
        (BpeModel model, bool respectsMetaspace) = reader.ReadModel(modelDocument.RootElement, bytes, layout.Vocab, layout.Merges);
        List<AddedToken> added = reader.ReadAddedTokens(root);
        return new TokenizerDefinition
        {
            Model = model,
            AddedTokens = added,
            Normalizer = reader.ReadNormalizer(Optional(root, "normalizer"), "normalizer"),
            PreTokenizer = reader.ReadPreTokenizer(Optional(root, "pre_tokenizer"), "pre_tokenizer"),
            Decoder = reader.ReadDecoder(Optional(root, "decoder"), "decoder"),
            Template = reader.ReadPostProcessor(Optional(root, "post_processor"), "post_processor"),
            MergesRespectMetaspace = respectsMetaspace,
        };
    }

    // Utf8JsonReader rejects a UTF-8 byte order mark, which some editors write.
    private static byte[] ReadWithoutBom(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        return bytes.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? bytes[3..] : bytes;
    }

    /// <summary>Where a tokenizer.json keeps what: the small sections as documents, the big ones as byte ranges.</summary>
    /// <param name="Root">Every top-level property except "model".</param>
    /// <param name="Model">Every property of "model" except "vocab" and "merges".</param>
    /// <param name="Vocab">Byte range of model.vocab, or default when absent.</param>
    /// <param name="Merges">Byte range of model.merges, or default when absent.</param>
    private sealed record Layout(JsonDocument Root, JsonDocument Model, Range Vocab, Range Merges);

    // One pass with Utf8JsonReader over the whole file (it also validates the syntax). model.vocab and model.merges
    // — 128k entries and 280k pairs for Llama-3 — are skipped here and read later by streaming their byte ranges,
    // which avoids building a DOM and a string per merge (measured: Llama-3's load about halved versus JsonDocument).
    private static Layout Scan(byte[] bytes, string path)
    {
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { MaxDepth = 256 });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            TokenizerThrow.InvalidData(path, $"the top level is a JSON {reader.TokenType}, expected an object");

        var rootBuffer = new ArrayBufferWriter<byte>();
        var modelBuffer = new ArrayBufferWriter<byte>();
        Range vocab = default, merges = default;
        bool sawModel = false;
        using (var rootWriter = new Utf8JsonWriter(rootBuffer))
        using (var modelWriter = new Utf8JsonWriter(modelBuffer))
        {
            rootWriter.WriteStartObject();
            modelWriter.WriteStartObject();
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (!reader.ValueTextEquals("model"u8))
                {
                    CopyProperty(ref reader, rootWriter);
                    continue;
                }
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                    TokenizerThrow.MissingField(path, "model", "an object");
                sawModel = true;
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    bool isVocab = reader.ValueTextEquals("vocab"u8);
                    if (isVocab || reader.ValueTextEquals("merges"u8))
                    {
                        reader.Read();
                        int start = (int)reader.TokenStartIndex;
                        reader.Skip();
                        Range range = start..(int)reader.BytesConsumed;
                        if (isVocab) vocab = range;
                        else merges = range;
                    }
                    else
                    {
                        CopyProperty(ref reader, modelWriter);
                    }
                }
            }
            while (reader.Read()) { } // the rest must still be well-formed
            rootWriter.WriteEndObject();
            modelWriter.WriteEndObject();
        }
        if (!sawModel) TokenizerThrow.MissingField(path, "model", "an object");
        return new Layout(JsonDocument.Parse(rootBuffer.WrittenMemory), JsonDocument.Parse(modelBuffer.WrittenMemory), vocab, merges);
    }

    private static void CopyProperty(ref Utf8JsonReader reader, Utf8JsonWriter writer)
    {
        string name = reader.GetString()!;
        reader.Read();
        using JsonDocument value = JsonDocument.ParseValue(ref reader);
        writer.WritePropertyName(name);
        value.RootElement.WriteTo(writer);
    }

    private static JsonElement? Optional(JsonElement parent, string name) =>
        parent.TryGetProperty(name, out JsonElement value) && value.ValueKind != JsonValueKind.Null ? value : null;

    private readonly struct Reader(string path)
    {
        public (BpeModel Model, bool RespectsMetaspace) ReadModel(JsonElement model, byte[] bytes, Range vocabRange, Range mergesRange)
        {
            string? type = OptionalString(model, "type", "model");
            // Very old files omit the tag; tokenizers then recognises BPE by its merges.
            if (type is null && mergesRange.Equals(default(Range)))
                TokenizerThrow.MissingField(path, "model.type", "a string");
            if (type is not null && type != "BPE")
                TokenizerThrow.Unsupported(path, "model.type", type, "BPE");

            // model.dropout is ignored: BPE-dropout is a training-time regulariser, and a tokenizer used for
            // inference and evaluation should be deterministic.
            var options = new BpeOptions
            {
                UnkToken = OptionalString(model, "unk_token", "model"),
                FuseUnk = OptionalBool(model, "fuse_unk", "model", false),
                ByteFallback = OptionalBool(model, "byte_fallback", "model", false),
                IgnoreMerges = OptionalBool(model, "ignore_merges", "model", false),
                ContinuingSubwordPrefix = OptionalString(model, "continuing_subword_prefix", "model"),
                EndOfWordSuffix = OptionalString(model, "end_of_word_suffix", "model"),
            };

            (VocabularyIndex vocab, string?[] idToToken) = ReadVocab(bytes, vocabRange);
            (BpeMergeTable merges, bool respectsMetaspace) = ReadMerges(bytes, mergesRange, vocab, options);
            respectsMetaspace &= vocab.TryGetId([Metaspace], out _)
                && !options.IgnoreMerges && options.ContinuingSubwordPrefix is null or "" && options.EndOfWordSuffix is null or "";
            return (new BpeModel(vocab, idToToken, merges, options), respectsMetaspace);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)] // one pass over 100k+ entries per load
        private (VocabularyIndex Index, string?[] IdToToken) ReadVocab(byte[] bytes, Range range)
        {
            var reader = new Utf8JsonReader(bytes.AsSpan(range));
            if (range.Equals(default(Range)) || !reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                TokenizerThrow.MissingField(path, "model.vocab", "an object of token → id");
            var entries = new List<(string, int)>((range.End.Value - range.Start.Value) / 12);
            int maxId = -1;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                string token = reader.GetString()!;
                reader.Read();
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out int id) || id < 0)
                {
                    TokenizerThrow.InvalidData(path,
                        $"model.vocab[\"{token}\"] is {Encoding.UTF8.GetString(reader.ValueSpan)}, expected a non-negative integer id");
                    return default;
                }
                entries.Add((token, id));
                maxId = Math.Max(maxId, id);
            }
            var idToToken = new string?[maxId + 1];
            foreach ((string token, int id) in entries) idToToken[id] = token;
            return (new VocabularyIndex(entries), idToToken);
        }

        // merges: ["a b", ...] (classic) or [["a", "b"], ...] (tokenizers ≥ 0.20, allows spaces in tokens).
        [MethodImpl(MethodImplOptions.AggressiveOptimization)] // one pass over 100k+ merges per load
        private (BpeMergeTable Table, bool RespectsMetaspace) ReadMerges(
            byte[] bytes, Range range, VocabularyIndex vocab, BpeOptions options)
        {
            if (range.Equals(default(Range))) return (new BpeMergeTable([]), true);
            var reader = new Utf8JsonReader(bytes.AsSpan(range));
            reader.Read();
            if (reader.TokenType == JsonTokenType.Null) return (new BpeMergeTable([]), true);
            if (reader.TokenType != JsonTokenType.StartArray)
                TokenizerThrow.MissingField(path, "model.merges", "an array");

            string? prefix = string.IsNullOrEmpty(options.ContinuingSubwordPrefix) ? null : options.ContinuingSubwordPrefix;
            var merges = new List<(int, int, int)>(vocab.Count * 2);
            bool respectsMetaspace = true;
            char[] left = ArrayPool<char>.Shared.Rent(256), right = ArrayPool<char>.Shared.Rent(256);
            char[] merged = ArrayPool<char>.Shared.Rent(512);
            try
            {
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    int index = merges.Count;
                    int leftLength, rightLength;
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        int length = ReadString(ref reader, ref left);
                        ReadOnlySpan<char> pair = left.AsSpan(0, length);
                        int space = pair.IndexOf(' ');
                        if (space <= 0 || space == length - 1 || pair[(space + 1)..].Contains(' '))
                            TokenizerThrow.InvalidData(path, $"model.merges[{index}] \"{pair}\" is not two tokens separated by one space");
                        rightLength = length - space - 1;
                        EnsureLength(ref right, rightLength);
                        pair[(space + 1)..].CopyTo(right);
                        leftLength = space;
                    }
                    else if (reader.TokenType == JsonTokenType.StartArray
                        && reader.Read() && reader.TokenType == JsonTokenType.String)
                    {
                        leftLength = ReadString(ref reader, ref left);
                        if (!reader.Read() || reader.TokenType != JsonTokenType.String)
                            BadMerge(index);
                        rightLength = ReadString(ref reader, ref right);
                        if (!reader.Read() || reader.TokenType != JsonTokenType.EndArray)
                            BadMerge(index);
                    }
                    else
                    {
                        BadMerge(index);
                        return default;
                    }

                    ReadOnlySpan<char> a = left.AsSpan(0, leftLength), b = right.AsSpan(0, rightLength);
                    ReadOnlySpan<char> bTail = prefix is not null && b.StartsWith(prefix, StringComparison.Ordinal) ? b[prefix.Length..] : b;
                    EnsureLength(ref merged, a.Length + bTail.Length);
                    a.CopyTo(merged);
                    bTail.CopyTo(merged.AsSpan(a.Length));
                    ReadOnlySpan<char> joined = merged.AsSpan(0, a.Length + bTail.Length);

                    if (!vocab.TryGetId(a, out int leftId)) MissingMergeToken(index, a);
                    if (!vocab.TryGetId(b, out int rightId)) MissingMergeToken(index, b);
                    if (!vocab.TryGetId(joined, out int mergedId)) MissingMergeToken(index, joined);
                    merges.Add((leftId, rightId, mergedId));

                    if (b.Length > 0 && b[0] == Metaspace && (a.Length == 0 || a[^1] != Metaspace))
                        respectsMetaspace = false;
                }
            }
            finally
            {
                ArrayPool<char>.Shared.Return(left);
                ArrayPool<char>.Shared.Return(right);
                ArrayPool<char>.Shared.Return(merged);
            }
            return (new BpeMergeTable(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(merges)), respectsMetaspace);
        }

        // Unescapes the current string token into buffer (grown as needed); returns its length in chars.
        private static int ReadString(ref Utf8JsonReader reader, ref char[] buffer)
        {
            EnsureLength(ref buffer, reader.ValueSpan.Length); // unescaped UTF-16 is never longer than the UTF-8 bytes
            return reader.CopyString(buffer);
        }

        private static void EnsureLength(ref char[] buffer, int length)
        {
            if (buffer.Length >= length) return;
            ArrayPool<char>.Shared.Return(buffer);
            buffer = ArrayPool<char>.Shared.Rent(length);
        }

        [DoesNotReturn]
        private void BadMerge(int index) =>
            TokenizerThrow.InvalidData(path, $"model.merges[{index}] is not \"a b\" or [\"a\", \"b\"]");

        [DoesNotReturn]
        private void MissingMergeToken(int index, ReadOnlySpan<char> token) =>
            TokenizerThrow.InvalidData(path, $"model.merges[{index}] refers to \"{token}\", which is not in model.vocab");

        public List<AddedToken> ReadAddedTokens(JsonElement root)
        {
            var tokens = new List<AddedToken>();
            if (!root.TryGetProperty("added_tokens", out JsonElement array) || array.ValueKind == JsonValueKind.Null)
                return tokens;
            if (array.ValueKind != JsonValueKind.Array)
                TokenizerThrow.MissingField(path, "added_tokens", "an array");
            int index = 0;
            foreach (JsonElement entry in array.EnumerateArray())
            {
                string field = $"added_tokens[{index++}]";
                if (entry.ValueKind != JsonValueKind.Object)
                    TokenizerThrow.MissingField(path, field, "an object");
                int id = -1;
                if (!entry.TryGetProperty("id", out JsonElement idElement) || !idElement.TryGetInt32(out id) || id < 0)
                    TokenizerThrow.MissingField(path, field + ".id", "a non-negative integer");
                string? content = OptionalString(entry, "content", field);
                if (string.IsNullOrEmpty(content))
                    TokenizerThrow.MissingField(path, field + ".content", "a non-empty string");
                bool special = OptionalBool(entry, "special", field, false);
                tokens.Add(new AddedToken(
                    id,
                    content,
                    special,
                    OptionalBool(entry, "single_word", field, false),
                    OptionalBool(entry, "lstrip", field, false),
                    OptionalBool(entry, "rstrip", field, false),
                    // tokenizers' default: special tokens are matched in the raw text, others after normalization.
                    OptionalBool(entry, "normalized", field, !special)));
            }
            return tokens;
        }

        public Normalizer? ReadNormalizer(JsonElement? element, string field)
        {
            if (element is not JsonElement e) return null;
            string type = RequiredType(e, field);
            switch (type)
            {
                case "Sequence":
                {
                    JsonElement list = RequiredArray(e, "normalizers", field);
                    var steps = new List<Normalizer>();
                    int i = 0;
                    foreach (JsonElement step in list.EnumerateArray())
                    {
                        Normalizer? n = ReadNormalizer(step.ValueKind == JsonValueKind.Null ? null : step, $"{field}.normalizers[{i++}]");
                        if (n is not null) steps.Add(n);
                    }
                    return new SequenceNormalizer([.. steps]);
                }
                case "NFC":
                    return new UnicodeNormalizer(compose: true);
                case "NFD":
                    return new UnicodeNormalizer(compose: false);
                case "Prepend":
                    return new PrependNormalizer(RequiredString(e, "prepend", field));
                case "Replace":
                    return ReadReplace(e, field);
                default:
                    TokenizerThrow.Unsupported(path, field + ".type", type, "Sequence, NFC, NFD, Prepend, Replace");
                    return null;
            }
        }

        public PreTokenizer? ReadPreTokenizer(JsonElement? element, string field)
        {
            if (element is not JsonElement e) return null;
            string type = RequiredType(e, field);
            switch (type)
            {
                case "Sequence":
                {
                    JsonElement list = RequiredArray(e, "pretokenizers", field);
                    var steps = new List<PreTokenizer>();
                    int i = 0;
                    foreach (JsonElement step in list.EnumerateArray())
                    {
                        string stepField = $"{field}.pretokenizers[{i++}]";
                        if (steps.Count > 0 && steps[^1].IsByteLevel)
                            TokenizerThrow.InvalidData(path, $"{stepField} follows a ByteLevel step; ByteLevel must be the last pre-tokenizer");
                        PreTokenizer? p = ReadPreTokenizer(step.ValueKind == JsonValueKind.Null ? null : step, stepField);
                        if (p is not null) steps.Add(p);
                    }
                    return new SequencePreTokenizer([.. steps]);
                }
                case "Split":
                {
                    SplitMatcher matcher = ReadPattern(e, field, forSplit: true).Matcher!;
                    string behavior = RequiredString(e, "behavior", field);
                    if (!Enum.TryParse(behavior, ignoreCase: false, out SplitBehavior parsed) || !Enum.IsDefined(parsed))
                        TokenizerThrow.Unsupported(path, field + ".behavior", behavior,
                            "Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
                    return new SplitPreTokenizer(matcher, parsed, OptionalBool(e, "invert", field, false));
                }
                case "ByteLevel":
                    return new ByteLevelPreTokenizer(
                        OptionalBool(e, "add_prefix_space", field, true),
                        OptionalBool(e, "use_regex", field, true));
                case "Digits":
                    return new DigitsPreTokenizer(OptionalBool(e, "individual_digits", field, false));
                default:
                    TokenizerThrow.Unsupported(path, field + ".type", type, "Sequence, Split, ByteLevel, Digits");
                    return null;
            }
        }

        public TokenDecoder? ReadDecoder(JsonElement? element, string field)
        {
            if (element is not JsonElement e) return null;
            string type = RequiredType(e, field);
            switch (type)
            {
                case "Sequence":
                {
                    JsonElement list = RequiredArray(e, "decoders", field);
                    var steps = new List<TokenDecoder>();
                    int i = 0;
                    foreach (JsonElement step in list.EnumerateArray())
                    {
                        TokenDecoder? d = ReadDecoder(step.ValueKind == JsonValueKind.Null ? null : step, $"{field}.decoders[{i++}]");
                        if (d is not null) steps.Add(d);
                    }
                    return new SequenceTokenDecoder([.. steps]);
                }
                case "ByteLevel":
                    return new ByteLevelTokenDecoder();
                case "Replace":
                    return new ReplaceTokenDecoder(ReadReplace(e, field));
                case "ByteFallback":
                    return new ByteFallbackTokenDecoder();
                case "Fuse":
                    return new FuseTokenDecoder();
                case "Strip":
                {
                    string content = RequiredString(e, "content", field);
                    if (content.Length != 1)
                        TokenizerThrow.InvalidData(path, $"{field}.content \"{content}\" must be one character");
                    return new StripTokenDecoder(content[0], OptionalInt(e, "start", field, 0), OptionalInt(e, "stop", field, 0));
                }
                default:
                    TokenizerThrow.Unsupported(path, field + ".type", type, "Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip");
                    return null;
            }
        }

        public SpecialTokenTemplate ReadPostProcessor(JsonElement? element, string field)
        {
            if (element is not JsonElement e) return SpecialTokenTemplate.Empty;
            string type = RequiredType(e, field);
            switch (type)
            {
                case "ByteLevel":
                    return SpecialTokenTemplate.Empty; // only trims offsets, which LlmPress does not report
                case "Sequence":
                {
                    SpecialTokenTemplate result = SpecialTokenTemplate.Empty;
                    int i = 0;
                    foreach (JsonElement step in RequiredArray(e, "processors", field).EnumerateArray())
                        result = ReadPostProcessor(step, $"{field}.processors[{i++}]").Wrap(result);
                    return result;
                }
                case "TemplateProcessing":
                    return ReadTemplate(e, field);
                case "BertProcessing":
                case "RobertaProcessing":
                {
                    int cls = ReadTokenPair(e, "cls", field);
                    int sep = ReadTokenPair(e, "sep", field);
                    return new SpecialTokenTemplate([cls], [sep]);
                }
                default:
                    TokenizerThrow.Unsupported(path, field + ".type", type,
                        "TemplateProcessing, ByteLevel, Sequence, BertProcessing, RobertaProcessing");
                    return null;
            }
        }

        // "single": [{"SpecialToken": {"id": "<s>", ...}}, {"Sequence": {"id": "A", ...}}]; ids from "special_tokens".
        private SpecialTokenTemplate ReadTemplate(JsonElement e, string field)
        {
            JsonElement single = RequiredArray(e, "single", field);
            JsonElement specials = e.TryGetProperty("special_tokens", out JsonElement s) && s.ValueKind == JsonValueKind.Object
                ? s : default;
            var prefix = new List<int>();
            var suffix = new List<int>();
            bool seenSequence = false;
            int i = 0;
            foreach (JsonElement item in single.EnumerateArray())
            {
                string itemField = $"{field}.single[{i++}]";
                if (item.TryGetProperty("Sequence", out JsonElement sequence))
                {
                    string id = RequiredString(sequence, "id", itemField + ".Sequence");
                    if (id != "A" || seenSequence)
                        TokenizerThrow.InvalidData(path, $"{itemField}.Sequence.id \"{id}\": a single-sequence template must contain $A exactly once");
                    seenSequence = true;
                }
                else if (item.TryGetProperty("SpecialToken", out JsonElement special))
                {
                    string name = RequiredString(special, "id", itemField + ".SpecialToken");
                    JsonElement entry = default;
                    if (specials.ValueKind != JsonValueKind.Object || !specials.TryGetProperty(name, out entry))
                        TokenizerThrow.InvalidData(path, $"{itemField} uses special token \"{name}\", which {field}.special_tokens does not define");
                    foreach (JsonElement id in RequiredArray(entry, "ids", $"{field}.special_tokens[\"{name}\"]").EnumerateArray())
                    {
                        if (!id.TryGetInt32(out int value) || value < 0)
                            TokenizerThrow.InvalidData(path, $"{field}.special_tokens[\"{name}\"].ids contains {id.GetRawText()}, expected token ids");
                        (seenSequence ? suffix : prefix).Add(value);
                    }
                }
                else
                {
                    TokenizerThrow.InvalidData(path, $"{itemField} is neither a SpecialToken nor a Sequence");
                }
            }
            if (!seenSequence)
                TokenizerThrow.InvalidData(path, $"{field}.single has no Sequence $A");
            return new SpecialTokenTemplate([.. prefix], [.. suffix]);
        }

        // Bert/Roberta: "cls": ["[CLS]", 101].
        private int ReadTokenPair(JsonElement e, string name, string field)
        {
            if (!e.TryGetProperty(name, out JsonElement pair) || pair.ValueKind != JsonValueKind.Array
                || pair.GetArrayLength() != 2 || !pair[1].TryGetInt32(out int id) || id < 0)
                TokenizerThrow.MissingField(path, $"{field}.{name}", "a [token, id] pair");
            return pair[1].GetInt32();
        }

        private (SplitMatcher? Matcher, ReplaceNormalizer? Replace) ReadPattern(JsonElement e, string field, bool forSplit)
        {
            if (!e.TryGetProperty("pattern", out JsonElement pattern) || pattern.ValueKind != JsonValueKind.Object)
                TokenizerThrow.MissingField(path, field + ".pattern", "an object {\"String\": ...} or {\"Regex\": ...}");
            if (pattern.TryGetProperty("String", out JsonElement literal) && literal.ValueKind == JsonValueKind.String)
            {
                string text = literal.GetString()!;
                return forSplit
                    ? (new LiteralSplitMatcher(text), null)
                    : (null, ReplaceNormalizer.ForLiteral(text, RequiredString(e, "content", field)));
            }
            if (pattern.TryGetProperty("Regex", out JsonElement regex) && regex.ValueKind == JsonValueKind.String)
            {
                string text = regex.GetString()!;
                try
                {
                    return forSplit
                        ? (KnownPatternMatcher.Create(text) ?? (SplitMatcher)new RegexSplitMatcher(text), null)
                        : (null, ReplaceNormalizer.ForRegex(text, RequiredString(e, "content", field)));
                }
                catch (ArgumentException ex)
                {
                    TokenizerThrow.InvalidData(path, $"{field}.pattern.Regex cannot be compiled by .NET: {ex.Message}");
                }
            }
            TokenizerThrow.MissingField(path, field + ".pattern", "an object {\"String\": ...} or {\"Regex\": ...}");
            return default;
        }

        private ReplaceNormalizer ReadReplace(JsonElement e, string field) => ReadPattern(e, field, forSplit: false).Replace!;

        private string RequiredType(JsonElement e, string field)
        {
            if (e.ValueKind != JsonValueKind.Object)
                TokenizerThrow.MissingField(path, field, "an object");
            if (!e.TryGetProperty("type", out JsonElement type) || type.ValueKind != JsonValueKind.String)
                TokenizerThrow.MissingField(path, field + ".type", "a string");
            return type.GetString()!;
        }

        private JsonElement RequiredArray(JsonElement e, string name, string field)
        {
            JsonElement value = default;
            if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(name, out value) || value.ValueKind != JsonValueKind.Array)
                TokenizerThrow.MissingField(path, $"{field}.{name}", "an array");
            return value;
        }

        private string RequiredString(JsonElement e, string name, string field)
        {
            JsonElement value = default;
            if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(name, out value) || value.ValueKind != JsonValueKind.String)
                TokenizerThrow.MissingField(path, $"{field}.{name}", "a string");
            return value.GetString()!;
        }

        private string? OptionalString(JsonElement e, string name, string field)
        {
            if (!e.TryGetProperty(name, out JsonElement value) || value.ValueKind == JsonValueKind.Null) return null;
            if (value.ValueKind != JsonValueKind.String)
                TokenizerThrow.InvalidData(path, $"{field}.{name} is a JSON {value.ValueKind}, expected a string");
            return value.GetString();
        }

        private bool OptionalBool(JsonElement e, string name, string field, bool defaultValue)
        {
            if (!e.TryGetProperty(name, out JsonElement value) || value.ValueKind == JsonValueKind.Null) return defaultValue;
            if (value.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                TokenizerThrow.InvalidData(path, $"{field}.{name} is a JSON {value.ValueKind}, expected true or false");
            return value.GetBoolean();
        }

        private int OptionalInt(JsonElement e, string name, string field, int defaultValue)
        {
            if (!e.TryGetProperty(name, out JsonElement value) || value.ValueKind == JsonValueKind.Null) return defaultValue;
            if (!value.TryGetInt32(out int result) || result < 0)
                TokenizerThrow.InvalidData(path, $"{field}.{name} is {value.GetRawText()}, expected a non-negative integer");
            return result;
        }
    }
}
