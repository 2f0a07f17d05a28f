using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Numerics;

namespace LlmPress.Quantization;

/// <summary>
/// Describes a weight number format: what is stored, not how its scales were chosen. Immutable, compared by value,
/// and named by a short canonical string (<see cref="Name"/>, <see cref="Parse"/>): "int4-asym-g128",
/// "int3-sym-perchannel", "mxfp4", "nvfp4-rot128", "higgs-p2-n256".
/// </summary>
/// <remarks>
/// Matrices are row-major [rows = output features, cols = input features]; groups run along the input dimension.
/// With a <see cref="RotationBlockSize"/> b, the stored matrix is W' = pad(W)·diag(H_b/√b, …) with [rows, StoredColumns]:
/// quantization methods work on W' (GPTQ needs the Hessian of the rotated inputs), <see cref="PackedWeight.Dequantize()"/>
/// rotates back. HIGGS always rotates (b = 1024 by default); for INT, MXFP4 and NVFP4 it is optional (MR-GPTQ).
/// </remarks>
public sealed record QuantFormat
{
    /// <summary>MXFP4 elements per E8M0 scale.</summary>
    public const int Mxfp4GroupSize = 32;
    /// <summary>NVFP4 elements per E4M3 scale.</summary>
    public const int Nvfp4GroupSize = 16;
    /// <summary>HIGGS stores one FP16 scale per 256 input columns (FLUTE layout), or per block when the block is smaller.</summary>
    public const int HiggsScaleGroupSize = 256;
    /// <summary>Smallest HIGGS rotation block: below 64 the rotated weights are too few to be near-Gaussian.</summary>
    public const int MinHiggsRotationBlockSize = 64;
    /// <summary>HIGGS' default Hadamard block (transformers' <c>hadamard_size</c>).</summary>
    public const int DefaultHiggsRotationBlockSize = 1024;

    private QuantFormat(QuantKind kind, int bits, int? groupSize, bool symmetric, int higgsDimension, int higgsGridSize, int? rotationBlockSize)
    {
        Kind = kind;
        Bits = bits;
        GroupSize = groupSize;
        Symmetric = symmetric;
        HiggsDimension = higgsDimension;
        HiggsGridSize = higgsGridSize;
        RotationBlockSize = rotationBlockSize;
    }

    public QuantKind Kind { get; }

    /// <summary>Bits per weight of the codes: b for INT, 4 for MXFP4/NVFP4, log2(n)/p for HIGGS.</summary>
    public int Bits { get; }

    /// <summary>
    /// Input columns that share one set of scale parameters. INT: the requested group size, null for one group per row
    /// (per channel); a group size ≥ the column count also means per channel. MXFP4 32, NVFP4 16. HIGGS: the rotation
    /// block (the scale is the RMS of a whole block; it is stored repeated per 256 columns).
    /// </summary>
    public int? GroupSize { get; }

    /// <summary>INT: symmetric grid (zero point 2^(b−1), not stored) or asymmetric (stored b-bit zero points). FP formats: true.</summary>
    public bool Symmetric { get; }

    /// <summary>HIGGS vector dimension p (1 or 2); 0 for other formats.</summary>
    public int HiggsDimension { get; }

    /// <summary>HIGGS grid points n; 0 for other formats.</summary>
    public int HiggsGridSize { get; }

    /// <summary>Block size of the Hadamard rotation along the input dimension, or null for none.</summary>
    public int? RotationBlockSize { get; }

    /// <summary>HIGGS: input columns per stored FP16 scale, min(256, rotation block); 0 for other formats.</summary>
    public int HiggsScaleColumns => Kind == QuantKind.Higgs ? Math.Min(HiggsScaleGroupSize, RotationBlockSize!.Value) : 0;

    /// <summary>Bits of one stored code: <see cref="Bits"/>, or log2(n) for a HIGGS vector of p weights.</summary>
    public int CodeBits => Kind == QuantKind.Higgs ? BitOperations.Log2((uint)HiggsGridSize) : Bits;

    /// <summary>Columns quantized jointly by <see cref="ColumnQuantizer.QuantizeColumns"/>: p for HIGGS, else 1.</summary>
    public int ColumnsPerStep => Kind == QuantKind.Higgs ? HiggsDimension : 1;

    // ---- factories ----

    /// <summary>b-bit integers (GPTQ's quantizer).</summary>
    /// <param name="bits">2 to 8 (2, 3, 4 and 8 are the usual widths; 5–7 serve per-layer level databases).</param>
    /// <param name="groupSize">Columns per group (≥ 1), or null for per channel (one group per row).</param>
    /// <param name="symmetric">Symmetric grid (zero point 2^(b−1), not stored) or asymmetric (b-bit zero points).</param>
    /// <param name="rotationBlockSize">Optional Hadamard block (power of two, 2..65536).</param>
    /// <exception cref="ArgumentException">Unsupported bits, group size ≤ 0, or a bad rotation block.</exception>
    public static QuantFormat Int(int bits, int? groupSize = null, bool symmetric = false, int? rotationBlockSize = null)
    {
        if (bits is < 2 or > 8) QuantThrow.Argument_IntBits(bits);
        if (groupSize is int g && g <= 0) QuantThrow.Argument_GroupSize(g);
        CheckRotation(rotationBlockSize, 2);
        return new QuantFormat(QuantKind.Int, bits, groupSize, symmetric, 0, 0, rotationBlockSize);
    }

    /// <summary>OCP MXFP4: E2M1 elements, an E8M0 scale per 32 (4.25 bits/weight).</summary>
    public static QuantFormat Mxfp4(int? rotationBlockSize = null)
    {
        CheckRotation(rotationBlockSize, 2);
        return new QuantFormat(QuantKind.Mxfp4, 4, Mxfp4GroupSize, true, 0, 0, rotationBlockSize);
    }

    /// <summary>NVFP4: E2M1 elements, an E4M3 scale per 16, an FP32 scale per tensor (4.5 bits/weight).</summary>
    public static QuantFormat Nvfp4(int? rotationBlockSize = null)
    {
        CheckRotation(rotationBlockSize, 2);
        return new QuantFormat(QuantKind.Nvfp4, 4, Nvfp4GroupSize, true, 0, 0, rotationBlockSize);
    }

    /// <summary>HIGGS with p-dimensional vectors and an n-point grid: (p, n) in (1, 4), (1, 8), (1, 16), (2, 16), (2, 64), (2, 256).</summary>
    /// <param name="dimension">p.</param>
    /// <param name="gridSize">n.</param>
    /// <param name="rotationBlockSize">Hadamard block, a power of two from 64 to 65536 (default 1024).</param>
    public static QuantFormat Higgs(int dimension, int gridSize, int rotationBlockSize = DefaultHiggsRotationBlockSize)
    {
        if (!HiggsGrid.IsSupported(dimension, gridSize)) QuantThrow.Argument_HiggsGrid(dimension, gridSize);
        CheckRotation(rotationBlockSize, MinHiggsRotationBlockSize);
        int bits = BitOperations.Log2((uint)gridSize) / dimension;
        return new QuantFormat(QuantKind.Higgs, bits, rotationBlockSize, true, dimension, gridSize, rotationBlockSize);
    }

    /// <summary>HIGGS 2-bit: p = 2, n = 16 (2.0625 bits/weight).</summary>
    public static QuantFormat Higgs2 { get; } = Higgs(2, 16);
    /// <summary>HIGGS 3-bit: p = 2, n = 64 (3.0625 bits/weight).</summary>
    public static QuantFormat Higgs3 { get; } = Higgs(2, 64);
    /// <summary>HIGGS 4-bit: p = 2, n = 256 (4.0625 bits/weight).</summary>
    public static QuantFormat Higgs4 { get; } = Higgs(2, 256);

    private static void CheckRotation(int? blockSize, int minimum)
    {
        if (blockSize is int b && (b < minimum || b > 65536 || !BitOperations.IsPow2(b)))
            QuantThrow.Argument_RotationBlock(b, minimum);
    }

    // ---- geometry ----

    /// <summary>This format with another rotation block (null: none; HIGGS always rotates).</summary>
    /// <exception cref="ArgumentException">The block is not a power of two in range for this format.</exception>
    public QuantFormat WithRotationBlock(int? blockSize) => Kind switch
    {
        QuantKind.Int => Int(Bits, GroupSize, Symmetric, blockSize),
        QuantKind.Mxfp4 => Mxfp4(blockSize),
        QuantKind.Nvfp4 => Nvfp4(blockSize),
        _ => Higgs(HiggsDimension, HiggsGridSize, blockSize ?? DefaultHiggsRotationBlockSize),
    };

    /// <summary>
    /// The format to use for a matrix of <paramref name="cols"/> input columns: a rotating format keeps its block when
    /// zero padding to it adds at most 1/8 to the row, else takes the largest smaller power of two that does (not below
    /// 64 for HIGGS, 16 otherwise, where it stops). A 1024-block on a 576-wide layer would store 1.8× the codes; 128
    /// pads it to 640. Formats without a rotation are returned as they are.
    /// </summary>
    public QuantFormat FitRotationTo(int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        if (RotationBlockSize is not int b) return this;
        int minimum = Math.Min(b, Kind == QuantKind.Higgs ? MinHiggsRotationBlockSize : 16);
        while (b > minimum && (long)BlockRotation.PaddedColumns(cols, b) * 8 > (long)cols * 9) b /= 2;
        return b == RotationBlockSize ? this : WithRotationBlock(b);
    }

    /// <summary>Columns of the stored matrix: <paramref name="cols"/> rounded up to the rotation block (unchanged without rotation).</summary>
    public int StoredColumns(int cols) =>
        RotationBlockSize is int b ? BlockRotation.PaddedColumns(cols, b) : cols;

    /// <summary>Columns per group for a matrix of <paramref name="cols"/> input columns (per channel: all stored columns).</summary>
    public int EffectiveGroupSize(int cols)
    {
        int stored = StoredColumns(cols);
        return GroupSize is int g ? Math.Max(1, Math.Min(g, stored)) : Math.Max(1, stored);
    }

    /// <summary>Groups per row; the last one is short when the group size does not divide the stored columns.</summary>
    public int GroupCount(int cols)
    {
        int stored = StoredColumns(cols);
        int g = EffectiveGroupSize(cols);
        return (stored + g - 1) / g;
    }

    /// <summary>
    /// Storage bits per weight of one row of <paramref name="cols"/> weights: codes plus the per-group scales (and zero
    /// points), counting padding columns and short last groups but not the byte rounding at row ends, NVFP4's 32-bit
    /// tensor scale or HIGGS' grid table (<see cref="PackedWeight.BitsPerWeight"/> counts everything).
    /// For aligned sizes: INT b + (16 + (asym ? b : 0))/g; MXFP4 4.25; NVFP4 4.5; HIGGS log2(n)/p + 16/min(256, block).
    /// </summary>
    public double BitsPerWeight(int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        int stored = StoredColumns(cols);
        double rowBits = Kind switch
        {
            QuantKind.Int => (double)stored * Bits + GroupCount(cols) * (16.0 + (Symmetric ? 0 : Bits)),
            QuantKind.Mxfp4 or QuantKind.Nvfp4 => (double)stored * 4 + GroupCount(cols) * 8.0,
            _ => (double)stored / HiggsDimension * CodeBits + stored / HiggsScaleColumns * 16.0,
        };
        return rowBits / cols;
    }

    // ---- names ----

    /// <summary>The canonical name, e.g. "int4-asym-g128", "int8-sym-perchannel", "mxfp4", "nvfp4-rot128", "higgs-p2-n256".</summary>
    public string Name
    {
        get
        {
            string name = Kind switch
            {
                QuantKind.Int => $"int{Bits}-{(Symmetric ? "sym" : "asym")}-{(GroupSize is int g ? "g" + g.ToString(CultureInfo.InvariantCulture) : "perchannel")}",
                QuantKind.Mxfp4 => "mxfp4",
                QuantKind.Nvfp4 => "nvfp4",
                _ => $"higgs-p{HiggsDimension}-n{HiggsGridSize}",
            };
            bool defaultRotation = Kind == QuantKind.Higgs && RotationBlockSize == DefaultHiggsRotationBlockSize;
            if (RotationBlockSize is int b && !defaultRotation) name += "-rot" + b.ToString(CultureInfo.InvariantCulture);
            return name;
        }
    }

    public override string ToString() => Name;

    /// <summary>Parses a canonical <see cref="Name"/>; also accepts "higgs2", "higgs3", "higgs4".</summary>
    /// <exception cref="ArgumentException">The text is not a format name.</exception>
    public static QuantFormat Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!TryParse(text, out var format)) QuantThrow.Argument_FormatName(text);
        return format;
    }

    public static bool TryParse(string? text, [NotNullWhen(true)] out QuantFormat? format)
    {
        format = null;
        if (string.IsNullOrEmpty(text)) return false;
        switch (text)
        {
            case "higgs2": format = Higgs2; return true;
            case "higgs3": format = Higgs3; return true;
            case "higgs4": format = Higgs4; return true;
        }
        var parts = text.Split('-');
        int? rotation = null;
        int count = parts.Length;
        if (count > 1 && parts[^1].StartsWith("rot", StringComparison.Ordinal))
        {
            if (!TryInt(parts[^1].AsSpan(3), out int r)) return false;
            rotation = r;
            count--;
        }
        try
        {
            if (parts[0].StartsWith("int", StringComparison.Ordinal) && count == 3)
            {
                if (!TryInt(parts[0].AsSpan(3), out int bits)) return false;
                bool symmetric;
                if (parts[1] == "sym") symmetric = true;
                else if (parts[1] == "asym") symmetric = false;
                else return false;
                int? group = null;
                if (parts[2] != "perchannel")
                {
                    if (!parts[2].StartsWith('g') || !TryInt(parts[2].AsSpan(1), out int g)) return false;
                    group = g;
                }
                format = Int(bits, group, symmetric, rotation);
            }
            else if (parts[0] == "mxfp4" && count == 1) format = Mxfp4(rotation);
            else if (parts[0] == "nvfp4" && count == 1) format = Nvfp4(rotation);
            else if (parts[0] == "higgs" && count == 3 && parts[1].StartsWith('p') && parts[2].StartsWith('n'))
            {
                if (!TryInt(parts[1].AsSpan(1), out int p) || !TryInt(parts[2].AsSpan(1), out int n)) return false;
                format = Higgs(p, n, rotation ?? DefaultHiggsRotationBlockSize);
            }
            return format is not null;
        }
        catch (ArgumentException)
        {
            format = null;
            return false;
        }
    }

    private static bool TryInt(ReadOnlySpan<char> s, out int value) =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value) && s.Length > 0 && s[0] != '0';

    // ---- quantization entry points ----

    /// <summary>
    /// Rounds every weight to the nearest point of this format (RTN), vectorized and parallel over rows; bit-identical
    /// to <see cref="QuantizeReference"/> and independent of the thread count.
    /// </summary>
    /// <param name="weights">[rows, cols] row-major, finite, in the original basis (rotated here when the format rotates).</param>
    /// <param name="rows">Output features.</param>
    /// <param name="cols">Input features.</param>
    /// <param name="search">How scales are chosen.</param>
    /// <exception cref="ArgumentException">Wrong length, a NaN/∞ weight (the message names row and column), scales out of range, or Mse for HIGGS.</exception>
    public PackedWeight Quantize(ReadOnlySpan<float> weights, int rows, int cols, ScaleSearch search = ScaleSearch.MinMax) =>
        QuantizeCore(weights, rows, cols, search, fast: true);

    /// <summary>The scalar, single-threaded reference of <see cref="Quantize"/> ("for deterministic creation of model files").</summary>
    public PackedWeight QuantizeReference(ReadOnlySpan<float> weights, int rows, int cols, ScaleSearch search = ScaleSearch.MinMax) =>
        QuantizeCore(weights, rows, cols, search, fast: false);

    internal PackedWeight QuantizeCore(ReadOnlySpan<float> weights, int rows, int cols, ScaleSearch search, bool fast, float? globalScale = null)
    {
        ValidateMatrix(weights, rows, cols);
        if (Kind == QuantKind.Higgs && search == ScaleSearch.Mse) QuantThrow.Argument_HiggsMse(this);
        float[]? rotated = RotationBlockSize is int b ? BlockRotation.Rotate(weights, rows, cols, b) : null;
        ReadOnlySpan<float> stored = rotated ?? weights;
        return Kind switch
        {
            QuantKind.Int => IntFormat.QuantizeStored(this, stored, rows, cols, search, fast),
            QuantKind.Mxfp4 => Mxfp4Format.QuantizeStored(this, stored, rows, cols, search, fast),
            QuantKind.Nvfp4 => Nvfp4Format.QuantizeStored(this, stored, rows, cols, search, globalScale, fast),
            _ => HiggsFormat.QuantizeStored(this, stored, rows, cols, fast),
        };
    }

    /// <summary>
    /// The matrix in the stored basis, [rows, <see cref="StoredColumns"/>]: zero-padded and rotated when the format has a
    /// rotation block, else a copy. This is the matrix GPTQ should process with <see cref="CreateColumnQuantizer"/>.
    /// The transform multiplies from the right, so the same call on calibration activations [tokens, cols] gives the
    /// rotated inputs whose Hessian GPTQ needs (x'·W'ᵀ = x·Wᵀ).
    /// </summary>
    public float[] ToStoredBasis(ReadOnlySpan<float> weights, int rows, int cols)
    {
        ValidateMatrix(weights, rows, cols);
        return RotationBlockSize is int b ? BlockRotation.Rotate(weights, rows, cols, b) : weights.ToArray();
    }

    /// <summary>
    /// A column-by-column quantizer for GPTQ-style methods (see <see cref="ColumnQuantizer"/>).
    /// </summary>
    /// <param name="rows">Output features.</param>
    /// <param name="cols">Input features of the original matrix (the quantizer works on <see cref="StoredColumns"/> columns).</param>
    /// <param name="storedWeights">
    /// The stored-basis matrix before any error feedback, [rows, StoredColumns(cols)]. NVFP4 derives its per-tensor global
    /// scale from it (<see cref="Nvfp4Format.CreateColumnQuantizer"/> takes a shared one instead); all formats check it is finite.
    /// </param>
    /// <param name="search">How group scales are chosen.</param>
    public ColumnQuantizer CreateColumnQuantizer(int rows, int cols, ReadOnlySpan<float> storedWeights, ScaleSearch search = ScaleSearch.MinMax)
    {
        ValidateMatrix(storedWeights, rows, StoredColumns(cols));
        return Kind switch
        {
            QuantKind.Int => new IntColumnQuantizer(this, rows, cols, search),
            QuantKind.Mxfp4 => new Fp4ColumnQuantizer<Mxfp4Format.Rule>(this, rows, cols, new Mxfp4Format.Rule(), search),
            QuantKind.Nvfp4 => Nvfp4Format.CreateColumnQuantizer(this, rows, cols, Nvfp4Format.ComputeGlobalScale(storedWeights), search),
            _ => search == ScaleSearch.Mse ? throw QuantThrow.HiggsMse(this) : new HiggsColumnQuantizer(this, rows, cols),
        };
    }

    internal void ValidateMatrix(ReadOnlySpan<float> weights, int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        if (weights.Length != (long)rows * cols) QuantThrow.Argument_MatrixLength(this, rows, cols, weights.Length);
        int bad = GroupRange.IndexOfNonFinite(weights);
        if (bad >= 0) QuantThrow.Argument_NonFinite(this, bad / cols, bad % cols, weights[bad]);
    }
}
