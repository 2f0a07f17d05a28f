using System.Text.Json.Nodes;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Tokenization;

public class TokenizerErrorTests
{
    private static InvalidDataException LoadFails(JsonObject json)
    {
        using var dir = new SyntheticTokenizer();
        string path = dir.Write(json);
        var e = Assert.Throws<InvalidDataException>(() => Tokenizer.Load(path));
        Assert.StartsWith(path + ": ", e.Message); // every message names the file
        return e;
    }

    private static JsonObject Minimal() => SyntheticTokenizer.Bpe(["a", "b", "ab"], ["a b"]);

    [Fact]
    public void MissingFileIsFileNotFound()
    {
        using var dir = new SyntheticTokenizer();
        var e = Assert.Throws<FileNotFoundException>(() => Tokenizer.Load(Path.Combine(dir.Directory, "nope.json")));
        Assert.Contains("nope.json", e.Message);
        var inDirectory = Assert.Throws<FileNotFoundException>(() => Tokenizer.Load(dir.Directory));
        Assert.Contains("tokenizer.json", inDirectory.Message);
    }

    [Fact]
    public void InvalidJsonNamesTheFile()
    {
        using var dir = new SyntheticTokenizer();
        string path = dir.WriteText("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,}");
        var e = Assert.Throws<InvalidDataException>(() => Tokenizer.Load(path));
        Assert.StartsWith(path + ": invalid JSON", e.Message);
        Assert.Throws<InvalidDataException>(() => Tokenizer.Load(dir.WriteText("tokenizer.json", "[1, 2]")));
    }

    [Theory]
    [InlineData("Unigram")]
    [InlineData("WordPiece")]
    [InlineData("WordLevel")]
    public void OtherModelTypesAreRejected(string type)
    {
        JsonObject json = Minimal();
        json["model"]!["type"] = type;
        Assert.EndsWith($"model.type '{type}' is not supported (supported: BPE)", LoadFails(json).Message);
    }

    [Fact]
    public void UnsupportedNormalizerIsRejected()
    {
        JsonObject json = Minimal();
        json["normalizer"] = new JsonObject
        {
            ["type"] = "Sequence",
            ["normalizers"] = new JsonArray(new JsonObject { ["type"] = "NFC" }, new JsonObject { ["type"] = "NFKC" }),
        };
        Assert.Contains("normalizer.normalizers[1].type 'NFKC' is not supported", LoadFails(json).Message);
    }

    [Fact]
    public void UnsupportedPreTokenizerIsRejected()
    {
        JsonObject json = Minimal();
        json["pre_tokenizer"] = new JsonObject { ["type"] = "Whitespace" };
        Assert.Contains("pre_tokenizer.type 'Whitespace' is not supported (supported: Sequence, Split, ByteLevel, Digits)",
            LoadFails(json).Message);
    }

    [Fact]
    public void UnsupportedDecoderIsRejected()
    {
        JsonObject json = Minimal();
        json["decoder"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁" };
        Assert.Contains("decoder.type 'Metaspace' is not supported", LoadFails(json).Message);
    }

    [Fact]
    public void UnsupportedPostProcessorIsRejected()
    {
        JsonObject json = Minimal();
        json["post_processor"] = new JsonObject { ["type"] = "Mystery" };
        Assert.Contains("post_processor.type 'Mystery' is not supported", LoadFails(json).Message);
    }

    [Fact]
    public void MergeOfUnknownTokenIsRejected()
    {
        JsonObject json = SyntheticTokenizer.Bpe(["a", "b", "ab"], ["a b", "a c"]);
        Assert.Contains("model.merges[1] refers to \"c\", which is not in model.vocab", LoadFails(json).Message);
    }

    [Fact]
    public void MalformedFieldsAreRejected()
    {
        JsonObject noVocab = Minimal();
        ((JsonObject)noVocab["model"]!).Remove("vocab");
        Assert.Contains("model.vocab is missing", LoadFails(noVocab).Message);

        JsonObject badSplit = Minimal();
        badSplit["pre_tokenizer"] = new JsonObject
        {
            ["type"] = "Split",
            ["pattern"] = new JsonObject { ["Regex"] = "\\s+" },
            ["behavior"] = "Sideways",
            ["invert"] = false,
        };
        Assert.Contains("pre_tokenizer.behavior 'Sideways' is not supported", LoadFails(badSplit).Message);

        JsonObject byteLevelNotLast = Minimal();
        byteLevelNotLast["pre_tokenizer"] = new JsonObject
        {
            ["type"] = "Sequence",
            ["pretokenizers"] = new JsonArray(
                new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["use_regex"] = true },
                new JsonObject { ["type"] = "Digits", ["individual_digits"] = true }),
        };
        Assert.Contains("pre_tokenizer.pretokenizers[1] follows a ByteLevel step", LoadFails(byteLevelNotLast).Message);
    }

    [Fact]
    public void InvalidTokenizerConfigIsRejected()
    {
        using var dir = new SyntheticTokenizer();
        dir.Write(Minimal());
        string config = dir.WriteText("tokenizer_config.json", "{\"bos_token\": 42}");
        var e = Assert.Throws<InvalidDataException>(() => Tokenizer.Load(dir.Directory));
        Assert.StartsWith(config + ": bos_token is a JSON Number", e.Message);
    }

    [Fact]
    public void TokenizerConfigAcceptsAddedTokenObjects()
    {
        using var dir = new SyntheticTokenizer();
        JsonObject json = Minimal();
        json["added_tokens"] = new JsonArray(
            new JsonObject { ["id"] = 3, ["content"] = "<s>", ["special"] = true },
            new JsonObject { ["id"] = 4, ["content"] = "</s>", ["special"] = true });
        dir.Write(json);
        dir.WriteText("tokenizer_config.json",
            "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\", \"add_bos_token\": true, \"chat_template\": \"{{ x }}\"}");
        Tokenizer tokenizer = Tokenizer.Load(dir.Directory);
        Assert.Equal(3, tokenizer.BosTokenId);
        Assert.Equal(4, tokenizer.EosTokenId);
        Assert.Equal("{{ x }}", tokenizer.ChatTemplate);
        // No post-processor: add_bos_token decides what addSpecialTokens adds.
        Assert.Equal([3, 2], tokenizer.Encode("ab", addSpecialTokens: true));
    }
}
