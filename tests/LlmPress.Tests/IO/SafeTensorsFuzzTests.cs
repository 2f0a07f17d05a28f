using LlmPress.IO;
using LlmPress.Numerics;

namespace LlmPress.Tests.IO;

/// <summary>
/// Random corruption of valid files: opening must either succeed (and every tensor then be readable) or throw
/// <see cref="InvalidDataException"/>; any other exception is a bug in validation.
/// </summary>
public sealed class SafeTensorsFuzzTests : IDisposable
{
    private const int Iterations = 500;
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private byte[] ValidFile()
    {
        string path = _temp.File("valid.safetensors");
        TensorToWrite[] tensors =
        [
            new("model.embed_tokens.weight", DType.F32, [4, 3], new byte[48]),
            new("model.norm.weight", DType.BF16, [3], new byte[6]),
            new("ids", DType.I32, [2], new byte[8]),
            new("mask", DType.Bool, [5], new byte[5]),
            new("scalar", DType.F64, [], new byte[8]),
            new("empty", DType.F16, [0, 2], ReadOnlyMemory<byte>.Empty),
        ];
        SafeTensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        return File.ReadAllBytes(path);
    }

    [Fact]
    public void RandomCorruptionIsRejectedCleanlyOrReadable()
    {
        byte[] valid = ValidFile();
        int headerEnd = 8 + BitConverter.ToInt32(valid, 0);
        FileFuzzer.Run(_temp.File("fuzz.safetensors"), valid, headerEnd, Iterations, 20250611, Mutate, path =>
        {
            using var file = SafeTensorsFile.Open(path);
            long sum = 0;
            foreach (var tensor in file.Tensors)
                foreach (byte b in file.GetData(tensor.Name).Span) sum += b; // every byte readable
            Assert.True(sum >= 0);
        }, minRejectedShare: 0.5);
    }

    /// <summary>One random corruption, mostly aimed at the prefix and header where parsing happens.</summary>
    private static byte[] Mutate(byte[] valid, int headerEnd, Random rng, out string mutation)
    {
        byte[] bytes = (byte[])valid.Clone();
        int position = rng.Next(4) == 0 ? rng.Next(bytes.Length) : rng.Next(headerEnd);
        int choice = rng.Next(8);
        if (choice < FileFuzzer.SharedCount) return FileFuzzer.Shared(choice, bytes, position, headerEnd, rng, out mutation);
        switch (choice)
        {
            case 3:
                bytes[rng.Next(8)] = (byte)rng.Next(256);
                mutation = "random byte in the length prefix";
                return bytes;
            case 4:
                // A digit changed inside the JSON: shapes and offsets that lie.
                int digit = Array.FindIndex(bytes, 8 + rng.Next(headerEnd - 8), b => b is >= (byte)'0' and <= (byte)'9');
                if (digit < 0 || digit >= headerEnd) return FileFuzzer.Shared(0, bytes, position, headerEnd, rng, out mutation); // no digit left: flip a bit
                bytes[digit] = (byte)('0' + rng.Next(10));
                mutation = $"digit at {digit}";
                return bytes;
            case 5:
                // A structural character replaced by another one.
                const string structural = "{}[]\",:-.e0 \\";
                bytes[8 + rng.Next(headerEnd - 8)] = (byte)structural[rng.Next(structural.Length)];
                mutation = "structural character";
                return bytes;
            case 6:
                mutation = $"append {position % 17} bytes";
                return [.. bytes, .. new byte[position % 17]];
            default:
                // Delete one header byte and fix up the length prefix so the parse gets past the length checks.
                int cut = 8 + rng.Next(headerEnd - 8);
                byte[] shorter = [.. bytes[..cut], .. bytes[(cut + 1)..]];
                BitConverter.TryWriteBytes(shorter, (ulong)(headerEnd - 9));
                mutation = $"delete header byte {cut}";
                return shorter;
        }
    }

    [Fact]
    public void RandomIndexCorruptionIsRejectedCleanly()
    {
        var tensors = SafeTensorsWriterTests.EveryDType(5);
        SafeTensorsWriter.WriteSharded(_temp.Path, tensors, maxShardBytes: 100);
        string indexPath = _temp.File("model.safetensors.index.json");
        byte[] valid = File.ReadAllBytes(indexPath);
        var rng = new Random(20250612);
        for (int iteration = 0; iteration < 200; iteration++)
        {
            byte[] bytes = (byte[])valid.Clone();
            int edits = rng.Next(1, 4);
            for (int i = 0; i < edits; i++) bytes[rng.Next(bytes.Length)] = (byte)"{}[]\",:x0 \\/."[rng.Next(13)];
            File.WriteAllBytes(indexPath, bytes);
            try
            {
                TensorStore.Open(_temp.Path).Dispose();
            }
            catch (Exception e) when (e is InvalidDataException or FileNotFoundException)
            {
                Assert.DoesNotContain('\n', e.Message);
            }
            catch (Exception e)
            {
                Assert.Fail($"iteration {iteration}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
        }
    }
}
