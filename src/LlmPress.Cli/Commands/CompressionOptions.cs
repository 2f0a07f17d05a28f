using System.CommandLine;
using LlmPress.Calibration;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Cli.Commands;

/// <summary>
/// The quantization format options shared by `quantize` and `prune --quantize` (one definition each): the format
/// itself (named --format or --quantize), group size, symmetry, act-order, rotation block, scale search, NVFP4 scales.
/// </summary>
internal sealed class QuantFormatOptions
{
    public const string FormatList = "int4, int3, int2, int8, mxfp4, nvfp4, higgs4, higgs3, higgs2, or a canonical name such as int4-sym-g64";

    public QuantFormatOptions(string formatOption, string formatDescription)
    {
        Format = new Option<string?>(formatOption) { Description = formatDescription };
    }

    public Option<string?> Format { get; }
    public Option<int?> GroupSize { get; } = new("--group-size") { Description = "INT formats: input columns per scale group (default 128). MXFP4/NVFP4/HIGGS have fixed groups." };
    public Option<bool> Sym { get; } = new("--sym") { Description = "INT formats: symmetric grid, no stored zero points." };
    public Option<bool> Asym { get; } = new("--asym") { Description = "INT formats: asymmetric grid with zero points (the default)." };
    public Option<bool> ActOrder { get; } = new("--act-order") { Description = "GPTQ: quantize columns by decreasing Hessian diagonal (static groups). Always on for mr-gptq." };
    public Option<int?> RotationBlock { get; } = new("--rotation-block")
    {
        Description = "Hadamard block along each layer's input dimension (power of two). mr-gptq: default 32 for nvfp4 and mxfp4, "
            + "the group size for int; higgs: largest block, default 1024; rtn/gptq: adds a rotation (default none). "
            + "A layer whose width the block would pad by more than 1/8 gets the largest smaller block that does not.",
    };
    public Option<string?> ScaleSearch { get; } = Accepting(new Option<string?>("--scale-search")
    {
        Description = "How group scales are chosen: minmax, or mse (shrink search on |w−q|^2.4). Default mse for mr-gptq, minmax otherwise.",
    }, "minmax", "mse");
    public Option<bool> PerLayerScale { get; } = new("--nvfp4-per-layer-scale")
    {
        Description = "NVFP4: give every linear its own global scale. By default q/k/v share one and gate/up another (the smallest "
            + "of each group), as engines that fuse them (vLLM) require.",
    };

    public IEnumerable<Option> All => [Format, GroupSize, Sym, Asym, ActOrder, RotationBlock, ScaleSearch, PerLayerScale];

    /// <summary>True when any of these options was given on the command line.</summary>
    public bool AnyGiven(ParseResult parse) => All.Any(o => parse.GetResult(o) is { Implicit: false });

    /// <summary>The quantize options these give for <paramref name="method"/> (format <paramref name="formatName"/>); no keep list.</summary>
    public QuantizeOptions Resolve(ParseResult parse, QuantMethod method, string formatName)
    {
        var quantFormat = ResolveFormat(formatName, parse.GetValue(GroupSize), parse.GetValue(Sym), parse.GetValue(Asym));
        int? block = parse.GetValue(RotationBlock);
        if (block is int b && quantFormat.RotationBlockSize is int named && named != b && quantFormat.Kind != QuantKind.Higgs)
            throw new CliException($"--rotation-block {b} contradicts the format name {quantFormat.Name}; give the block once.");
        return new QuantizeOptions
        {
            Method = method,
            Format = quantFormat,
            ActOrder = parse.GetValue(ActOrder),
            RotationBlockSize = block,
            ScaleSearch = parse.GetValue(ScaleSearch) switch { "mse" => Quantization.ScaleSearch.Mse, "minmax" => Quantization.ScaleSearch.MinMax, _ => null },
            ShareNvfp4GlobalScale = !parse.GetValue(PerLayerScale),
        };
    }

    /// <summary>Maps --format / --group-size / --sym / --asym to a <see cref="QuantFormat"/>.</summary>
    internal static QuantFormat ResolveFormat(string name, int? groupSize, bool sym, bool asym)
    {
        if (sym && asym) throw new CliException("--sym and --asym exclude each other; pass one.");
        if (groupSize is < 1) throw new CliException($"--group-size must be at least 1, not {groupSize}.");
        int? bits = name switch { "int2" => 2, "int3" => 3, "int4" => 4, "int8" => 8, _ => null };
        if (bits is { } b) return QuantFormat.Int(b, groupSize ?? 128, symmetric: sym);
        if (!QuantFormat.TryParse(name, out var format))
            throw new CliException($"--format: unknown format '{name}'; expected {FormatList}.");
        if (format.Kind != QuantKind.Int && groupSize is not null)
            throw new CliException($"--group-size {groupSize}: {format.Name} has fixed groups of {format.GroupSize}; --group-size applies to int formats only.");
        if (format.Kind != QuantKind.Int && (sym || asym))
            throw new CliException($"--sym/--asym apply to int formats only, not {format.Name}.");
        if (format.Kind == QuantKind.Int && (groupSize is not null || sym || asym))
            throw new CliException($"--format {name} already fixes group size and symmetry; drop --group-size/--sym/--asym or use --format int{format.Bits}.");
        return format;
    }

    private static Option<string?> Accepting(Option<string?> option, params string[] values)
    {
        option.AcceptOnlyFromAmong(values);
        return option;
    }
}

/// <summary>Calibration options shared by `quantize` and `prune`.</summary>
internal sealed class CalibrationOptions
{
    public Option<string?> Calib { get; } = new("--calib") { Description = "Calibration text file (e.g. a slice of C4 or WikiText), tokenized once." };
    public Option<int> Samples { get; } = new("--calib-samples") { Description = "Calibration windows (default 128).", DefaultValueFactory = _ => 128 };
    public Option<int?> SeqLen { get; } = new("--calib-seq-len") { Description = "Tokens per calibration window (default 2048, capped at the model's max positions)." };
    public Option<int> Seed { get; } = new("--seed") { Description = "Seed for the calibration window offsets (default 0).", DefaultValueFactory = _ => 0 };

    public IEnumerable<Option> All => [Calib, Samples, SeqLen, Seed];

    /// <summary>Checks the values before any model is opened.</summary>
    public void Check(ParseResult parse)
    {
        string? calibPath = parse.GetValue(Calib);
        if (calibPath is not null && !File.Exists(calibPath)) throw new CliException($"{calibPath}: calibration file not found.");
        if (parse.GetValue(Samples) < 1) throw new CliException($"--calib-samples must be at least 1, not {parse.GetValue(Samples)}.");
        if (parse.GetValue(SeqLen) is < 1) throw new CliException($"--calib-seq-len must be at least 1, not {parse.GetValue(SeqLen)}.");
    }

    /// <summary>Window length for <paramref name="model"/>, or null without --calib.</summary>
    public int? Length(ParseResult parse, LlamaModel model) =>
        parse.GetValue(Calib) is null ? null : Math.Min(parse.GetValue(SeqLen) ?? 2048, model.Config.MaxPositions);

    /// <summary>The calibration windows, or null without --calib.</summary>
    public CalibrationData? Load(ParseResult parse, LlamaModel model, string modelPath)
    {
        if (parse.GetValue(Calib) is not { } calibPath) return null;
        var tokenizer = ModelSource.OpenTokenizer(modelPath);
        return CalibrationData.FromText(tokenizer, File.ReadAllText(calibPath), model.Config.BosTokenId ?? tokenizer.BosTokenId,
            parse.GetValue(Samples), Length(parse, model)!.Value, parse.GetValue(Seed), calibPath);
    }
}

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
