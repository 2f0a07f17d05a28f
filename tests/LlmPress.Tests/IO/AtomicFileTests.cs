using System.Text;
using LlmPress.IO;

namespace LlmPress.Tests.IO;

public sealed class AtomicFileTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void WriteAllTextWritesUtf8WithoutBomAndOverwrites()
    {
        string path = _temp.File("config.json");
        AtomicFile.WriteAllText(path, "first");
        AtomicFile.WriteAllText(path, "{\"name\": \"ü\"}");
        Assert.Equal(Encoding.UTF8.GetBytes("{\"name\": \"ü\"}"), File.ReadAllBytes(path));
        Assert.Equal(["config.json"], _temp.FileNames());
    }

    [Fact]
    public void WriteRenamesOverTheTargetOnlyAfterTheCallbackFinishes()
    {
        string path = _temp.File("report.txt");
        AtomicFile.Write(path, stream =>
        {
            stream.Write("partial"u8);
            Assert.False(File.Exists(path));
            string temp = Assert.Single(Directory.GetFiles(_temp.Path));
            Assert.StartsWith(path + ".tmp-", temp);
        });
        Assert.Equal("partial", File.ReadAllText(path));
        Assert.Equal(["report.txt"], _temp.FileNames());
    }

    [Fact]
    public void ExceptionMidwayLeavesNothingBehind()
    {
        string path = _temp.File("model.gguf");
        var error = Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[3 << 20]); // past the write buffer, so bytes reached the temporary file
            throw new InvalidOperationException("boom");
        }));
        Assert.Equal("boom", error.Message);
        Assert.Empty(_temp.FileNames());
    }

    [Fact]
    public void ExceptionMidwayKeepsTheOldContent()
    {
        string path = _temp.File("config.json");
        AtomicFile.WriteAllText(path, "old");
        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write("new"u8);
            throw new InvalidOperationException("boom");
        }));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal(["config.json"], _temp.FileNames());
    }

    [Fact]
    public void MissingDirectoryFailsWithoutCreatingAnything()
    {
        string path = System.IO.Path.Combine(_temp.Path, "no-such-dir", "x.json");
        Assert.Throws<DirectoryNotFoundException>(() => AtomicFile.WriteAllText(path, "x"));
        Assert.Empty(Directory.GetFileSystemEntries(_temp.Path));
    }
}
