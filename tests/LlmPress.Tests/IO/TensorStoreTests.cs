using System.Buffers.Binary;
using System.Text.Json;
using LlmPress.IO;
using LlmPress.Numerics;

namespace LlmPress.Tests.IO;

public sealed class TensorStoreTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static TensorToWrite Floats(string name, long[] shape, Func<int, float> value)
    {
        int count = (int)TensorInfo.ComputeElementCount(shape);
        var data = new byte[count * 4];
        for (int i = 0; i < count; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), value(i));
        return new TensorToWrite(name, DType.F32, shape, data);
    }

    private string WriteSingle(params TensorToWrite[] tensors)
    {
        SafeTensorsWriter.Write(_temp.File("model.safetensors"), tensors);
        return _temp.Path;
    }

    // ---- opening ----

    [Fact]
    public void OpensADirectoryAFileAndAnIndex()
    {
        var tensors = SafeTensorsWriterTests.EveryDType(11);
        SafeTensorsWriter.WriteSharded(_temp.Path, tensors, maxShardBytes: 64);
        string index = _temp.File("model.safetensors.index.json");
        using (var viaDirectory = TensorStore.Open(_temp.Path))
        using (var viaIndex = TensorStore.Open(index))
        {
            Assert.Equal(viaDirectory.Names, viaIndex.Names);
            Assert.Equal(index, viaIndex.Path);
        }
        string firstShard = Directory.GetFiles(_temp.Path, "model-00001-of-*.safetensors").Single();
        using var viaShard = TensorStore.Open(firstShard);
        Assert.Equal([firstShard], viaShard.Files);
    }

    [Fact]
    public void ShardedRoundTripIsIdentical()
    {
        var tensors = SafeTensorsWriterTests.EveryDType(12);
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        var written = SafeTensorsWriter.WriteSharded(_temp.Path, tensors, maxShardBytes: 100, metadata);

        string indexPath = _temp.File("model.safetensors.index.json");
        Assert.Equal(indexPath, written[^1]);
        int shardCount = written.Count - 1;
        Assert.True(shardCount >= 3, $"expected several shards, got {shardCount}");
        for (int i = 0; i < shardCount; i++)
            Assert.Equal(_temp.File($"model-{i + 1:D5}-of-{shardCount:D5}.safetensors"), written[i]);

        long totalBytes = tensors.Sum(t => (long)t.Data.Length);
        using (var index = JsonDocument.Parse(File.ReadAllBytes(indexPath)))
        {
            Assert.Equal(totalBytes, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
            Assert.Equal(tensors.Count, index.RootElement.GetProperty("weight_map").EnumerateObject().Count());
        }

        using var store = TensorStore.Open(_temp.Path);
        Assert.Equal(written.Take(shardCount), store.Files);
        Assert.Equal(totalBytes, store.TotalBytes);
        Assert.Equal(tensors.Select(t => t.Name).Order(StringComparer.Ordinal), store.Names);
        foreach (var expected in tensors)
        {
            var info = store.GetInfo(expected.Name);
            Assert.Equal(expected.DType, info.DType);
            Assert.Equal(expected.Shape, info.Shape);
            Assert.Equal(expected.Data.ToArray(), store.GetData(expected.Name).ToArray());
        }
        foreach (string shard in store.Files)
        {
            using var file = SafeTensorsFile.Open(shard);
            Assert.Equal("pt", file.Metadata["format"]);
            long shardBytes = file.Tensors.Sum(t => t.ByteLength);
            Assert.True(shardBytes <= 100 || file.Tensors.Count == 1, $"{shard} holds {shardBytes} bytes");
        }
    }

    [Fact]
    public void WhenEverythingFitsOneShardASingleFileIsWrittenAndStaleShardsRemoved()
    {
        var tensors = SafeTensorsWriterTests.EveryDType(13);
        SafeTensorsWriter.WriteSharded(_temp.Path, tensors, maxShardBytes: 64);
        Assert.Contains("model.safetensors.index.json", _temp.FileNames());

        var written = SafeTensorsWriter.WriteSharded(_temp.Path, tensors, maxShardBytes: 1 << 20);
        Assert.Equal([_temp.File("model.safetensors")], written);
        Assert.Equal(["model.safetensors"], _temp.FileNames());

        // And back: sharding again removes the single file, which TensorStore would otherwise prefer.
        SafeTensorsWriter.WriteSharded(_temp.Path, tensors, maxShardBytes: 64);
        Assert.DoesNotContain("model.safetensors", _temp.FileNames());
        using var store = TensorStore.Open(_temp.Path);
        Assert.True(store.Files.Count > 1);
    }

    [Fact]
    public void WriteShardedCreatesTheDirectory()
    {
        string directory = System.IO.Path.Combine(_temp.Path, "out", "model");
        SafeTensorsWriter.WriteSharded(directory, [Floats("w", [2], i => i)], maxShardBytes: 1024);
        using var store = TensorStore.Open(directory);
        Assert.Equal([0f, 1], store.ReadFloats("w", 2));
    }

    [Fact]
    public void SingleFileWinsOverAnIndexAsInTransformers()
    {
        File.WriteAllText(_temp.File("model.safetensors.index.json"), "not even json");
        WriteSingle(Floats("w", [2], i => i));
        using var store = TensorStore.Open(_temp.Path);
        Assert.Equal(["w"], store.Names);
    }

    [Fact]
    public void DirectoryWithoutCheckpointIsFileNotFound()
    {
        var error = Assert.Throws<FileNotFoundException>(() => TensorStore.Open(_temp.Path));
        Assert.StartsWith(_temp.Path + ": no model.safetensors or model.safetensors.index.json", error.Message);
    }

    [Fact]
    public void MissingPathIsFileNotFound()
    {
        string path = _temp.File("nothing-here");
        var error = Assert.Throws<FileNotFoundException>(() => TensorStore.Open(path));
        Assert.Equal(path, error.FileName);
    }

    // ---- index problems ----

    private string WriteIndex(string json)
    {
        string path = _temp.File("model.safetensors.index.json");
        File.WriteAllText(path, json);
        return path;
    }

    private string WriteShard(string name, params TensorToWrite[] tensors)
    {
        SafeTensorsWriter.Write(_temp.File(name), tensors);
        return name;
    }

    [Theory]
    [InlineData("{\"weight_map\": {", "not valid JSON (error at line 1")]
    [InlineData("[]", "no \"weight_map\" object")]
    [InlineData("{\"metadata\": {}}", "no \"weight_map\" object")]
    [InlineData("{\"weight_map\": []}", "no \"weight_map\" object")]
    [InlineData("{\"weight_map\": {\"w\": 3}}", "weight_map entry for tensor 'w' is a JSON number")]
    [InlineData("{\"weight_map\": {\"w\": \"a.safetensors\", \"w\": \"a.safetensors\"}}", "weight_map lists tensor 'w' twice")]
    [InlineData("{\"weight_map\": {\"w\": \"../outside.safetensors\"}}", "maps tensor 'w' to '../outside.safetensors', which is not a file name inside")]
    [InlineData("{\"weight_map\": {\"w\": \"/etc/passwd\"}}", "maps tensor 'w' to '/etc/passwd'")]
    [InlineData("{\"weight_map\": {\"w\": \"\"}}", "maps tensor 'w' to ''")]
    public void MalformedIndexIsInvalidData(string json, string fragment)
    {
        string index = WriteIndex(json);
        var error = Assert.Throws<InvalidDataException>(() => TensorStore.Open(_temp.Path));
        Assert.StartsWith(index + ": ", error.Message);
        Assert.Contains(fragment, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void MissingShardIsFileNotFoundNamingIndexAndTensor()
    {
        WriteShard("model-00001-of-00002.safetensors", Floats("a", [2], i => i));
        string index = WriteIndex("""
            {"metadata": {"total_size": 16}, "weight_map": {
              "a": "model-00001-of-00002.safetensors",
              "lm_head.weight": "model-00002-of-00002.safetensors"}}
            """);
        var error = Assert.Throws<FileNotFoundException>(() => TensorStore.Open(_temp.Path));
        Assert.Equal(_temp.File("model-00002-of-00002.safetensors"), error.FileName);
        Assert.Equal($"{index}: shard 'model-00002-of-00002.safetensors' (holding tensor 'lm_head.weight') is missing; " +
            "the checkpoint download is incomplete.", error.Message);
    }

    [Fact]
    public void WeightMapPointingAtTheWrongShardIsInvalidData()
    {
        WriteShard("model-00001-of-00002.safetensors", Floats("a", [2], i => i));
        WriteShard("model-00002-of-00002.safetensors", Floats("b", [2], i => i));
        string index = WriteIndex("""{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors"}}""");
        var error = Assert.Throws<InvalidDataException>(() => TensorStore.Open(_temp.Path));
        Assert.Equal($"{index}: weight_map maps tensor 'b' to 'model-00001-of-00002.safetensors', but that shard has no such tensor; " +
            "the index and the shards do not belong together.", error.Message);
    }

    [Fact]
    public void CorruptShardIsReportedWithTheShardPath()
    {
        string shard = _temp.File("model-00001-of-00001.safetensors");
        File.WriteAllBytes(shard, [1, 2, 3]);
        WriteIndex("""{"weight_map": {"a": "model-00001-of-00001.safetensors"}}""");
        var error = Assert.Throws<InvalidDataException>(() => TensorStore.Open(_temp.Path));
        Assert.StartsWith(shard + ": file is 3 bytes", error.Message);
    }

    [Fact]
    public void ShardTensorsMissingFromTheWeightMapAreNotExposed()
    {
        WriteShard("s.safetensors", Floats("a", [2], i => i), Floats("extra", [2], i => i));
        WriteIndex("""{"weight_map": {"a": "s.safetensors"}}""");
        using var store = TensorStore.Open(_temp.Path);
        Assert.Equal(["a"], store.Names);
        Assert.False(store.Contains("extra"));
        Assert.Equal(8, store.TotalBytes);
    }

    // ---- lookups ----

    [Fact]
    public void MissingTensorMessageNamesFileTensorAndCheckpoint()
    {
        using var store = TensorStore.Open(WriteSingle(Floats("w", [2], i => i)));
        var error = Assert.Throws<InvalidDataException>(() => store.GetInfo("model.layers.3.mlp.up_proj.weight"));
        Assert.Equal($"model.safetensors: tensor 'model.layers.3.mlp.up_proj.weight' not found (checkpoint {_temp.Path})", error.Message.TrimEnd('.'));
        Assert.Throws<InvalidDataException>(() => store.GetData("nope"));
        Assert.Throws<InvalidDataException>(() => store.GetMatrix("nope", 1, 1));
        Assert.Throws<InvalidDataException>(() => store.ReadFloats("nope", 1));
        Assert.False(store.TryGetInfo("nope", out _));
    }

    [Fact]
    public void GetMatrixReturnsAZeroCopyViewOfTheRightShape()
    {
        using var store = TensorStore.Open(WriteSingle(Floats("w", [3, 4], i => i * 0.5f)));
        var view = store.GetMatrix("w", 3, 4);
        Assert.Equal((DType.F32, 3, 4), (view.Type, view.Rows, view.Cols));
        Assert.Equal(Enumerable.Range(0, 12).Select(i => i * 0.5f), view.ToFloatArray());
        Assert.Equal(store.GetInfo("w").ByteLength, view.Data.Length);
    }

    [Theory]
    [InlineData(4, 3, "[4, 3]")]
    [InlineData(3, 5, "[3, 5]")]
    public void GetMatrixShapeMismatchNamesTensorFileAndBothShapes(int rows, int cols, string expected)
    {
        using var store = TensorStore.Open(WriteSingle(Floats("model.layers.0.mlp.up_proj.weight", [3, 4], i => i)));
        var error = Assert.Throws<InvalidDataException>(() => store.GetMatrix("model.layers.0.mlp.up_proj.weight", rows, cols));
        Assert.Equal($"model.safetensors: tensor 'model.layers.0.mlp.up_proj.weight' has shape [3, 4] but {expected} was expected " +
            $"(checkpoint {_temp.Path}); the model config does not match the weights.", error.Message);
    }

    [Fact]
    public void GetMatrixRejectsOtherRanks()
    {
        using var store = TensorStore.Open(WriteSingle(Floats("v", [12], i => i), Floats("t", [2, 3, 2], i => i)));
        Assert.Contains("'v' has shape [12] but [12, 1] was expected", Assert.Throws<InvalidDataException>(() => store.GetMatrix("v", 12, 1)).Message);
        Assert.Contains("'t' has shape [2, 3, 2] but [2, 6] was expected", Assert.Throws<InvalidDataException>(() => store.GetMatrix("t", 2, 6)).Message);
    }

    [Fact]
    public void GetMatrixRejectsNonFloatDTypes()
    {
        using var store = TensorStore.Open(WriteSingle(new TensorToWrite("ids", DType.I32, [2, 2], new byte[16])));
        var error = Assert.Throws<InvalidDataException>(() => store.GetMatrix("ids", 2, 2));
        Assert.Equal($"model.safetensors: tensor 'ids' is I32 [2, 2], expected F32, F16 or BF16 (checkpoint {_temp.Path}); " +
            "only floating-point weights can be read as floats.", error.Message);
        Assert.Throws<InvalidDataException>(() => store.ReadFloats("ids", 2, 2));
    }

    [Fact]
    public void GetMatrixRejectsNegativeSizes()
    {
        using var store = TensorStore.Open(WriteSingle(Floats("w", [1, 1], i => i)));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.GetMatrix("w", -1, 1));
    }

    [Fact]
    public void ReadFloatsConvertsHalfAndBFloat16()
    {
        float[] values = [1f, -2.5f, 0.15625f, 65504f];
        var half = new byte[8];
        var bf16 = new byte[8];
        for (int i = 0; i < 4; i++)
        {
            BinaryPrimitives.WriteHalfLittleEndian(half.AsSpan(i * 2), (Half)values[i]);
            BinaryPrimitives.WriteUInt16LittleEndian(bf16.AsSpan(i * 2), FloatConversion.SingleToBFloat16(values[i]));
        }
        using var store = TensorStore.Open(WriteSingle(
            new TensorToWrite("h", DType.F16, [4], half),
            new TensorToWrite("b", DType.BF16, [2, 2], bf16),
            Floats("f", [4], i => values[i])));
        Assert.Equal(values, store.ReadFloats("h", 4));
        Assert.Equal(values.Select(v => FloatConversion.BFloat16ToSingle(FloatConversion.SingleToBFloat16(v))), store.ReadFloats("b", 2, 2));
        Assert.Equal(values, store.ReadFloats("f", 4));
    }

    [Fact]
    public void ReadFloatsValidatesTheShape()
    {
        using var store = TensorStore.Open(WriteSingle(Floats("model.norm.weight", [64], i => 1), Floats("s", [], i => 3)));
        var error = Assert.Throws<InvalidDataException>(() => store.ReadFloats("model.norm.weight", 96));
        Assert.Contains("tensor 'model.norm.weight' has shape [64] but [96] was expected", error.Message);
        Assert.Throws<InvalidDataException>(() => store.ReadFloats("model.norm.weight", 1, 64));
        Assert.Throws<InvalidDataException>(() => store.ReadFloats("model.norm.weight"));
        Assert.Equal([3f], store.ReadFloats("s")); // no dimensions = a scalar
    }

    // ---- lifetime ----

    [Fact]
    public void MemoryCanBeSharedAcrossThreads()
    {
        using var store = TensorStore.Open(WriteSingle(Floats("w", [64, 32], i => i)));
        var view = store.GetMatrix("w", 64, 32);
        var sums = new float[64];
        Parallel.For(0, 64, row =>
        {
            Span<float> buffer = stackalloc float[32];
            view.ReadRow(row, buffer);
            float sum = 0;
            foreach (float v in buffer) sum += v;
            sums[row] = sum;
        });
        for (int row = 0; row < 64; row++)
            Assert.Equal(Enumerable.Range(row * 32, 32).Sum(i => (float)i), sums[row]);
    }

    [Fact]
    public void MemoryFromADisposedStoreThrowsInsteadOfReadingUnmappedPages()
    {
        var store = TensorStore.Open(WriteSingle(Floats("w", [4], i => i)));
        var memory = store.GetData("w");
        Assert.Equal(16, memory.Span.Length);
        store.Dispose();
        Assert.Throws<ObjectDisposedException>(() => memory.Span.Length);
        Assert.Throws<ObjectDisposedException>(() => store.GetData("w"));
        store.Dispose(); // idempotent
    }

    [Fact]
    public void OpenFilesCanBeReadByOthersAndReplacedAtomically()
    {
        string directory = WriteSingle(Floats("w", [4], i => i));
        using var store = TensorStore.Open(directory);
        using var again = TensorStore.Open(directory); // FileShare.Read
        // Rewriting renames a new file over the old one; the open mapping keeps the old bytes (POSIX semantics).
        if (!OperatingSystem.IsWindows())
        {
            SafeTensorsWriter.Write(_temp.File("model.safetensors"), [Floats("w", [4], i => 10 + i)]);
            Assert.Equal([0f, 1, 2, 3], store.ReadFloats("w", 4));
            using var fresh = TensorStore.Open(directory);
            Assert.Equal([10f, 11, 12, 13], fresh.ReadFloats("w", 4));
        }
    }

    [Fact]
    public void TensorsOverTwoGigabytesAreNotSupportedByName()
    {
        if (!Environment.Is64BitProcess) Assert.Skip("needs a 64-bit address space to map a 2 GiB file");
        // A sparse file: 2 GiB of data that takes no disk space.
        const long big = (long)int.MaxValue + 1;
        byte[] prefix = SafeTensorsBytes.Build("{" + SafeTensorsBytes.Entry("huge", "U8", $"[{big}]", 0, big) + "}", []);
        string path = _temp.File("model.safetensors");
        using (var stream = new FileStream(path, FileMode.CreateNew))
        {
            stream.Write(prefix);
            stream.SetLength(prefix.Length + big);
        }
        using var store = TensorStore.Open(path);
        Assert.Equal(big, store.TotalBytes);
        var error = Assert.Throws<NotSupportedException>(() => store.GetData("huge"));
        Assert.Contains("tensor 'huge' has 2147483648 bytes", error.Message);
        Assert.StartsWith(path, error.Message);
    }
}
