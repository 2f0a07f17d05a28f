using System.CommandLine;

namespace LlmPress.Cli;

/// <summary>Options every verb accepts.</summary>
internal static class GlobalOptions
{
    public static readonly Option<bool> Verbose = new("--verbose", "-v")
    {
        Description = "On failure, print the full stack trace instead of one line.",
        Recursive = true,
    };

    public static readonly Option<int?> Threads = new("--threads")
    {
        Description = "Threads the kernels may use (default: all processor cores). Results are identical for any count.",
        Recursive = true,
    };
}
