using LlmPress.IO;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Cli.Commands;

/// <summary>
/// The output side of a journaled compression verb (`quantize`, `prune`): -o checks, --force/--resume, the journal,
/// Ctrl+C, and cleaning up after a failure.
/// </summary>
internal static class JournaledRun
{
    /// <summary>--max-memory's value in bytes (null when not given).</summary>
    internal static long? ParseMemory(string? text)
    {
        if (text is null) return null;
        if (!ByteSize.TryParse(text, out long bytes))
            throw new CliException($"--max-memory: '{text}' is not a memory size; use e.g. 4G, 1500M or a number of bytes.");
        return bytes;
    }

    /// <summary>
    /// Checks -o against --force/--resume/--dry-run before any work. Returns whether the output and its journal exist.
    /// </summary>
    public static (bool OutputExists, bool JournalExists) CheckOutput(string modelPath, string outputPath, bool force, bool resume, bool dryRun)
    {
        if (force && resume) throw new CliException("--force and --resume exclude each other: --force starts over, --resume continues.");
        string fullOutput = Path.GetFullPath(outputPath);
        if (Directory.Exists(modelPath) && Path.GetFullPath(modelPath).TrimEnd('/') == fullOutput.TrimEnd('/'))
            throw new CliException($"{outputPath}: the output directory is the input model; choose another -o directory.");
        bool outputExists = Directory.Exists(outputPath) || File.Exists(outputPath);
        bool journalExists = QuantizationJournal.Exists(outputPath);
        if (File.Exists(outputPath) && !dryRun)
            throw new CliException($"{outputPath}: is a file; -o names the directory to write.");
        if (outputExists && !force && !resume && !dryRun)
            throw new CliException(journalExists
                ? $"{outputPath}: holds an unfinished run's journal; pass --resume to continue it or --force to start over."
                : $"{outputPath}: output already exists; choose another -o directory or pass --force to replace it.");
        return (outputExists, journalExists);
    }

    /// <summary>The dry run's warning when the real run would be refused.</summary>
    public static void WarnDryRun(CliConsole console, string outputPath, bool outputExists, bool journalExists, bool force, bool resume)
    {
        if (outputExists && !force && !resume)
            console.Log(journalExists
                ? $"warning: {outputPath} holds an unfinished run's journal; the real run needs --resume or --force."
                : $"warning: {outputPath} exists; the real run needs another -o directory or --force.");
    }

    /// <summary>Opens the journal to resume, or starts a new one.</summary>
    public static QuantizationJournal OpenJournal(CliConsole console, string outputPath, RunFingerprint fingerprint, bool resume, bool journalExists, int layerCount)
    {
        if (resume && journalExists)
        {
            var journal = QuantizationJournal.Open(outputPath, fingerprint);
            console.Log($"resuming {outputPath}: {journal.FinishedLayers} of {layerCount} layers already done");
            return journal;
        }
        if (resume) console.Log($"{outputPath}: no journal to resume; starting from the first layer");
        return QuantizationJournal.Create(outputPath, fingerprint);
    }

    /// <summary>
    /// Runs <paramref name="run"/> (given the run settings and a layers-done callback) with a progress bar and Ctrl+C
    /// handling: Ctrl+C stops between calibration passes and leaves the journal resumable; a second Ctrl+C kills at
    /// once (the journal stays consistent either way). A failure with nothing worth resuming removes every trace.
    /// </summary>
    public static T Execute<T>(CliConsole console, QuantizationJournal journal, string outputPath, bool outputExists, int layerCount,
        string description, long? maxMemory, Func<QuantizationRunSettings, Action<int>, T> run)
    {
        using var interrupt = new CancellationTokenSource();
        int finished = journal.FinishedLayers;
        void OnCancel(object? sender, ConsoleCancelEventArgs e)
        {
            if (interrupt.IsCancellationRequested) return;
            e.Cancel = true;
            interrupt.Cancel();
            console.Log("interrupt: stopping; finished layers stay in the journal (Ctrl+C again to kill now)");
        }
        Console.CancelKeyPress += OnCancel;
        try
        {
            var settings = new QuantizationRunSettings { Journal = journal, MaxMemoryBytes = maxMemory, CancellationToken = interrupt.Token };
            return console.WithProgress(description, layerCount, report => run(settings, done => { finished = done; report(done); }));
        }
        catch (OperationCanceledException)
        {
            throw new CliException($"interrupted after {finished} of {layerCount} layers; {outputPath} keeps their journal: "
                                   + "run the same command with --resume to continue.");
        }
        catch (Exception e) when (journal.FinishedLayers == 0 || e is ArgumentException || e is NotSupportedException)
        {
            // Nothing worth resuming — no layer finished, or the input itself is bad (a compression failure names the
            // layer; a rerun would fail the same way): leave no trace of this run (an output directory we created goes
            // too). Anything else (I/O, memory) keeps the journal for --resume.
            try
            {
                Directory.Delete(journal.Directory, recursive: true);
                if (!outputExists) Directory.Delete(outputPath);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            throw;
        }
        finally
        {
            Console.CancelKeyPress -= OnCancel;
        }
    }
}
