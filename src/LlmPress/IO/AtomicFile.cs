using System.Text;

namespace LlmPress.IO;

/// <summary>
/// Writes files so that a reader sees either the old file or the complete new one, never a partial file: the content goes
/// to "&lt;path&gt;.tmp-&lt;random&gt;" in the same directory (so the rename stays on one file system), is flushed to disk,
/// then renamed over <c>path</c>. If writing fails, the temporary file is deleted and <c>path</c> is untouched.
/// The directory itself is not fsynced, so after a power cut the rename may be lost (the old file remains), but a
/// partial file never appears at <c>path</c>.
/// </summary>
public static class AtomicFile
{
    private static readonly UTF8Encoding s_utf8NoBom = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>Writes <paramref name="contents"/> as UTF-8 without a byte-order mark.</summary>
    public static void WriteAllText(string path, string contents)
    {
        ArgumentNullException.ThrowIfNull(contents);
        Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, s_utf8NoBom, bufferSize: 1 << 16, leaveOpen: true);
            writer.Write(contents);
        });
    }

    /// <summary>
    /// Calls <paramref name="write"/> with a stream to the temporary file, then flushes and renames it over
    /// <paramref name="path"/>. <paramref name="write"/> must not dispose the stream.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The target directory does not exist.</exception>
    /// <param name="durable">
    /// True (default): fsync the content before the rename, so it survives a power cut. False: leave it to the OS, for
    /// large files that are checksummed anyway — still atomic against a killed process, which is what a rename gives.
    /// </param>
    public static void Write(string path, Action<Stream> write, bool durable = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        string fullPath = Path.GetFullPath(path);
        string tempPath = $"{fullPath}.tmp-{Path.GetRandomFileName().Replace(".", "", StringComparison.Ordinal)}";
        try
        {
            using (var stream = new FileStream(tempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: durable);
            }
            File.Move(tempPath, fullPath, overwrite: true);
        }
        catch
        {
            TryDelete(tempPath);
            throw;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Best effort: the original exception matters more than a leftover temporary file.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
