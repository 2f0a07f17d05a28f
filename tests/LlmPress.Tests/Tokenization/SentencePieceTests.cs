using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Tokenization;

public class SentencePieceTests
{
    [Fact]
    public void GoldenTextsRoundTrip()
    {
        // Prepend("▁") + Replace(" " → "▁") is undone by Replace("▁" → " ") + Strip(1 leading space), and byte
        // fallback covers every character, so all golden texts (leading spaces and the empty text included) survive.
        Tokenizer spm = TestTokenizers.Get("spm-bpe-32k");
        using JsonDocument document = JsonDocument.Parse(File.ReadAllBytes(SharedData.Require("tokenizers", "golden.jsonl")));
        foreach (string text in document.RootElement.EnumerateArray().Select(e => e.GetProperty("text").GetString()!).Distinct())
            Assert.Equal(text, spm.Decode(spm.Encode(text)));
    }

    [Fact]
    public void RoundTripIsNotExactForTextContainingTheMetaspaceCharacter()
    {
        // The one lossy case: a literal "▁" in the input decodes as a space.
        Tokenizer spm = TestTokenizers.Get("spm-bpe-32k");
        Assert.Equal("a b", spm.Decode(spm.Encode("a▁b")));
    }

    [Fact]
    public void EmptyTextHasNoTokens()
    {
        // tokenizers' Prepend leaves empty text empty, so there is no lone "▁".
        Assert.Empty(TestTokenizers.Get("spm-bpe-32k").Encode(""));
        Assert.Empty(TestTokenizers.Stories260K().Encode(""));
    }

    [Fact]
    public void Stories260KEncodesOnceUponATime()
    {
        Tokenizer stories = TestTokenizers.Stories260K();
        int[] ids = stories.Encode("Once upon a time");
        Assert.Equal(["▁Once", "▁upon", "▁a", "▁time"], ids.Select(stories.GetTokenString));
        Assert.Equal("Once upon a time", stories.Decode(ids));
        Assert.Equal([1, .. ids], stories.Encode("Once upon a time", addSpecialTokens: true));
    }

    [Fact]
    public void Stories260KFallsBackToBytesForRareCharacters()
    {
        Tokenizer stories = TestTokenizers.Stories260K();
        int[] ids = stories.Encode("café naïve 😀");
        string[] tokens = ids.Select(stories.GetTokenString).ToArray();
        Assert.Contains("é", tokens); // one of the few non-ASCII characters in its 512-token vocabulary
        // ï = C3 AF and 😀 = F0 9F 98 80 are not in it.
        Assert.Contains("<0xC3>", tokens);
        Assert.Contains("<0xAF>", tokens);
        Assert.Equal(["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"], tokens[^4..]);
        Assert.All(ids, id => Assert.InRange(id, 0, 511));
        Assert.Equal("café naïve 😀", stories.Decode(ids));
    }

    [Fact]
    public void Stories260KReproducesTheGoldenLogitsInput()
    {
        // golden-logits.safetensors holds the 64 input ids of the reference forward pass: BOS + the start of a story.
        int[] golden = ReadInt32Tensor(SharedData.Require("models", "stories260K", "golden-logits.safetensors"), "input_ids");
        Tokenizer stories = TestTokenizers.Stories260K();
        string text = stories.Decode(golden, skipSpecialTokens: true);
        Assert.StartsWith("Once upon a time, there was a little girl named Lily.", text);
        Assert.Equal(golden, stories.Encode(text, addSpecialTokens: true));
    }

    [Fact]
    public void TinyStoriesRoundTrip()
    {
        Tokenizer stories = TestTokenizers.Stories260K();
        string text = File.ReadAllText(SharedData.Require("data", "tinystories", "tinystories-10k.txt"));
        int[] ids = stories.Encode(text);
        Assert.All(ids, id => Assert.InRange(id, 0, 511));
        Assert.Equal(text, stories.Decode(ids));
    }

    // Minimal safetensors reader for one I32 tensor: u64 header length, JSON header, then raw little-endian data.
    private static int[] ReadInt32Tensor(string path, string name)
    {
        byte[] file = File.ReadAllBytes(path);
        int headerLength = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(file));
        using JsonDocument header = JsonDocument.Parse(Encoding.UTF8.GetString(file, 8, headerLength));
        JsonElement tensor = header.RootElement.GetProperty(name);
        Assert.Equal("I32", tensor.GetProperty("dtype").GetString());
        int begin = tensor.GetProperty("data_offsets")[0].GetInt32(), end = tensor.GetProperty("data_offsets")[1].GetInt32();
        var values = new int[(end - begin) / 4];
        for (int i = 0; i < values.Length; i++)
            values[i] = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(8 + headerLength + begin + 4 * i));
        return values;
    }
}
