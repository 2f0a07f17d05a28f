using System.Buffers.Binary;
using System.Text;
using LlmPress.IO;
using static LlmPress.Tests.IO.SafeTensorsBytes;

namespace LlmPress.Tests.IO;

/// <summary>Every rule of the safetensors format, each broken by a hand-built file.</summary>
public sealed class SafeTensorsValidationTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>Writes the bytes, expects Open to reject them, and checks the message is one line starting with the path.</summary>
    private InvalidDataException Reject(byte[] bytes, params string[] fragments)
    {
        string path = _temp.File("model.safetensors");
        File.WriteAllBytes(path, bytes);
        var error = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.StartsWith(path + ": ", error.Message);
        Assert.DoesNotContain('\n', error.Message);
        foreach (string fragment in fragments) Assert.Contains(fragment, error.Message);
        return error;
    }

    private SafeTensorsFile Accept(byte[] bytes)
    {
        string path = _temp.File("model.safetensors");
        File.WriteAllBytes(path, bytes);
        return SafeTensorsFile.Open(path);
    }

    // ---- the 8-byte prefix ----

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    public void FileShorterThanPrefixIsRejected(int length) =>
        Reject(new byte[length], $"file is {length} bytes, shorter than the 8-byte header-length prefix");

    [Fact]
    public void HeaderLengthAboveLimitIsRejected()
    {
        var bytes = Build("{}", 0);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 100_000_001);
        Reject(bytes, "header length 100000001", "limit of 100000000");
    }

    [Fact]
    public void HugeHeaderLengthIsRejected()
    {
        var bytes = Build("{}", 0);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, ulong.MaxValue);
        Reject(bytes, $"header length {ulong.MaxValue}");
    }

    [Fact]
    public void HeaderLengthPastEndOfFileIsRejected()
    {
        var bytes = Build("{}", 0); // 16 bytes: prefix + 8-byte header
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 9);
        Reject(bytes, "header length 9", "exceeds the 8 bytes after the prefix", "truncated");
    }

    // ---- the header text ----

    [Fact]
    public void HeaderThatIsNotUtf8IsRejected()
    {
        byte[] header = [.. "{\"a\xff\":1}"u8];
        header[3] = 0xFF;
        Reject(Build(header, []), "not valid UTF-8", "offset 11");
    }

    [Theory]
    [InlineData("{\"a\":")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",}}")]
    [InlineData("not json at all")]
    [InlineData("{} {}")]
    [InlineData("{/*comment*/}")]
    [InlineData("")]
    public void HeaderThatIsNotJsonIsRejected(string header) => Reject(Build(header, 0), "is not valid JSON");

    [Theory]
    [InlineData("[]", "array")]
    [InlineData("\"text\"", "string")]
    [InlineData("42", "number")]
    [InlineData("null", "null")]
    public void HeaderThatIsNotAnObjectIsRejected(string header, string kind) =>
        Reject(Build(header, 0), $"header is a JSON {kind}, expected an object");

    [Fact]
    public void DeeplyNestedHeaderIsRejected() =>
        Reject(Build("{\"a\":" + new string('[', 100) + new string(']', 100) + "}", 0), "is not valid JSON");

    // ---- entries ----

    [Fact]
    public void DuplicateTensorNameIsRejected()
    {
        string header = "{" + Entry("w", "U8", "[4]", 0, 4) + "," + Entry("w", "U8", "[4]", 4, 8) + "}";
        Reject(Build(header, 8), "header lists 'w' twice");
    }

    [Fact]
    public void DuplicateMetadataIsRejected() =>
        Reject(Build("{\"__metadata__\":{},\"__metadata__\":{}}", 0), "'__metadata__' twice");

    [Fact]
    public void DuplicateMetadataKeyIsRejected() =>
        Reject(Build("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0), "'__metadata__.k' twice");

    [Theory]
    [InlineData("[]", "array")]
    [InlineData("\"pt\"", "string")]
    public void MetadataThatIsNotAnObjectIsRejected(string value, string kind) =>
        Reject(Build("{\"__metadata__\":" + value + "}", 0), $"'__metadata__' is a JSON {kind}");

    [Theory]
    [InlineData("1", "number")]
    [InlineData("{}", "object")]
    [InlineData("null", "null")]
    [InlineData("true", "boolean")]
    public void MetadataValueThatIsNotAStringIsRejected(string value, string kind) =>
        Reject(Build("{\"__metadata__\":{\"format\":" + value + "}}", 0), $"'__metadata__' entry 'format' is a JSON {kind}");

    [Fact]
    public void NullMetadataMeansNone()
    {
        using var file = Accept(Build("{\"__metadata__\":null}", 0));
        Assert.Empty(file.Metadata);
    }

    [Theory]
    [InlineData("5", "number")]
    [InlineData("[0,4]", "array")]
    [InlineData("null", "null")]
    public void EntryThatIsNotAnObjectIsRejected(string value, string kind) =>
        Reject(Build("{\"w\":" + value + "}", 0), $"tensor 'w' is a JSON {kind}");

    [Theory]
    [InlineData("dtype")]
    [InlineData("shape")]
    [InlineData("data_offsets")]
    public void MissingFieldIsRejected(string field)
    {
        var fields = new Dictionary<string, string> { ["dtype"] = "\"U8\"", ["shape"] = "[4]", ["data_offsets"] = "[0,4]" };
        fields.Remove(field);
        string header = "{\"w\":{" + string.Join(",", fields.Select(f => $"\"{f.Key}\":{f.Value}")) + "}}";
        Reject(Build(header, 4), $"tensor 'w' has no '{field}'");
    }

    [Fact]
    public void DuplicateFieldIsRejected() =>
        Reject(Build("{\"w\":{\"dtype\":\"U8\",\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4),
            "tensor 'w' lists 'dtype' twice");

    [Theory]
    [InlineData("F8_E5M2")]
    [InlineData("float32")]
    [InlineData("f32")]
    [InlineData("")]
    public void UnknownDTypeIsRejected(string dtype) =>
        Reject(Build("{" + Entry("w", dtype, "[4]", 0, 4) + "}", 4), $"tensor 'w' has dtype '{dtype}'", "does not support");

    [Fact]
    public void DTypeThatIsNotAStringIsRejected() =>
        Reject(Build("{\"w\":{\"dtype\":4,\"shape\":[4],\"data_offsets\":[0,4]}}", 4), "tensor 'w' dtype is a JSON number");

    [Theory]
    [InlineData("[-1]")]
    [InlineData("[1.5]")]
    [InlineData("[4e0]")]
    [InlineData("[\"4\"]")]
    [InlineData("[null]")]
    [InlineData("[[4]]")]
    [InlineData("4")]
    [InlineData("{}")]
    [InlineData("[99999999999999999999]")]
    public void ShapeThatIsNotNonNegativeIntegersIsRejected(string shape) =>
        Reject(Build("{" + Entry("w", "U8", shape, 0, 4) + "}", 4), "tensor 'w' shape", "is not an array of non-negative integers");

    [Theory]
    [InlineData("[0]")]
    [InlineData("[0,4,8]")]
    [InlineData("[-4,0]")]
    [InlineData("[0,4.0]")]
    [InlineData("[0,\"4\"]")]
    [InlineData("{\"begin\":0}")]
    [InlineData("[0,18446744073709551615]")]
    public void DataOffsetsThatAreNotAPairOfNonNegativeIntegersAreRejected(string offsets) =>
        Reject(Build("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":" + offsets + "}}", 4),
            "tensor 'w' data_offsets", "is not [begin, end]");

    [Fact]
    public void ReversedDataOffsetsAreRejected() =>
        Reject(Build("{" + Entry("w", "U8", "[4]", 4, 0) + "}", 4), "tensor 'w' data_offsets [4, 0] end before they begin");

    [Fact]
    public void ByteCountDisagreeingWithShapeIsRejected() =>
        Reject(Build("{" + Entry("w", "F32", "[2, 2]", 0, 12) + "}", 12),
            "tensor 'w' data_offsets [0, 12] hold 12 bytes but F32 [2, 2] needs 16; the header is corrupt");

    [Theory]
    [InlineData("[4294967296, 4294967296]")] // 2^64 elements
    [InlineData("[2305843009213693952]")]    // 2^61 elements × 4 bytes = 2^63
    public void ElementCountOverflowIsRejected(string shape) =>
        Reject(Build("{" + Entry("w", "F32", shape, 0, 4) + "}", 4), "tensor 'w' F32", "more bytes than fit in 64 bits");

    [Fact]
    public void TruncatedFileIsRejectedNamingTheTensorAndOffsets()
    {
        string header = "{" + Entry("model.embed_tokens.weight", "U8", "[1000]", 0, 1000) + ","
            + Entry("lm_head.weight", "U8", "[4000]", 1000, 5000) + "}";
        Reject(Build(header, 3000),
            "tensor 'lm_head.weight' data_offsets [1000, 5000] exceed the data section (3000 bytes); the file is truncated or corrupt");
    }

    [Fact]
    public void OverlappingTensorsAreRejected()
    {
        string header = "{" + Entry("a", "U8", "[8]", 0, 8) + "," + Entry("b", "U8", "[8]", 4, 12) + "}";
        Reject(Build(header, 12), "tensor 'b' data_offsets [4, 12] overlap tensor 'a' [0, 8]");
    }

    [Fact]
    public void TwoTensorsSharingBytesAreRejected()
    {
        string header = "{" + Entry("a", "U8", "[8]", 0, 8) + "," + Entry("b", "U8", "[8]", 0, 8) + "}";
        Reject(Build(header, 8), "overlap tensor 'a' [0, 8]");
    }

    [Fact]
    public void HoleBetweenTensorsIsRejected()
    {
        string header = "{" + Entry("a", "U8", "[4]", 0, 4) + "," + Entry("b", "U8", "[4]", 8, 12) + "}";
        Reject(Build(header, 12), "data bytes [4, 8)", "before tensor 'b' and after tensor 'a' belong to no tensor");
    }

    [Fact]
    public void HoleBeforeFirstTensorIsRejected() =>
        Reject(Build("{" + Entry("a", "U8", "[4]", 4, 8) + "}", 8), "data bytes [0, 4)", "at the start of the data section");

    [Fact]
    public void TrailingBytesAreRejected() =>
        Reject(Build("{" + Entry("a", "U8", "[4]", 0, 4) + "}", 6), "the tensors cover 4 bytes but the data section has 6 (2 unclaimed bytes");

    [Fact]
    public void DataWithoutTensorsIsRejected() =>
        Reject(Build("{}", 8), "the tensors cover 0 bytes but the data section has 8");

    [Fact]
    public void InvalidSurrogateEscapeIsRejectedOrAcceptedButNeverCrashes()
    {
        // "\ud800" is well-formed JSON but not a valid UTF-16 string; it must not escape as InvalidOperationException.
        string path = _temp.File("model.safetensors");
        File.WriteAllBytes(path, Build("{\"w\\ud800\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1));
        try
        {
            SafeTensorsFile.Open(path).Dispose();
        }
        catch (InvalidDataException)
        {
        }
    }

    [Fact]
    public void NamesWithControlCharactersStayOnOneLine()
    {
        var error = Reject(Build("{" + Entry("evil\\nname", "U8", "[4]", 0, 5) + "}", 5), "tensor 'evil\\u000aname'");
        Assert.Contains("hold 5 bytes but U8 [4] needs 4", error.Message);
        Reject(Build("{\"w\":{\"dtype\":\"U8\",\"shape\":[\n-1],\"data_offsets\":[0,1]}}", 1), "shape [\\u000a-1]");
    }

    [Fact]
    public void VeryLongNamesAreCutInMessages()
    {
        string name = new('n', 5000);
        var error = Reject(Build("{" + Entry(name, "U8", "[4]", 0, 5) + "}", 5), "... (5000 characters)");
        Assert.True(error.Message.Length < 600, error.Message);
    }

    // ---- files that are fine ----

    [Fact]
    public void MissingFileThrowsFileNotFoundWithThePath()
    {
        string path = _temp.File("absent.safetensors");
        var error = Assert.Throws<FileNotFoundException>(() => SafeTensorsFile.Open(path));
        Assert.Equal(path, error.FileName);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void DirectoryIsACallerMistake() =>
        Assert.Throws<ArgumentException>(() => SafeTensorsFile.Open(_temp.Path));

    [Fact]
    public void EmptyHeaderWithoutTensorsOpens()
    {
        using var file = Accept(Build("{}", 0));
        Assert.Empty(file.Tensors);
        Assert.Empty(file.Metadata);
    }

    [Fact]
    public void UnpaddedHeaderOpens()
    {
        // Alignment is what writers should do, not what readers may demand (the reference accepts any header length).
        byte[] bytes = Build(Encoding.UTF8.GetBytes("{" + Entry("a", "U8", "[3]", 0, 3) + "}"), [1, 2, 3], pad: false);
        using var file = Accept(bytes);
        Assert.Equal([1, 2, 3], file.GetData("a").ToArray());
    }

    [Fact]
    public void ZeroElementTensorsGiveEmptyMemory()
    {
        string header = "{" + Entry("empty", "F32", "[0, 64]", 0, 0) + "," + Entry("a", "U8", "[2]", 0, 2) + ","
            + Entry("empty2", "BF16", "[3, 0]", 2, 2) + "}";
        using var file = Accept(Build(header, 2));
        Assert.Equal(3, file.Tensors.Count);
        Assert.True(file.GetData("empty").IsEmpty);
        Assert.True(file.GetData("empty2").IsEmpty);
        Assert.Equal(0, file.Tensors.Single(t => t.Name == "empty").ElementCount);
        Assert.Equal(2, file.GetData("a").Length);
    }

    [Fact]
    public void ScalarTensorHasOneElement()
    {
        using var file = Accept(Build("{" + Entry("s", "F32", "[]", 0, 4) + "}", BitConverter.GetBytes(2.5f)));
        var info = file.Tensors[0];
        Assert.Empty(info.Shape);
        Assert.Equal(1, info.ElementCount);
        Assert.Equal(2.5f, BitConverter.ToSingle(file.GetData("s").Span));
    }

    [Fact]
    public void TensorsAreListedInOffsetOrderWhateverTheHeaderOrder()
    {
        string header = "{" + Entry("c", "U8", "[2]", 6, 8) + "," + Entry("a", "U8", "[4]", 0, 4) + ","
            + Entry("b", "U8", "[2]", 4, 6) + "}";
        using var file = Accept(Build(header, 8));
        Assert.Equal(["a", "b", "c"], file.Tensors.Select(t => t.Name));
        long dataStart = file.Tensors[0].DataOffset;
        Assert.Equal([dataStart, dataStart + 4, dataStart + 6], file.Tensors.Select(t => t.DataOffset));
    }

    [Fact]
    public void UnknownFieldsInAnEntryAreIgnoredAsTheReferenceDoes()
    {
        using var file = Accept(Build("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"note\":[1,{}]}}", 1));
        Assert.True(file.TryGetTensor("a", out _));
    }

    [Fact]
    public void MissingTensorInAFileIsInvalidData()
    {
        using var file = Accept(Build("{}", 0));
        var error = Assert.Throws<InvalidDataException>(() => file.GetData("nope"));
        Assert.Equal($"{file.Path}: tensor 'nope' not found.", error.Message);
        Assert.False(file.TryGetTensor("nope", out _));
    }
}
