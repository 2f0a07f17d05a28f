using LlmPress.Quantization.Pipeline;

namespace LlmPress.Tests.Quantization.Pipeline;

/// <summary>RAM and spill-file stores hold exactly what was written, slot by slot, in any order.</summary>
public class ActivationStoreTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SlotsRoundTripExactly(bool spill)
    {
        using var dir = new TempDirectory();
        using var store = ActivationStore.Create(5, 1000, spill, dir.Path);
        Assert.Equal(spill, store.IsSpilled);
        Assert.Equal(5L * 1000 * 4, store.Bytes);
        var random = new Random(3);
        var written = new float[5][];
        foreach (int s in new[] { 3, 0, 4, 1, 2 }) // out of order: slots are independent
        {
            written[s] = new float[s == 2 ? 600 : 1000]; // a shorter write fills the start of the slot
            for (int i = 0; i < written[s].Length; i++) written[s][i] = (float)random.NextDouble() - 0.5f;
            written[s][0] = float.NaN;
            store.Write(s, written[s]);
        }
        store.Write(1, written[1]); // rewriting a slot keeps it exact
        for (int s = 0; s < 5; s++)
        {
            var read = new float[written[s].Length];
            store.Read(s, read);
            Assert.True(read.AsSpan().SequenceEqual(written[s]), $"slot {s}"); // bit-exact (NaN included)
        }
    }

    [Fact]
    public void SpillFileIsDeletedOnDispose()
    {
        using var dir = new TempDirectory();
        var store = (DiskActivationStore)ActivationStore.Create(2, 10, spill: true, dir.Path);
        store.Write(1, new float[10]);
        Assert.True(File.Exists(store.FilePath));
        Assert.StartsWith(DiskActivationStore.FilePrefix, Path.GetFileName(store.FilePath));
        store.Dispose();
        Assert.False(File.Exists(store.FilePath));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void OutOfRangeSlotsAndOverlongWritesAreRefused(bool spill)
    {
        using var dir = new TempDirectory();
        using var store = ActivationStore.Create(2, 10, spill, dir.Path);
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Write(2, new float[10]));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Write(-1, new float[10]));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Write(0, new float[11]));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Read(0, new float[11]));
    }
}
