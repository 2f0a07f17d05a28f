using System.CommandLine;
using LlmPress.Cli.Commands;

namespace LlmPress.Cli;

/// <summary>The llmpress command line: one verb per command class, shared --verbose/--threads, uniform errors.</summary>
public static class CliApp
{
    /// <summary>Parses and runs <paramref name="args"/>; results go to <paramref name="output"/>, diagnostics to <paramref name="error"/>.</summary>
    /// <returns>The process exit code: 0 on success, 1 on any error.</returns>
    public static int Run(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        var console = new CliConsole(output ?? Console.Out, error ?? Console.Error);
        var root = new RootCommand("LlmPress: load, evaluate, compress and export Llama-family language models on the CPU.");
        root.Options.Add(GlobalOptions.Verbose);
        root.Options.Add(GlobalOptions.Threads);
        root.Options.Add(GlobalOptions.ExactDecode);
        root.Subcommands.Add(InspectCommand.Create(console));
        root.Subcommands.Add(EvalCommand.Create(console));
        root.Subcommands.Add(GenerateCommand.Create(console));
        root.Subcommands.Add(BenchCommand.Create(console));
        root.Subcommands.Add(QuantizeCommand.Create(console));
        root.Subcommands.Add(PruneCommand.Create(console));
        root.Subcommands.Add(LevelsCommand.Create(console));
        root.Subcommands.Add(SearchCommand.Create(console));
        root.Subcommands.Add(ExportCommand.Create(console));
        root.Subcommands.Add(ServeCommand.Create(console));
        var parse = root.Parse(args);
        return parse.Invoke(new InvocationConfiguration
        {
            Output = console.Out,
            Error = console.Error,
            EnableDefaultExceptionHandler = false,
        });
    }
}
