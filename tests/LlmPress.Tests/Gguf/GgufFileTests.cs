using LlmPress.Gguf;

namespace LlmPress.Tests.Gguf;

/// <summary>GgufFile's validation (every rule, each with a hand-built file) and GgufWriter → GgufFile round trips.</summary>
public sealed class GgufFileTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Save(byte[] bytes, string name = "x.gguf")
    {
        string path = _temp.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private void AssertRejected(byte[] bytes, params string[] fragments)
    {
        string path = Save(bytes);
        var e = Assert.Throws<InvalidDataException>(() => GgufFile.Open(path).Dispose());
        Assert.StartsWith(path + ": ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        foreach (string f in fragments) Assert.Contains(f, e.Message);
    }

    [Fact]
    public void ReadsAHandBuiltFile()
    {
        using var file = GgufFile.Open(Save(GgufBytes.Valid()));
        Assert.Equal(3u, file.Version);
        Assert.Equal(["general.architecture", "answer"], file.MetadataKeys);
        Assert.Equal("llama", file.GetString("general.architecture"));
        Assert.Equal(42, file.GetInteger("answer"));
        var a = file.GetTensor("a");
        Assert.Equal(GgmlType.F32, a.Type);
        Assert.Equal([2L, 4L], a.Shape); // ne [4, 2] is row-major [2, 4]
        Assert.Equal(file.DataStart, a.DataOffset);
        Assert.Equal([0f, 1, 2, 3, 4, 5, 6, 7], GgmlCodec.Decode(a.Type, file.GetData(a).Span, 2, 4));
        var b = file.GetTensor("b");
        Assert.Equal(34, b.ByteLength);
        var values = GgmlCodec.Decode(b.Type, file.GetData(b).Span, 1, 32);
        Assert.Equal(-16f, values[0]);
        Assert.Equal(15f, values[31]);
    }

    [Fact]
    public void WriterRoundTripsMetadataAndTensors()
    {
        string path = _temp.File("w.gguf");
        var q4 = GgmlCodec.Encode(GgmlType.Q4_0, Enumerable.Range(0, 64).Select(i => (float)Math.Sin(i)).ToArray(), 2, 32);
        GgufWriter.Write(path,
        [
            new("s", GgufValue.String("héllo\nworld")),
            new("u", GgufValue.UInt32(7)),
            new("i", GgufValue.Int32(-3)),
            new("l", GgufValue.UInt64(1UL << 40)),
            new("f", GgufValue.Float32(0.5f)),
            new("b", GgufValue.Bool(true)),
            new("ss", GgufValue.Strings(["a", "", "c d"])),
            new("fs", GgufValue.Float32s([1f, -2f])),
            new("is", GgufValue.Int32s([1, 2, 3])),
        ],
        [
            new GgufTensorToWrite("t.q4", GgmlType.Q4_0, [2, 32], () => q4),
            new GgufTensorToWrite("t.f16", GgmlType.F16, [3], () => new byte[6]),
        ]);
        using var file = GgufFile.Open(path);
        Assert.Equal("héllo\nworld", file.GetString("s"));
        Assert.Equal(7, file.GetInteger("u"));
        Assert.Equal(-3, file.GetInteger("i"));
        Assert.Equal(1L << 40, file.GetInteger("l"));
        Assert.Equal(0.5, file.GetDouble("f"));
        Assert.True(file.GetBool("b"));
        Assert.Equal(["a", "", "c d"], file.GetArray<string>("ss")!);
        Assert.Equal([1f, -2f], file.GetArray<float>("fs")!);
        Assert.Equal([1, 2, 3], file.GetArray<int>("is")!);
        var t = file.GetTensor("t.q4");
        Assert.Equal([2L, 32L], t.Shape);
        Assert.Equal(q4, file.GetData(t).ToArray());
        Assert.Equal(0, (file.GetTensor("t.f16").DataOffset - file.DataStart) % 32);
        Assert.Throws<InvalidDataException>(() => file.GetArray<int>("ss"));
    }

    [Fact]
    public void WriterIsAtomicAndRejectsBadTensors()
    {
        string path = _temp.File("bad.gguf");
        Assert.Throws<ArgumentException>(() => GgufWriter.Write(path, [], [new GgufTensorToWrite("x", GgmlType.Q8_0, [2, 31], () => new byte[0])]));
        Assert.Throws<ArgumentException>(() => GgufWriter.Write(path, [], [new GgufTensorToWrite(new string('n', 64), GgmlType.F32, [1], () => new byte[4])]));
        // Data of the wrong length is noticed while writing: the partial file is removed.
        Assert.Throws<ArgumentException>(() => GgufWriter.Write(path, [], [new GgufTensorToWrite("x", GgmlType.F32, [2], () => new byte[4])]));
        Assert.Empty(_temp.FileNames());
    }

    [Fact]
    public void RejectsBadMagicAndVersions()
    {
        byte[] bytes = GgufBytes.Valid();
        bytes[0] = (byte)'X';
        AssertRejected(bytes, "magic", "not a GGUF file");
        foreach (uint version in new uint[] { 1, 4, 0xFFFFFFFF })
        {
            bytes = GgufBytes.Valid();
            BitConverter.TryWriteBytes(bytes.AsSpan(4), version);
            AssertRejected(bytes, "version", $"is {version}");
        }
        bytes = GgufBytes.Valid();
        BitConverter.TryWriteBytes(bytes.AsSpan(4), 0x03000000u);
        AssertRejected(bytes, "version", "big-endian");
    }

    [Fact]
    public void EveryTruncationIsRejected()
    {
        byte[] valid = GgufBytes.Valid();
        for (int length = 0; length < valid.Length; length++)
            AssertRejected(valid[..length]);
    }

    [Fact]
    public void RejectsCountsLengthsAndTypesThatLie()
    {
        // tensor_count far beyond what the file can hold: refused before allocating.
        var b = new GgufBytes().Header(3, ulong.MaxValue / 2, 0);
        AssertRejected(b.Align().ToArray(), "tensor_count");
        // A string length past the end.
        b = new GgufBytes().Header(3, 0, 1).U64(1UL << 60).Raw(new byte[16]);
        AssertRejected(b.ToArray(), "metadata key #0", "string length");
        // An array length past the end.
        b = new GgufBytes().Header(3, 0, 1).Str("k").U32(9).U32(4).U64(1UL << 40);
        AssertRejected(b.ToArray(), "'k'", "array length");
        // Unknown value type, nested arrays, a bool that is not 0/1, a duplicate key.
        AssertRejected(new GgufBytes().Header(3, 0, 1).Str("k").U32(13).ToArray(), "value type 13");
        AssertRejected(new GgufBytes().Header(3, 0, 1).Str("k").U32(9).U32(9).U64(0).ToArray(), "array of arrays");
        AssertRejected(new GgufBytes().Header(3, 0, 1).Str("k").U32(7).U8(2).ToArray(), "bool byte is 2");
        AssertRejected(new GgufBytes().Header(3, 0, 2).Str("k").U32(4).U32(1).Str("k").U32(4).U32(1).ToArray(), "appears twice");
        // general.alignment must be a uint32 power of two.
        AssertRejected(new GgufBytes().Header(3, 0, 1).Str("general.alignment").U32(4).U32(24).ToArray(), "general.alignment");
    }

    [Theory]
    [InlineData(3u, "ggml type 3")]     // Q4_1: a real ggml type LlmPress does not read
    [InlineData(99u, "ggml type 99")]
    public void RejectsUnknownTensorTypes(uint type, string fragment)
    {
        var b = new GgufBytes().Header(3, 1, 0).TensorInfo("t", [32], type, 0).Align();
        AssertRejected(b.Raw(new byte[64]).ToArray(), "tensor 't'", fragment);
    }

    [Fact]
    public void RejectsBadTensorInfos()
    {
        byte[] Build(Action<GgufBytes> info, int dataBytes = 64)
        {
            var b = new GgufBytes().Header(3, 1, 0);
            info(b);
            return b.Align().Raw(new byte[dataBytes]).ToArray();
        }
        AssertRejected(Build(b => b.TensorInfo("t", [], 0, 0)), "n_dims 0");
        AssertRejected(Build(b => b.TensorInfo("t", [1, 1, 1, 1, 1], 0, 0)), "n_dims 5");
        AssertRejected(Build(b => b.TensorInfo("t", [0], 0, 0)), "ne[0] = 0");
        AssertRejected(Build(b => b.TensorInfo("t", [31], 8, 0)), "not a multiple of the q8_0 block size 32");
        AssertRejected(Build(b => b.TensorInfo("t", [4], 0, 16)), "not a multiple of the alignment 32");
        AssertRejected(Build(b => b.TensorInfo("t", [32], 0, 0)), "exceed"); // 128 bytes, only 64 there
        AssertRejected(Build(b => b.TensorInfo("t", [4], 0, 1UL << 62)), "past the end");
        AssertRejected(Build(b => b.TensorInfo("t", [1UL << 40, 1UL << 40], 0, 0)), "64 bits");
        AssertRejected(Build(b => b.TensorInfo("t", [1UL << 20, 1UL << 20], 0, 0)), "exceed");
        AssertRejected(Build(b => b.TensorInfo(new string('n', 64), [4], 0, 0)), "names are under 64");
        var two = new GgufBytes().Header(3, 2, 0).TensorInfo("t", [4], 0, 0).TensorInfo("t", [4], 0, 32).Align().Raw(new byte[64]).ToArray();
        AssertRejected(two, "appears twice");
        var overlap = new GgufBytes().Header(3, 2, 0).TensorInfo("t", [16], 0, 0).TensorInfo("u", [4], 0, 32).Align().Raw(new byte[64]).ToArray();
        AssertRejected(overlap, "overlap");
    }

    [Fact]
    public void MissingFileAndDirectoryAreClearErrors()
    {
        Assert.Throws<FileNotFoundException>(() => GgufFile.Open(_temp.File("none.gguf")));
        Assert.Throws<InvalidDataException>(() => GgufFile.Open(_temp.Path));
    }
}
