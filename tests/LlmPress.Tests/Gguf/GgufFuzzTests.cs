using LlmPress.Gguf;
using LlmPress.Models;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Gguf;

/// <summary>
/// Seeded random corruptions of valid GGUF files: opening (and then decoding every tensor, and for a model file
/// loading the model and the tokenizer) either works or throws <see cref="InvalidDataException"/>; any other exception,
/// a crash or a huge allocation is a validation bug.
/// </summary>
public sealed class GgufFuzzTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private byte[] SmallFile()
    {
        string path = _temp.File("valid.gguf");
        var rng = new Random(5);
        float[] values = Enumerable.Range(0, 64).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        GgufWriter.Write(path,
        [
            new("general.architecture", GgufValue.String("llama")),
            new("general.name", GgufValue.String("fuzz")),
            new("n", GgufValue.UInt32(5)),
            new("f", GgufValue.Float32(1e-5f)),
            new("ok", GgufValue.Bool(true)),
            new("tokens", GgufValue.Strings(["<s>", "a", "bc"])),
            new("scores", GgufValue.Float32s([0f, -1f, -2f])),
        ],
        [
            new GgufTensorToWrite("f32", GgmlType.F32, [2, 32], () => GgmlCodec.Encode(GgmlType.F32, values, 2, 32)),
            new GgufTensorToWrite("f16", GgmlType.F16, [64], () => GgmlCodec.Encode(GgmlType.F16, values, 1, 64)),
            new GgufTensorToWrite("bf16", GgmlType.BF16, [64], () => GgmlCodec.Encode(GgmlType.BF16, values, 1, 64)),
            new GgufTensorToWrite("q4", GgmlType.Q4_0, [2, 32], () => GgmlCodec.Encode(GgmlType.Q4_0, values, 2, 32)),
            new GgufTensorToWrite("q8", GgmlType.Q8_0, [2, 32], () => GgmlCodec.Encode(GgmlType.Q8_0, values, 2, 32)),
            new GgufTensorToWrite("mx", GgmlType.MXFP4, [2, 32], () => GgmlCodec.Encode(GgmlType.MXFP4, values, 2, 32)),
        ]);
        return File.ReadAllBytes(path);
    }

    [Fact]
    public void RandomCorruptionOfASmallFileIsRejectedCleanlyOrReadable()
    {
        byte[] valid = SmallFile();
        using (var file = GgufFile.Open(_temp.File("valid.gguf")))
            Fuzz(valid, (int)file.DataStart, 600, seed: 20251122, load: false);
    }

    [Fact]
    public void RandomCorruptionOfAModelFileIsRejectedCleanlyOrLoadable()
    {
        // stories260K exported as Q8_0: metadata with the tokenizer arrays, blocks, the llama loader and GgufTokenizer.
        string model = SharedData.Require("models", "stories260K");
        string path = _temp.File("model.gguf");
        LlmPress.Export.GgufExporter.Export(model, path, new LlmPress.Export.GgufExportOptions { Type = GgmlType.Q8_0, Verify = false });
        byte[] valid = File.ReadAllBytes(path);
        using (var file = GgufFile.Open(path))
            Fuzz(valid, (int)file.DataStart, 300, seed: 20251123, load: true);
    }

    private void Fuzz(byte[] valid, int headerEnd, int iterations, int seed, bool load) =>
        FileFuzzer.Run(_temp.File("fuzz.gguf"), valid, headerEnd, iterations, seed, Mutate, path =>
        {
            using var file = GgufFile.Open(path);
            foreach (var t in file.Tensors)
            {
                int cols = (int)t.Shape[^1];
                int rows = (int)(t.ElementCount / cols);
                GgmlCodec.Decode(t.Type, file.GetData(t).Span, rows, cols);
            }
            if (load)
            {
                GgufModelLoader.Load(file).Dispose();
                GgufTokenizer.Load(file).Encode("Once upon a time");
            }
        }, minRejectedShare: 1.0 / 3);

    /// <summary>One corruption, mostly in the header (metadata and tensor infos), where parsing happens.</summary>
    private static byte[] Mutate(byte[] valid, int headerEnd, Random rng, out string mutation)
    {
        byte[] bytes = (byte[])valid.Clone();
        int position = rng.Next(5) == 0 ? rng.Next(bytes.Length) : rng.Next(headerEnd);
        int choice = rng.Next(7);
        if (choice < FileFuzzer.SharedCount) return FileFuzzer.Shared(choice, bytes, position, headerEnd, rng, out mutation);
        switch (choice)
        {
            case 3:
                // A length, count, dimension or offset field (8 bytes) overwritten with a small, huge or negative value.
                int at = Math.Min(position, bytes.Length - 8);
                ulong value = rng.Next(3) switch { 0 => (ulong)rng.Next(64), 1 => ulong.MaxValue - (ulong)rng.Next(16), _ => 1UL << rng.Next(64) };
                BitConverter.TryWriteBytes(bytes.AsSpan(at), value);
                mutation = $"u64 {value} at {at}";
                return bytes;
            case 4:
                // A 4-byte type or n_dims field overwritten.
                int at4 = Math.Min(position, bytes.Length - 4);
                BitConverter.TryWriteBytes(bytes.AsSpan(at4), (uint)rng.Next(45));
                mutation = $"u32 at {at4}";
                return bytes;
            case 5:
                mutation = $"delete byte {position}";
                return [.. bytes[..position], .. bytes[Math.Min(bytes.Length, position + 1)..]];
            default:
                mutation = $"insert {position % 9 + 1} bytes at {position}";
                return [.. bytes[..position], .. new byte[position % 9 + 1], .. bytes[position..]];
        }
    }
}
