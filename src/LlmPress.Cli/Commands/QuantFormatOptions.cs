using System.CommandLine;
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
