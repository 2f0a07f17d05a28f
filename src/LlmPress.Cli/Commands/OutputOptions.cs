using System.CommandLine;

namespace LlmPress.Cli.Commands;

/// <summary>Output and run options shared by `quantize` and `prune`.</summary>
internal sealed class OutputOptions
{
    public Option<string> Output { get; } = new("--output", "-o") { Description = "Directory to write (must not exist unless --force or --resume). While the run is in progress it holds only a journal of the finished layers (.llmpress-journal); the model appears when the run is complete.", Required = true };
    public Option<string[]> Keep { get; } = new("--keep")
    {
        Description = "Regular expression over module names (e.g. 'layers\\.0\\.' or 'down_proj'): matching linears stay as stored. "
            + "Repeatable. Embeddings and lm_head always stay as stored.",
        AllowMultipleArgumentsPerToken = false,
    };
    public Option<bool> Force { get; } = new("--force") { Description = "Replace an existing output directory, discarding any unfinished run's journal in it." };
    public Option<bool> Resume { get; } = new("--resume")
    {
        Description = "Continue an interrupted run from the journal in the output directory: finished layers are reused and the result is "
                      + "bit-identical to an uninterrupted run. The settings must match the interrupted run's (a mismatch is an error). "
                      + "Without a journal the run starts from the first layer; on a finished output it does nothing.",
    };
    public Option<string?> MaxMemory { get; } = new("--max-memory")
    {
        Description = "Memory budget, e.g. 4G or 1500M (K/M/G/T, binary). Calibration activations that do not fit beside one layer's working set "
                      + "are spilled to a file in the output directory (same result, more disk I/O). The memory-mapped model is not counted. "
                      + "Default: no limit, everything in RAM.",
    };
    public Option<bool> Json { get; } = new("--json") { Description = "Print the report (as in report.json) as JSON on stdout." };
    public Option<bool> DryRun { get; } = new("--dry-run")
    {
        Description = "Print the plan (layers, formats, output size, estimated peak memory and time) and stop before any work; nothing is written.",
    };
}
