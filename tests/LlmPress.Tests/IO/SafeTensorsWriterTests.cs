using System.Buffers.Binary;
using System.Text.Json;
using LlmPress.IO;
using LlmPress.Numerics;

namespace LlmPress.Tests.IO;

public sealed class SafeTensorsWriterTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>One tensor of every dtype (plus a scalar and an empty one), filled with random bytes.</summary>
    internal static List<TensorToWrite> EveryDType(int seed)
    {
        var rng = new Random(seed);
        var tensors = new List<TensorToWrite>();
        foreach (var type in Enum.GetValues<DType>())
        {
            long[] shape = [rng.Next(1, 5), rng.Next(1, 7)];
            var data = new byte[shape[0] * shape[1] * DTypeInfo.SizeOf(type)];
            rng.NextBytes(data);
            tensors.Add(new TensorToWrite($"t.{type}", type, shape, data));
        }
        tensors.Add(new TensorToWrite("scalar", DType.F64, [], BitConverter.GetBytes(Math.PI)));
        tensors.Add(new TensorToWrite("empty", DType.F32, [0, 8], ReadOnlyMemory<byte>.Empty));
        tensors.Add(new TensorToWrite("odd.name/with+ü", DType.U8, [3], new byte[] { 1, 2, 3 }));
        return tensors;
    }

    [Fact]
    public void EveryDTypeRoundTripsBitIdenticalWithMetadata()
    {
        var tensors = EveryDType(20250101);
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "quoted \"text\" ü\n" };
        string path = _temp.File("model.safetensors");
        SafeTensorsWriter.Write(path, tensors, metadata);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(metadata, file.Metadata);
        Assert.Equal(tensors.Count, file.Tensors.Count);
        foreach (var expected in tensors)
        {
            Assert.True(file.TryGetTensor(expected.Name, out var info));
            Assert.Equal(expected.DType, info.DType);
            Assert.Equal(expected.Shape, info.Shape);
            Assert.Equal(path, info.FilePath);
            Assert.Equal(expected.Data.ToArray(), file.GetData(expected.Name).ToArray());
            // Largest elements first, so every tensor is aligned to its element size.
            Assert.Equal(0, info.DataOffset % DTypeInfo.SizeOf(info.DType));
        }
    }

    [Fact]
    public void HeaderIsSpacePaddedSoDataStartsEightByteAligned()
    {
        for (int nameLength = 1; nameLength <= 9; nameLength++)
        {
            string path = _temp.File($"pad{nameLength}.safetensors");
            SafeTensorsWriter.Write(path, [new TensorToWrite(new string('x', nameLength), DType.F32, [1], new byte[4])]);
            byte[] bytes = File.ReadAllBytes(path);
            long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
            Assert.Equal(0, headerLength % 8);
            var header = bytes.AsSpan(8, (int)headerLength);
            int jsonEnd = header.LastIndexOf((byte)'}') + 1;
            Assert.True(jsonEnd > 0);
            Assert.True(header[jsonEnd..].IndexOfAnyExcept((byte)' ') < 0, "padding must be spaces");
            Assert.True(headerLength - jsonEnd < 8);
            Assert.Equal(bytes.Length, 8 + headerLength + 4);
        }
    }

    // Expected bytes are the vectors from the reference implementation's tests (huggingface/safetensors tensor.rs):
    // the same tensors must serialize to exactly the same file.
    [Fact]
    public void MatchesReferenceSerializationByteForByte()
    {
        var data = new byte[24];
        for (int i = 0; i < 6; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), i);
        string path = _temp.File("ref.safetensors");
        SafeTensorsWriter.Write(path, [new TensorToWrite("attn0", DType.F32, [1, 1, 2, 3], data)]);
        byte[] expected = [.. Prefix(72), .. "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       "u8, .. data];
        Assert.Equal(expected, File.ReadAllBytes(path));
    }

    [Fact]
    public void MatchesReferenceEmptyFilesByteForByte()
    {
        string path = _temp.File("empty.safetensors");
        SafeTensorsWriter.Write(path, []);
        Assert.Equal([8, 0, 0, 0, 0, 0, 0, 0, .. "{}      "u8], File.ReadAllBytes(path));

        SafeTensorsWriter.Write(path, [], new Dictionary<string, string> { ["framework"] = "pt" });
        Assert.Equal([.. Prefix(40), .. "{\"__metadata__\":{\"framework\":\"pt\"}}     "u8], File.ReadAllBytes(path));
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal("pt", file.Metadata["framework"]);
    }

    private static byte[] Prefix(ulong headerLength)
    {
        var prefix = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, headerLength);
        return prefix;
    }

    [Fact]
    public void OutputDoesNotDependOnInputOrder()
    {
        var tensors = EveryDType(7);
        SafeTensorsWriter.Write(_temp.File("a.safetensors"), tensors);
        var shuffled = tensors.ToArray();
        new Random(3).Shuffle(shuffled);
        SafeTensorsWriter.Write(_temp.File("b.safetensors"), shuffled);
        Assert.Equal(File.ReadAllBytes(_temp.File("a.safetensors")), File.ReadAllBytes(_temp.File("b.safetensors")));
    }

    [Fact]
    public void WrittenHeaderIsPlainJsonThatOtherToolsCanRead()
    {
        string path = _temp.File("model.safetensors");
        SafeTensorsWriter.Write(path, [new TensorToWrite("w", DType.BF16, [2, 3], new byte[12])],
            new Dictionary<string, string> { ["format"] = "pt" });
        byte[] bytes = File.ReadAllBytes(path);
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        using var json = JsonDocument.Parse(bytes.AsMemory(8, n));
        var w = json.RootElement.GetProperty("w");
        Assert.Equal("BF16", w.GetProperty("dtype").GetString());
        Assert.Equal("[2,3]", w.GetProperty("shape").GetRawText());
        Assert.Equal("[0,12]", w.GetProperty("data_offsets").GetRawText());
        Assert.Equal("pt", json.RootElement.GetProperty("__metadata__").GetProperty("format").GetString());
    }

    public static TheoryData<string, TensorToWrite[]> BadTensors => new()
    {
        { "the name is empty", [new TensorToWrite("", DType.U8, [1], new byte[1])] },
        { "reserved for metadata", [new TensorToWrite("__metadata__", DType.U8, [1], new byte[1])] },
        { "another tensor has the same name", [new TensorToWrite("a", DType.U8, [1], new byte[1]), new TensorToWrite("a", DType.U8, [1], new byte[1])] },
        { "negative dimension", [new TensorToWrite("a", DType.U8, [-1], new byte[1])] },
        { "F32 [2, 2] needs 16 bytes but the data has 12", [new TensorToWrite("a", DType.F32, [2, 2], new byte[12])] },
        { "is too large", [new TensorToWrite("a", DType.F32, [long.MaxValue, 2], new byte[1])] },
        { "the shape is null", [new TensorToWrite("a", DType.F32, null!, new byte[1])] },
        { "dtype 99 is not defined", [new TensorToWrite("a", (DType)99, [1], new byte[1])] },
    };

    [Theory]
    [MemberData(nameof(BadTensors))]
    public void InvalidTensorsAreRejectedBeforeAnythingIsWritten(string problem, TensorToWrite[] tensors)
    {
        string path = _temp.File("model.safetensors");
        var error = Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, tensors));
        Assert.Contains(problem, error.Message);
        Assert.StartsWith(path, error.Message);
        Assert.Empty(_temp.FileNames());
    }

    [Fact]
    public void DataThatThrowsMidwayLeavesNoFileAndNoTempFile()
    {
        string path = _temp.File("model.safetensors");
        TensorToWrite[] tensors =
        [
            new("a.first", DType.F32, [256], new byte[1024]),
            new("b.broken", DType.F32, [4], new ThrowingMemory(16).Memory),
        ];
        var error = Assert.Throws<IOException>(() => SafeTensorsWriter.Write(path, tensors));
        Assert.Equal(ThrowingMemory.Message, error.Message);
        Assert.Empty(_temp.FileNames());
    }

    [Fact]
    public void FailedRewriteKeepsThePreviousFile()
    {
        string path = _temp.File("model.safetensors");
        var good = EveryDType(1);
        SafeTensorsWriter.Write(path, good);
        byte[] before = File.ReadAllBytes(path);
        Assert.Throws<IOException>(() =>
            SafeTensorsWriter.Write(path, [new TensorToWrite("x", DType.U8, [4], new ThrowingMemory(4).Memory)]));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(["model.safetensors"], _temp.FileNames());
    }

    /// <summary>Memory whose bytes cannot be read: stands in for a producer that fails mid-write.</summary>
    private sealed class ThrowingMemory(int length) : System.Buffers.MemoryManager<byte>
    {
        public const string Message = "simulated read failure";
        private readonly byte[] _bytes = new byte[length];
        public override Span<byte> GetSpan() => throw new IOException(Message);
        public override System.Buffers.MemoryHandle Pin(int elementIndex = 0) => throw new NotSupportedException();
        public override void Unpin() { }
        protected override void Dispose(bool disposing) { }
        public new Memory<byte> Memory => CreateMemory(_bytes.Length);
    }
}
