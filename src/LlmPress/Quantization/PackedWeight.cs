using System.Runtime.InteropServices;

namespace LlmPress.Quantization;

/// <summary>
/// A quantized weight matrix: its <see cref="QuantFormat"/>, the logical shape [Rows, Cols] and the named arrays a
/// checkpoint stores (<see cref="Tensors"/>: "qweight", "scales", and per format "qzeros", "global_scale" or "grid";
/// the layouts are documented at the top of IntFormat.cs, Mxfp4Format.cs, Nvfp4Format.cs and HiggsFormat.cs).
/// Round trip: <see cref="FromTensors"/>(Format, Rows, Cols, Tensors) gives back an identical weight.
/// </summary>
/// <remarks>
/// With a rotation (HIGGS, or MR-GPTQ's optional one), the tensors hold the rotated, padded matrix
/// [Rows, <see cref="StoredColumns"/>]: <see cref="DequantizeStored()"/> returns that basis (what a kernel multiplying
/// by rotated activations uses, and what <see cref="ColumnQuantizer.QuantizeColumns"/> returned), and
/// <see cref="Dequantize()"/> rotates back to the original basis [Rows, Cols].
/// </remarks>
public sealed class PackedWeight
{
    private readonly PackedTensor[] _tensors;

    internal PackedWeight(QuantFormat format, int rows, int cols, PackedTensor[] tensors)
    {
        Format = format;
        Rows = rows;
        Cols = cols;
        _tensors = tensors;
    }

    public QuantFormat Format { get; }

    /// <summary>Output features.</summary>
    public int Rows { get; }

    /// <summary>Input features of the original matrix.</summary>
    public int Cols { get; }

    /// <summary>Columns of the stored matrix: <see cref="Cols"/> padded to the rotation block (equal without rotation).</summary>
    public int StoredColumns => Format.StoredColumns(Cols);

    /// <summary>Columns per scale group (per channel: <see cref="StoredColumns"/>).</summary>
    public int GroupSize => Format.EffectiveGroupSize(Cols);

    /// <summary>Scale groups per row.</summary>
    public int GroupCount => Format.GroupCount(Cols);

    /// <summary>The stored arrays, in a fixed order (qweight, scales, then qzeros / global_scale / grid).</summary>
    public IReadOnlyList<PackedTensor> Tensors => _tensors;

    /// <summary>Total bytes of all tensors.</summary>
    public long StorageBytes
    {
        get
        {
            long total = 0;
            foreach (var t in _tensors) total += t.Data.LongLength;
            return total;
        }
    }

    /// <summary>Actual storage bits per original weight: 8·StorageBytes / (Rows·Cols), everything included.</summary>
    public double BitsPerWeight => StorageBytes * 8.0 / ((double)Rows * Cols);

    /// <summary>The tensor with this suffix.</summary>
    /// <exception cref="KeyNotFoundException">The format has no such tensor.</exception>
    public PackedTensor GetTensor(string suffix)
    {
        foreach (var t in _tensors)
            if (t.Suffix == suffix) return t;
        throw new KeyNotFoundException($"{Format}: no tensor '{suffix}'; this format stores {string.Join(", ", _tensors.Select(t => t.Suffix))}.");
    }

    // ---- per-(row, group) parameters, for exporters ----

    /// <summary>
    /// The scale elements of (row, group) are multiplied by: INT the FP16 scale; MXFP4 2^e; NVFP4 E4M3/g; HIGGS the
    /// block's FP16 scale (the grid is in units of it).
    /// </summary>
    public float GetScale(int row, int group)
    {
        CheckRowGroup(row, group);
        var scales = GetTensor("scales");
        int perRow = (int)scales.Shape[1];
        switch (Format.Kind)
        {
            case QuantKind.Int:
                return (float)MemoryMarshal.Cast<byte, Half>(scales.Data.AsSpan())[row * perRow + group];
            case QuantKind.Mxfp4:
                return E8M0.Decode(scales.Data[row * perRow + group]);
            case QuantKind.Nvfp4:
                return Nvfp4Format.EffectiveScale(scales.Data[row * perRow + group], GlobalScale);
            default:
                int index = row * perRow + group * (GroupSize / Format.HiggsScaleColumns);
                return (float)MemoryMarshal.Cast<byte, Half>(scales.Data.AsSpan())[index];
        }
    }

    /// <summary>The integer zero point of (row, group): stored for asymmetric INT, 2^(b−1) for symmetric INT, 0 otherwise.</summary>
    public int GetZero(int row, int group)
    {
        CheckRowGroup(row, group);
        if (Format.Kind != QuantKind.Int) return 0;
        if (Format.Symmetric) return 1 << (Format.Bits - 1);
        var zeros = GetTensor("qzeros");
        int bytes = (int)zeros.Shape[1];
        return BitPacking.Read(zeros.Data.AsSpan(row * bytes, bytes), Format.Bits, group);
    }

    /// <summary>NVFP4's per-tensor global scale g (1 for the other formats).</summary>
    public float GlobalScale => Format.Kind == QuantKind.Nvfp4 ? Nvfp4Format.GlobalScale(this) : 1f;

    /// <summary>
    /// All codes, one per byte, [Rows, StoredColumns / ColumnsPerStep]: element codes (INT, E2M1) or HIGGS vector indices.
    /// </summary>
    public byte[] UnpackCodes()
    {
        int perRow = StoredColumns / Format.ColumnsPerStep;
        var qweight = GetTensor("qweight");
        int rowBytes = (int)qweight.Shape[1];
        var codes = new byte[(long)Rows * perRow];
        for (int r = 0; r < Rows; r++)
            BitPacking.Unpack(qweight.Data.AsSpan(r * rowBytes, rowBytes), Format.CodeBits, codes.AsSpan(r * perRow, perRow));
        return codes;
    }

    /// <summary>Scales of every (row, group), [Rows, GroupCount] (see <see cref="GetScale"/>).</summary>
    public float[] UnpackScales()
    {
        var scales = new float[(long)Rows * GroupCount];
        for (int r = 0; r < Rows; r++)
            for (int g = 0; g < GroupCount; g++)
                scales[(long)r * GroupCount + g] = GetScale(r, g);
        return scales;
    }

    /// <summary>Zero points of every (row, group), [Rows, GroupCount] (see <see cref="GetZero"/>).</summary>
    public byte[] UnpackZeros()
    {
        var zeros = new byte[(long)Rows * GroupCount];
        for (int r = 0; r < Rows; r++)
            for (int g = 0; g < GroupCount; g++)
                zeros[(long)r * GroupCount + g] = (byte)GetZero(r, g);
        return zeros;
    }

    // ---- dequantization ----

    /// <summary>FP32 [Rows, Cols] in the original basis (rotated back when the format rotates).</summary>
    public float[] Dequantize()
    {
        var stored = DequantizeStored();
        if (Format.RotationBlockSize is not int b) return stored;
        var result = new float[(long)Rows * Cols];
        BlockRotation.RotateBack(stored, Rows, StoredColumns, b, Cols, result);
        return result;
    }

    /// <summary>Writes <see cref="Dequantize()"/> into <paramref name="destination"/> ([Rows, Cols]).</summary>
    public void Dequantize(Span<float> destination)
    {
        if (destination.Length != (long)Rows * Cols) QuantThrow.Argument_DestinationTooShort(nameof(destination), (long)Rows * Cols, destination.Length);
        Dequantize().CopyTo(destination);
    }

    /// <summary>FP32 [Rows, StoredColumns] in the stored (rotated, padded) basis; equal to <see cref="Dequantize()"/> without rotation.</summary>
    public float[] DequantizeStored()
    {
        var result = new float[(long)Rows * StoredColumns];
        switch (Format.Kind)
        {
            case QuantKind.Int: IntFormat.DequantizeStored(this, result); break;
            case QuantKind.Mxfp4: Mxfp4Format.DequantizeStored(this, result); break;
            case QuantKind.Nvfp4: Nvfp4Format.DequantizeStored(this, result); break;
            default: HiggsFormat.DequantizeStored(this, result); break;
        }
        return result;
    }

    // ---- reading back ----

    /// <summary>
    /// Rebuilds a packed weight from its tensors (as read from a checkpoint), checking names, dtypes, shapes, byte
    /// lengths and that every scale is finite. The arrays are used as they are, not copied.
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor is missing, unexpected, or has the wrong dtype, shape or length, or a scale is NaN/∞.</exception>
    public static PackedWeight FromTensors(QuantFormat format, int rows, int cols, IEnumerable<PackedTensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        var layout = Layout(format, rows, cols);
        var given = tensors.ToList();
        foreach (var t in given)
            if (Array.FindIndex(layout, l => l.Suffix == t.Suffix) < 0) QuantThrow.InvalidData_UnexpectedTensor(format, t.Suffix);
        var ordered = new PackedTensor[layout.Length];
        for (int i = 0; i < layout.Length; i++)
        {
            var l = layout[i];
            var t = given.Find(x => x.Suffix == l.Suffix);
            if (t is null) QuantThrow.InvalidData_MissingTensor(format, l.Suffix);
            if (t.DType != l.DType) QuantThrow.InvalidData_TensorDType(format, l.Suffix, l.DType, t.DType);
            if (!t.Shape.AsSpan().SequenceEqual(l.Shape)) QuantThrow.InvalidData_TensorShape(format, l.Suffix, l.Shape, t.Shape);
            if (t.Data.LongLength != l.ByteLength) QuantThrow.InvalidData_TensorLength(format, l.Suffix, l.ByteLength, t.Data.LongLength);
            ordered[i] = t;
        }
        var weight = new PackedWeight(format, rows, cols, ordered);
        switch (format.Kind)
        {
            case QuantKind.Int: IntFormat.Validate(weight); break;
            case QuantKind.Mxfp4: Mxfp4Format.Validate(weight); break;
            case QuantKind.Nvfp4: Nvfp4Format.Validate(weight); break;
            default: HiggsFormat.Validate(weight); break;
        }
        return weight;
    }

    /// <summary>The suffixes, dtypes and shapes a format stores for a [rows, cols] matrix.</summary>
    internal static TensorLayout[] Layout(QuantFormat format, int rows, int cols) => format.Kind switch
    {
        QuantKind.Int => IntFormat.Layout(format, rows, cols),
        QuantKind.Mxfp4 => Mxfp4Format.Layout(format, rows, cols),
        QuantKind.Nvfp4 => Nvfp4Format.Layout(format, rows, cols),
        _ => HiggsFormat.Layout(format, rows, cols),
    };

    private void CheckRowGroup(int row, int group)
    {
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row), row, $"Row must be in [0, {Rows}).");
        if ((uint)group >= (uint)GroupCount) throw new ArgumentOutOfRangeException(nameof(group), group, $"Group must be in [0, {GroupCount}).");
    }
}
