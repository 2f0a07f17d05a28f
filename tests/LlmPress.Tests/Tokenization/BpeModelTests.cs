using System.Text.Json.Nodes;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Tokenization;

public class BpeModelTests
{
    // The example of tokenizers' own BPE tests: 'unrelated' merges all the way to one token.
    private static readonly string[] s_vocab =
        ["u", "n", "r", "e", "l", "a", "t", "d", "re", "at", "ed", "un", "ated", "rel", "related", "unrelated"];

    private static readonly string[] s_merges = ["r e", "a t", "e d", "u n", "at ed", "re l", "rel ated", "un related"];

    [Fact]
    public void MergesInRankOrder()
    {
        using var dir = new SyntheticTokenizer();
        Tokenizer tokenizer = Tokenizer.Load(dir.Write(SyntheticTokenizer.Bpe(s_vocab, s_merges)));
        Assert.Equal([15], tokenizer.Encode("unrelated"));
        Assert.Equal([13, 9], tokenizer.Encode("relat")); // "rel" + "at"
        Assert.Equal("unrelated", tokenizer.Decode([15]));
    }

    [Fact]
    public void MergesMayBeGivenAsPairs()
    {
        using var dir = new SyntheticTokenizer();
        JsonObject json = SyntheticTokenizer.Bpe(s_vocab, []);
        json["model"]!["merges"] = new JsonArray(s_merges
            .Select(m => (JsonNode?)new JsonArray(m.Split(' ').Select(x => (JsonNode?)JsonValue.Create(x)).ToArray()))
            .ToArray());
        Tokenizer tokenizer = Tokenizer.Load(dir.Write(json));
        Assert.Equal([15], tokenizer.Encode("unrelated"));
    }

    [Fact]
    public void UnknownCharactersAreFusedOnlyWithFuseUnk()
    {
        string[] vocab = ["<unk>", "a", "b"];
        using var dir = new SyntheticTokenizer();
        Tokenizer separate = Tokenizer.Load(dir.Write(SyntheticTokenizer.Bpe(vocab, [], m => m["unk_token"] = "<unk>")));
        Assert.Equal([1, 0, 0, 2], separate.Encode("accb"));
        Tokenizer fused = Tokenizer.Load(dir.Write(SyntheticTokenizer.Bpe(vocab, [], m =>
        {
            m["unk_token"] = "<unk>";
            m["fuse_unk"] = true;
        })));
        Assert.Equal([1, 0, 2], fused.Encode("accb"));
        // Without an unknown token, unknown characters are dropped (as tokenizers does).
        Tokenizer dropping = Tokenizer.Load(dir.Write(SyntheticTokenizer.Bpe(vocab, [])));
        Assert.Equal([1, 2], dropping.Encode("accb"));
    }

    [Fact]
    public void ByteFallbackSpellsUnknownCharactersAsUtf8Bytes()
    {
        var vocab = new List<string> { "<unk>", "a" };
        for (int b = 0; b < 256; b++) vocab.Add($"<0x{b:X2}>");
        using var dir = new SyntheticTokenizer();
        JsonObject json = SyntheticTokenizer.Bpe(vocab, [], m =>
        {
            m["unk_token"] = "<unk>";
            m["byte_fallback"] = true;
        });
        json["decoder"] = new JsonObject
        {
            ["type"] = "Sequence",
            ["decoders"] = new JsonArray(new JsonObject { ["type"] = "ByteFallback" }, new JsonObject { ["type"] = "Fuse" }),
        };
        Tokenizer tokenizer = Tokenizer.Load(dir.Write(json));
        // "é" is C3 A9; ids are 2 + byte.
        Assert.Equal([1, 2 + 0xC3, 2 + 0xA9, 1], tokenizer.Encode("aéa"));
        Assert.Equal("aéa", tokenizer.Decode(tokenizer.Encode("aéa")));
        // A lone continuation byte cannot be decoded: one U+FFFD per byte, as tokenizers' ByteFallback does.
        Assert.Equal("a\uFFFD\uFFFD", tokenizer.Decode([1, 2 + 0xC3, 2 + 0xC3]));
    }

    [Fact]
    public void HeapAndArrayMergesAgreeOnLongWords()
    {
        // Short words use an array scan, long ones a heap; a SentencePiece text without "▁" splitting is one word.
        Tokenizer spm = TestTokenizers.Get("spm-bpe-32k");
        string text = File.ReadAllText(SharedData.Require("data", "tinystories", "tinystories-10k.txt"))[..20000];
        string normalized = spm.Normalize(text);
        int[] heap = spm.Model.EncodeWithHeapForTesting(normalized);
        Assert.Equal(heap, spm.Encode(text));

        foreach (string word in normalized.Split('▁', StringSplitOptions.RemoveEmptyEntries).Take(2000))
        {
            var arrayMerge = new List<int>();
            spm.Model.Encode("▁" + word, arrayMerge);
            Assert.Equal(spm.Model.EncodeWithHeapForTesting("▁" + word), arrayMerge.ToArray());
        }
    }

    [Theory]
    [InlineData("spm-bpe-32k", "wikitext-2-raw", "wiki.test.raw")]
    [InlineData("stories260K", "tinystories", "tinystories-10k.txt")]
    public void MetaspaceWordSplittingMatchesWholeTextMerging(string name, string dataFolder, string dataFile)
    {
        // Cutting before each "▁" is only enabled when the merges show it cannot change the result; check that it
        // is enabled for these models and that whole-text merging (what tokenizers does) agrees on real text.
        Tokenizer tokenizer = name == "stories260K" ? TestTokenizers.Stories260K() : TestTokenizers.Get(name);
        Assert.True(tokenizer.SplitsBeforeMetaspace);
        string text = File.ReadAllText(SharedData.Require("data", dataFolder, dataFile))[..100_000];
        Assert.Equal(tokenizer.Model.EncodeWithHeapForTesting(tokenizer.Normalize(text)), tokenizer.Encode(text));
    }

    [Fact]
    public void IgnoreMergesEmitsWholeVocabularyWords()
    {
        // With merges a+b and ab+c only, "abc" would need both; with ignore_merges a word in the vocabulary wins.
        string[] vocab = ["a", "b", "c", "ab", "abc", "bc"];
        using var dir = new SyntheticTokenizer();
        Tokenizer merging = Tokenizer.Load(dir.Write(SyntheticTokenizer.Bpe(vocab, ["b c"])));
        Assert.Equal([0, 5], merging.Encode("abc"));
        Tokenizer ignoring = Tokenizer.Load(dir.Write(SyntheticTokenizer.Bpe(vocab, ["b c"], m => m["ignore_merges"] = true)));
        Assert.Equal([4], ignoring.Encode("abc"));
    }
}
