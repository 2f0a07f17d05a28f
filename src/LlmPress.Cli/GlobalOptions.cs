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

    public static readonly Option<bool> ExactDecode = new("--exact-decode")
    {
        Description = "Decode steps (one token) with packed weights take the activations in exact FP32 instead of quantized: int8 per "
            + "32 columns for 4-bit weights (INT4, MXFP4, NVFP4; ~2x faster decode on AVX-512), int16 per 128 columns for INT8 (default: "
            + "quantized; prompts, prefill and perplexity are always exact).",
        Recursive = true,
    };

    public static readonly Option<int?> Threads = new("--threads")
    {
        Description = "Threads the kernels may use (default: all processor cores). Results are identical for any count.",
        Recursive = true,
    };
}
