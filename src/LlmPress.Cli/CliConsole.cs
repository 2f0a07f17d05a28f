using System.CommandLine;
using System.Text.Json;
using LlmPress.Numerics;
using Spectre.Console;

namespace LlmPress.Cli;

/// <summary>
/// Where a command writes: results to <see cref="Out"/> (a table, or JSON with --json), progress and logs to
/// <see cref="Error"/>. Progress bars appear only when stderr is a terminal.
/// </summary>
internal sealed class CliConsole(TextWriter output, TextWriter error)
{
    public TextWriter Out { get; } = output;
    public TextWriter Error { get; } = error;

    /// <summary>True when stderr is the process's own, interactive console.</summary>
    public bool ErrorIsTerminal => ReferenceEquals(Error, Console.Error) && !Console.IsErrorRedirected;

    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true };

    public void WriteJson(object value) => Out.WriteLine(JsonSerializer.Serialize(value, s_json));

    /// <summary>Prints rows of (name, value) as an aligned two-column table.</summary>
    public void WriteTable(string title, IEnumerable<(string Name, string Value)> rows)
    {
        var list = rows.ToList();
        int width = list.Count == 0 ? 0 : list.Max(r => r.Name.Length);
        Out.WriteLine(title);
        foreach (var (name, value) in list)
            Out.WriteLine($"  {name.PadRight(width)}  {value}");
    }

    public void Log(string message) => Error.WriteLine(message);

    /// <summary>
    /// Runs <paramref name="work"/> with a progress callback (done units). On a terminal it draws a bar with
    /// percentage and ETA on stderr; otherwise the callback does nothing.
    /// </summary>
    public T WithProgress<T>(string description, int total, Func<Action<int>, T> work)
    {
        if (!ErrorIsTerminal || total <= 1) return work(_ => { });
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        T result = default!;
        console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(description, maxValue: total);
                result = work(done => task.Value = done);
            });
        return result;
    }

    /// <summary>
    /// Runs a verb's body with the global options applied, turning failures into one line on stderr and exit
    /// code 1 (the stack trace with --verbose).
    /// </summary>
    public int Guard(ParseResult parse, Func<int> body)
    {
        bool verbose = parse.GetValue(GlobalOptions.Verbose);
        int? savedThreads = null;
        bool? savedInt8 = null;
        try
        {
            if (parse.GetValue(GlobalOptions.ExactDecode))
            {
                // Process-wide, so that threads the verb starts (serve's request handlers) see it too.
                savedInt8 = LlmPress.Models.DecodeActivations.Int8;
                LlmPress.Models.DecodeActivations.Int8 = false;
            }
            if (parse.GetValue(GlobalOptions.Threads) is { } threads)
            {
                if (threads < 1) throw new ArgumentException($"--threads must be at least 1, not {threads}.");
                savedThreads = Parallelism.MaxThreads;
                Parallelism.MaxThreads = threads;
            }
            return body();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Error.WriteLine(verbose ? $"error: {e}" : $"error: {Describe(e)}");
            return 1;
        }
        finally
        {
            if (savedThreads is { } t) Parallelism.MaxThreads = t;
            if (savedInt8 is { } int8) LlmPress.Models.DecodeActivations.Int8 = int8;
        }
    }

    private static string Describe(Exception e) => e switch
    {
        FileNotFoundException or DirectoryNotFoundException or InvalidDataException or ArgumentException
            or NotSupportedException or CliException => e.Message,
        _ => $"{e.GetType().Name}: {e.Message} (run with --verbose for the stack trace)",
    };
}

/// <summary>A user-facing failure whose message is the whole story.</summary>
internal sealed class CliException(string message) : Exception(message);
