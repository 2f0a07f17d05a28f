using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LlmPress.Quantization;

/// <summary>The INT <see cref="ColumnQuantizer"/>: FP16 scale and zero point per (row, group), GPTQ's quantizer per column.</summary>
internal sealed class IntColumnQuantizer : ColumnQuantizer
{
    private readonly IntFormat.Spec _spec;
    private readonly ScaleSearch _search;
    private readonly float[][] _scales; // [group][row]
    private readonly float[][] _zeros;  // [group][row]
    private readonly byte[] _codes;     // [Columns, Rows]

    public IntColumnQuantizer(QuantFormat format, int rows, int cols, ScaleSearch search) : base(format, rows, cols)
    {
        _spec = new IntFormat.Spec(format, Columns);
        _search = search;
        _scales = new float[GroupCount][];
        _zeros = new float[GroupCount][];
        for (int g = 0; g < GroupCount; g++)
        {
            _scales[g] = new float[rows];
            _zeros[g] = new float[rows];
        }
        _codes = new byte[(long)Columns * rows];
    }

    private protected override void ComputeGroupCore(int groupIndex, ReadOnlySpan<float> weights, int rowStride, int width)
    {
        float[] scales = _scales[groupIndex], zeros = _zeros[groupIndex];
        var spec = _spec;
        var search = _search;
        RowParallel.For(weights, Rows, (matrix, first, count) =>
        {
            for (int r = first; r < first + count; r++)
            {
                IntFormat.ComputeGroupParameters(matrix.Slice(r * rowStride, width), spec, search, vectorized: true, r, groupIndex,
                    out scales[r], out zeros[r]);
            }
        });
    }

    private protected override void QuantizeColumnsCore(int column, int groupIndex, ReadOnlySpan<float> values, Span<float> dequantized)
    {
        float[] scales = _scales[groupIndex], zeros = _zeros[groupIndex];
        var codes = _codes.AsSpan(column * Rows, Rows);
        float maxq = _spec.MaxQ;
        int r = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float rv = ref MemoryMarshal.GetReference(values);
            var m = Vector256.Create(maxq);
            for (; r + 8 <= Rows; r += 8)
            {
                var s = Vector256.Create<float>(scales.AsSpan(r));
                var z = Vector256.Create<float>(zeros.AsSpan(r));
                var q = IntRounding.Code(Vector256.LoadUnsafe(ref rv, (nuint)r), s, z, m);
                IntRounding.Value(q, s, z).CopyTo(dequantized[r..]);
                for (int l = 0; l < 8; l++) codes[r + l] = (byte)q.GetElement(l);
            }
        }
        for (; r < Rows; r++)
        {
            int q = IntRounding.Code(values[r], scales[r], zeros[r], maxq);
            codes[r] = (byte)q;
            dequantized[r] = IntRounding.Value(q, scales[r], zeros[r]);
        }
    }

    private protected override PackedWeight BuildCore()
    {
        int rows = Rows, groups = GroupCount;
        int rowBytes = BitPacking.PackedLength(Columns, _spec.Bits);
        var qweight = new byte[(long)rows * rowBytes];
        var scales = new Half[(long)rows * groups];
        var zeros = new byte[(long)rows * groups];
        var rowCodes = new byte[Columns];
        for (int r = 0; r < rows; r++)
        {
            GatherRow(_codes, rows, r, rowCodes);
            BitPacking.Pack(rowCodes, _spec.Bits, qweight.AsSpan(r * rowBytes, rowBytes));
            for (int g = 0; g < groups; g++)
            {
                scales[(long)r * groups + g] = (Half)_scales[g][r];
                zeros[(long)r * groups + g] = (byte)_zeros[g][r];
            }
        }
        return IntFormat.Build(Format, rows, Cols, qweight, scales, zeros);
    }
}
