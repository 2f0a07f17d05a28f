namespace LlmPress.Tests;

/// <summary>
/// Seeded random corruption of a valid file for the readers' fuzz tests: each iteration writes one mutation to a path
/// and runs the reader, which must accept it or throw <see cref="InvalidDataException"/> with one line that starts with
/// the path; any other exception is a validation bug.
/// </summary>
internal static class FileFuzzer
{
    /// <summary>A format's corruption of <paramref name="valid"/> (header bytes 0 .. headerEnd − 1), described for failure messages.</summary>
    public delegate byte[] Mutation(byte[] valid, int headerEnd, Random rng, out string description);

    /// <summary>Mutations 0 .. Shared − 1 of <see cref="Shared"/>: the same for every format.</summary>
    public const int SharedCount = 3;

    /// <summary>Runs <paramref name="iterations"/> mutations through <paramref name="read"/>.</summary>
    /// <param name="path">Where each mutated file is written.</param>
    /// <param name="minRejectedShare">Fewer rejections than this share means the mutations are too mild to test much.</param>
    public static void Run(string path, byte[] valid, int headerEnd, int iterations, int seed, Mutation mutate, Action<string> read, double minRejectedShare)
    {
        var rng = new Random(seed);
        int accepted = 0, rejected = 0;
        for (int iteration = 0; iteration < iterations; iteration++)
        {
            byte[] bytes = mutate(valid, headerEnd, rng, out string mutation);
            File.WriteAllBytes(path, bytes);
            try
            {
                read(path);
                accepted++;
            }
            catch (InvalidDataException e)
            {
                Assert.StartsWith(path + ": ", e.Message);
                Assert.DoesNotContain('\n', e.Message);
                rejected++;
            }
            catch (Exception e)
            {
                Assert.Fail($"iteration {iteration} ({mutation}): {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
        }
        Assert.True(rejected > iterations * minRejectedShare, $"only {rejected} of {iterations} corruptions were rejected");
        Assert.True(accepted > 0, "no mutation survived; the fuzzer only exercises the first checks");
    }

    /// <summary>
    /// Shared mutation <paramref name="choice"/> (0 .. <see cref="SharedCount"/> − 1) of <paramref name="bytes"/> (a copy,
    /// changed in place or cut): a flipped bit at <paramref name="position"/>, 1–4 random header bytes, or truncation there.
    /// </summary>
    public static byte[] Shared(int choice, byte[] bytes, int position, int headerEnd, Random rng, out string mutation)
    {
        switch (choice)
        {
            case 0:
                bytes[position] ^= (byte)(1 << rng.Next(8));
                mutation = $"flip a bit at {position}";
                return bytes;
            case 1:
                int count = rng.Next(1, 5);
                for (int i = 0; i < count; i++) bytes[rng.Next(headerEnd)] = (byte)rng.Next(256);
                mutation = $"{count} random header bytes";
                return bytes;
            case 2:
                mutation = $"truncate to {position}";
                return bytes[..position];
            default:
                throw new ArgumentOutOfRangeException(nameof(choice), choice, $"Shared mutations are 0 .. {SharedCount - 1}.");
        }
    }
}
