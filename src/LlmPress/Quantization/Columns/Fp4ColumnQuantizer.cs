using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LlmPress.Quantization;

/// <summary>The MXFP4 / NVFP4 <see cref="ColumnQuantizer"/>: one scale code per (row, group), E2M1 codes per column.</summary>
internal sealed class Fp4ColumnQuantizer<TRule> : ColumnQuantizer where TRule : struct, IFp4ScaleRule
{
    private readonly TRule _rule;
    private readonly ScaleSearch _search;
    private readonly byte[][] _scaleCodes; // [group][row]
    private readonly float[][] _scales;    // [group][row] effective scale
    private readonly byte[] _codes;        // [Columns, Rows]

    public Fp4ColumnQuantizer(QuantFormat format, int rows, int cols, TRule rule, ScaleSearch search) : base(format, rows, cols)
    {
        _rule = rule;
        _search = search;
        _scaleCodes = new byte[GroupCount][];
        _scales = new float[GroupCount][];
        for (int g = 0; g < GroupCount; g++)
        {
            _scaleCodes[g] = new byte[rows];
            _scales[g] = new float[rows];
        }
        _codes = new byte[(long)Columns * rows];
    }

    /// <summary>NVFP4's global scale (set by the creator; 1 for MXFP4).</summary>
    public float GlobalScale { get; init; } = 1f;

    private protected override void ComputeGroupCore(int groupIndex, ReadOnlySpan<float> weights, int rowStride, int width)
    {
        byte[] codes = _scaleCodes[groupIndex];
        float[] scales = _scales[groupIndex];
        var rule = _rule;
        var search = _search;
        RowParallel.For(weights, Rows, (matrix, first, count) =>
        {
            for (int r = first; r < first + count; r++)
            {
                byte code = rule.ComputeScale(matrix.Slice(r * rowStride, width), search, vectorized: true);
                codes[r] = code;
                scales[r] = rule.EffectiveScale(code);
            }
        });
    }

    private protected override void QuantizeColumnsCore(int column, int groupIndex, ReadOnlySpan<float> values, Span<float> dequantized)
    {
        float[] scales = _scales[groupIndex];
        var codes = _codes.AsSpan(column * Rows, Rows);
        int r = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float rv = ref MemoryMarshal.GetReference(values);
            for (; r + 8 <= Rows; r += 8)
            {
                var s = Vector256.Create<float>(scales.AsSpan(r));
                var q = Fp4E2M1.Encode(Vector256.LoadUnsafe(ref rv, (nuint)r) / s, out var value);
                (value * s).CopyTo(dequantized[r..]);
                for (int l = 0; l < 8; l++) codes[r + l] = (byte)q.GetElement(l);
            }
        }
        for (; r < Rows; r++)
        {
            byte q = Fp4E2M1.Encode(values[r] / scales[r]);
            codes[r] = q;
            dequantized[r] = Fp4E2M1.Decode(q) * scales[r];
        }
    }

    private protected override PackedWeight BuildCore()
    {
        int rows = Rows, groups = GroupCount;
        int rowBytes = (Columns + 1) / 2;
        var qweight = new byte[(long)rows * rowBytes];
        var scales = new byte[(long)rows * groups];
        var rowCodes = new byte[Columns];
        for (int r = 0; r < rows; r++)
        {
            GatherRow(_codes, rows, r, rowCodes);
            Fp4E2M1.Pack(rowCodes, qweight.AsSpan(r * rowBytes, rowBytes));
            for (int g = 0; g < groups; g++) scales[(long)r * groups + g] = _scaleCodes[g][r];
        }
        return Format.Kind == QuantKind.Mxfp4
            ? Mxfp4Format.Build(Format, rows, Cols, qweight, scales)
            : Nvfp4Format.Build(Format, rows, Cols, qweight, scales, GlobalScale);
    }
}
