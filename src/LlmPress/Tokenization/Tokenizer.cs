namespace LlmPress.Tokenization;

/// <summary>
/// A Hugging Face tokenizer (tokenizer.json with a BPE model): byte-level BPE as in Llama-3, Qwen and SmolLM2, and
/// SentencePiece-style BPE with byte fallback as in Llama-2/Mistral. Produces the same ids as Hugging Face
/// tokenizers. Instances are immutable and thread-safe.
/// </summary>
/// <remarks>
/// Encoding effectively computes, like tokenizers' <c>encode</c>: split the text on added tokens (longest match
/// first), then for each remaining piece normalize → pre-tokenize → BPE each pre-token; with
/// <c>addSpecialTokens</c>, wrap the result per the post-processor.
/// </remarks>
public sealed partial class Tokenizer
{
    private const string TokenizerFileName = "tokenizer.json";
    private const string ConfigFileName = "tokenizer_config.json";

    private static readonly string[] s_wellKnownBos = ["<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"];
    private static readonly string[] s_wellKnownEos = ["</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>"];

    private readonly BpeModel _model;
    private readonly Normalizer? _normalizer;
    private readonly PreTokenizer? _preTokenizer;
    private readonly bool _byteLevel;
    private readonly bool _splitBeforeMetaspace;
    private readonly TokenDecoder? _decoder;
    private readonly AddedTokenSplitter _rawSplitter;         // added tokens matched in the input text
    private readonly AddedTokenSplitter _normalizedSplitter;  // added tokens matched after normalization
    private readonly Dictionary<string, int> _addedIds;
    private readonly string?[] _tokens;                       // [VocabSize]: token string, null for unused ids
    private readonly bool[] _special;                         // [VocabSize]
    private readonly SpecialTokenTemplate _template;

    private Tokenizer(TokenizerDefinition definition, TokenizerConfig? config)
    {
        _model = definition.Model;
        _normalizer = definition.Normalizer;
        _preTokenizer = definition.PreTokenizer;
        _byteLevel = _preTokenizer?.IsByteLevel ?? false;
        // SentencePiece-style models have no pre-tokenizer, so a whole text is one BPE word. When no merge can join
        // something onto a following "▁", cutting the text before each "▁" that follows another character gives
        // the same tokens and lets the word cache work (checked from the merges at load time).
        _splitBeforeMetaspace = _preTokenizer is null && definition.MergesRespectMetaspace;
        _decoder = definition.Decoder;

        int vocabSize = _model.IdCount;
        foreach (AddedToken token in definition.AddedTokens) vocabSize = Math.Max(vocabSize, token.Id + 1);
        _tokens = new string?[vocabSize];
        _special = new bool[vocabSize];
        for (int id = 0; id < _model.IdCount; id++) _tokens[id] = _model.GetToken(id);
        _addedIds = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (AddedToken token in definition.AddedTokens)
        {
            _tokens[token.Id] = token.Content;
            _special[token.Id] |= token.Special;
            _addedIds[token.Content] = token.Id;
        }

        _rawSplitter = new AddedTokenSplitter(definition.AddedTokens
            .Where(t => !t.Normalized)
            .Select(t => (t.Content, t)));
        _normalizedSplitter = new AddedTokenSplitter(definition.AddedTokens
            .Where(t => t.Normalized)
            .Select(t => (_normalizer?.Normalize(t.Content) ?? t.Content, t)));

        BosTokenId = ResolveSpecial(config?.HasBosToken == true, config?.BosToken, s_wellKnownBos);
        EosTokenId = ResolveSpecial(config?.HasEosToken == true, config?.EosToken, s_wellKnownEos);
        ChatTemplate = config?.ChatTemplate;
        AddBosToken = config?.AddBosToken;

        _template = definition.Template;
        if (_template.IsEmpty)
        {
            // No post-processor adds tokens; transformers' Llama tokenizers then follow add_bos_token/add_eos_token.
            int[] prefix = config?.AddBosToken == true && BosTokenId is int bos ? [bos] : [];
            int[] suffix = config?.AddEosToken == true && EosTokenId is int eos ? [eos] : [];
            _template = new SpecialTokenTemplate(prefix, suffix);
        }
    }

    /// <summary>Maximum token id + 1, counting the vocabulary and the added tokens.</summary>
    public int VocabSize => _tokens.Length;

    /// <summary>
    /// The beginning-of-sequence token: tokenizer_config.json's bos_token when that file exists and names one
    /// (null when it says null), else the one well-known BOS added token ("&lt;s&gt;", "&lt;|begin_of_text|&gt;",
    /// "&lt;bos&gt;", "&lt;|startoftext|&gt;") present, else null.
    /// </summary>
    public int? BosTokenId { get; }

    /// <summary>The end-of-sequence token, resolved like <see cref="BosTokenId"/> ("&lt;/s&gt;", "&lt;|end_of_text|&gt;", "&lt;eos&gt;", "&lt;|endoftext|&gt;").</summary>
    public int? EosTokenId { get; }

    /// <summary>tokenizer_config.json's chat_template (a Jinja template, unrendered), or null.</summary>
    public string? ChatTemplate { get; }

    /// <summary>tokenizer_config.json's add_bos_token, or null when absent.</summary>
    public bool? AddBosToken { get; }

    /// <summary>Loads a tokenizer from a tokenizer.json file, or from a directory containing one.</summary>
    /// <remarks>tokenizer_config.json beside it, when present, supplies the BOS/EOS tokens and the chat template.</remarks>
    /// <exception cref="FileNotFoundException">No tokenizer.json at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">
    /// The file is not valid JSON, is not a BPE tokenizer, or uses a normalizer, pre-tokenizer, decoder or
    /// post-processor this implementation does not support; the message names the file and the field.
    /// </exception>
    public static Tokenizer Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string file = Directory.Exists(path) ? Path.Combine(path, TokenizerFileName) : path;
        if (!File.Exists(file))
            TokenizerThrow.FileNotFound(file, Directory.Exists(path)
                ? $"The directory has no {TokenizerFileName}; LlmPress reads Hugging Face fast-tokenizer files."
                : $"Pass a {TokenizerFileName} file or the directory that contains it.");

        TokenizerDefinition definition = TokenizerJsonReader.Read(file);
        string configFile = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, ConfigFileName);
        TokenizerConfig? config = File.Exists(configFile) ? TokenizerConfig.Load(configFile) : null;
        return new Tokenizer(definition, config);
    }

    /// <summary>A tokenizer from a definition built elsewhere (e.g. from GGUF metadata, see GgufTokenizer).</summary>
    internal static Tokenizer Create(TokenizerDefinition definition, TokenizerConfig? config) => new(definition, config);

    /// <summary>Looks up a token string (an added token's content or a vocabulary entry).</summary>
    public bool TryGetTokenId(string token, out int id)
    {
        ArgumentNullException.ThrowIfNull(token);
        return _addedIds.TryGetValue(token, out id) || _model.TryGetId(token, out id);
    }

    /// <summary>The raw string of a token as the vocabulary spells it (e.g. "Ġthe", "▁the", "&lt;0x0A&gt;").</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="id"/> is not a token of this tokenizer.</exception>
    public string GetTokenString(int id)
    {
        if ((uint)id >= (uint)_tokens.Length || _tokens[id] is null) TokenizerThrow.TokenIdOutOfRange(id, VocabSize);
        return _tokens[id]!;
    }

    /// <summary>True for added tokens marked special (skipped when decoding with skipSpecialTokens).</summary>
    public bool IsSpecial(int id) => (uint)id < (uint)_special.Length && _special[id];

    /// <summary>Creates a decoder that turns generated ids into text incrementally.</summary>
    public TokenStreamDecoder CreateStreamDecoder(bool skipSpecialTokens = true) => new(this, skipSpecialTokens);

    /// <summary>The BPE model (for tests comparing merge strategies).</summary>
    internal BpeModel Model => _model;

    /// <summary>True when SentencePiece-style text is cut into words before each "▁" (see the constructor).</summary>
    internal bool SplitsBeforeMetaspace => _splitBeforeMetaspace;

    /// <summary>Applies the normalizer alone (identity when there is none).</summary>
    internal string Normalize(string text) => _normalizer?.Normalize(text) ?? text;

    private int? ResolveSpecial(bool configured, string? configuredName, string[] wellKnown)
    {
        if (configured) return configuredName is not null && TryGetTokenId(configuredName, out int id) ? id : null;
        int? found = null;
        foreach (string name in wellKnown)
        {
            if (!_addedIds.TryGetValue(name, out int id)) continue;
            if (found is not null) return null; // ambiguous
            found = id;
        }
        return found;
    }
}
