using System.Buffers;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using LlmPress.Numerics;

namespace LlmPress.Quantization;

// INT b (b in 2..8; BitPacking streams any width), GPTQ's min-max quantizer, groups of g along the input dimension (per channel: g = cols).
//
//   maxq = 2^b − 1;  per (row, group): FP16 scale s > 0 and integer zero point z in [0, maxq]
//   asymmetric: xmin = min(0, min x), xmax = max(0, max x)  (the range always contains 0; both 0 → [−1, 1])
//               s = fp16((xmax − xmin)/maxq),  z = clamp(round(−xmin / s), 0, maxq)
//   symmetric:  m = max|x| (0 → 1),  s = fp16(2·m/maxq),  z = 2^(b−1) = (maxq + 1)/2  (not stored)
//   code:       q = clamp(round(x / s) + z, 0, maxq)   (round half to even)
//   value:      x ≈ s·(q − z)
//
// Stored tensors ([rows, cols] in the stored basis; groups = ceil(cols/g), the last group may be short):
//   qweight  U8  [rows, ceil(cols·b/8)]    each row's codes as a little-endian b-bit stream (BitPacking); for b = 4,
//                                           element 2j is the low nibble of byte j: the bytes of GPTQ's int32 words
//   scales   F16 [rows, groups]
//   qzeros   U8  [rows, ceil(groups·b/8)]  asymmetric only: each row's zero points as a b-bit stream
// bits/weight = b + (16 + (asymmetric ? b : 0))/g, e.g. int4-asym-g128: 4.15625, int4-sym-g128: 4.125.
//
// Deviations from gptq.py, both deliberate: the zero point is rounded from the FP16 scale actually stored (so the
// stored model reproduces exactly what the quantizer returned), and symmetric always uses 2·max|x| (gptq.py keeps
// xmin = 0 for a row without negative values, wasting half the grid).

/// <summary>INT b quantization with FP16 group scales (GPTQ / RTN); see the layout comment at the top of the file.</summary>
public static class IntFormat
{
    /// <summary>Nominal bits per weight: b + (16 + (asymmetric ? b : 0))/g.</summary>
    public static double BitsPerWeight(int bits, int groupSize, bool symmetric) => bits + (16.0 + (symmetric ? 0 : bits)) / groupSize;

    /// <summary>Quantizes [rows, cols] (see <see cref="QuantFormat.Quantize"/>); <paramref name="format"/> must be an INT format.</summary>
    public static PackedWeight Quantize(QuantFormat format, ReadOnlySpan<float> weights, int rows, int cols, ScaleSearch search = ScaleSearch.MinMax)
    {
        CheckKind(format);
        return format.Quantize(weights, rows, cols, search);
    }

    /// <summary>Scalar reference of <see cref="Quantize"/>.</summary>
    public static PackedWeight QuantizeReference(QuantFormat format, ReadOnlySpan<float> weights, int rows, int cols, ScaleSearch search = ScaleSearch.MinMax)
    {
        CheckKind(format);
        return format.QuantizeReference(weights, rows, cols, search);
    }

    /// <summary>Dequantizes to FP32 [rows, cols] in the original basis (see <see cref="PackedWeight.Dequantize()"/>).</summary>
    public static float[] Dequantize(PackedWeight weight)
    {
        CheckKind(weight.Format);
        return weight.Dequantize();
    }

    private static void CheckKind(QuantFormat format)
    {
        if (format.Kind != QuantKind.Int) throw new ArgumentException($"{format} is not an INT format.", nameof(format));
    }

    /// <summary>Format constants of one matrix.</summary>
    internal readonly struct Spec(QuantFormat format, int storedCols)
    {
        public readonly QuantFormat Format = format;
        public readonly int Bits = format.Bits;
        public readonly float MaxQ = (1 << format.Bits) - 1;
        public readonly bool Symmetric = format.Symmetric;
        public readonly int Cols = storedCols;
        public readonly int GroupSize = format.GroupSize is int g ? Math.Min(g, storedCols) : storedCols;
        public int Groups => (Cols + GroupSize - 1) / GroupSize;
        public int GroupWidth(int group) => Math.Min(GroupSize, Cols - group * GroupSize);
    }

    internal static TensorLayout[] Layout(QuantFormat format, int rows, int cols)
    {
        var spec = new Spec(format, format.StoredColumns(cols));
        var qweight = new TensorLayout("qweight", DType.U8, [rows, BitPacking.PackedLength(spec.Cols, spec.Bits)]);
        var scales = new TensorLayout("scales", DType.F16, [rows, spec.Groups]);
        return spec.Symmetric
            ? [qweight, scales]
            : [qweight, scales, new TensorLayout("qzeros", DType.U8, [rows, BitPacking.PackedLength(spec.Groups, spec.Bits)])];
    }

    // stored: [rows, StoredColumns] -> packed tensors. fast: vectorized kernels and parallel rows; else the scalar reference.
    internal static PackedWeight QuantizeStored(QuantFormat format, ReadOnlySpan<float> stored, int rows, int cols, ScaleSearch search, bool fast)
    {
        var spec = new Spec(format, format.StoredColumns(cols));
        int rowBytes = BitPacking.PackedLength(spec.Cols, spec.Bits);
        int groups = spec.Groups;
        var qweight = new byte[(long)rows * rowBytes];
        var scales = new Half[(long)rows * groups];
        var zeros = new byte[(long)rows * groups];
        RowParallel.For(stored, rows, (matrix, first, count) =>
        {
            byte[] codes = ArrayPool<byte>.Shared.Rent(spec.Cols);
            try
            {
                for (int r = first; r < first + count; r++)
                {
                    var row = matrix.Slice(r * spec.Cols, spec.Cols);
                    for (int g = 0; g < groups; g++)
                    {
                        var x = row.Slice(g * spec.GroupSize, spec.GroupWidth(g));
                        ComputeGroupParameters(x, spec, search, fast, r, g, out float scale, out float zero);
                        scales[(long)r * groups + g] = (Half)scale;
                        zeros[(long)r * groups + g] = (byte)zero;
                        QuantizeGroup(x, scale, zero, spec.MaxQ, fast, codes.AsSpan(g * spec.GroupSize, x.Length));
                    }
                    BitPacking.Pack(codes.AsSpan(0, spec.Cols), spec.Bits, qweight.AsSpan((int)((long)r * rowBytes), rowBytes));
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(codes);
            }
        }, parallel: fast);
        return Build(format, rows, cols, qweight, scales, zeros);
    }

    // scales, zeros: [rows, groups] unpacked
    internal static PackedWeight Build(QuantFormat format, int rows, int cols, byte[] qweight, Half[] scales, byte[] zeros)
    {
        var layout = Layout(format, rows, cols);
        var tensors = new PackedTensor[layout.Length];
        tensors[0] = new PackedTensor("qweight", DType.U8, layout[0].Shape, qweight);
        tensors[1] = new PackedTensor("scales", DType.F16, layout[1].Shape, MemoryMarshal.AsBytes(scales.AsSpan()).ToArray());
        if (!format.Symmetric)
        {
            int groups = (int)layout[1].Shape[1];
            int zeroBytes = (int)layout[2].Shape[1];
            var qzeros = new byte[(long)rows * zeroBytes];
            for (int r = 0; r < rows; r++)
                BitPacking.Pack(zeros.AsSpan(r * groups, groups), format.Bits, qzeros.AsSpan(r * zeroBytes, zeroBytes));
            tensors[2] = new PackedTensor("qzeros", DType.U8, layout[2].Shape, qzeros);
        }
        return new PackedWeight(format, rows, cols, tensors);
    }

    /// <summary>
    /// Scale (an FP16 value, as FP32) and zero point (an integer, as FP32) of one row's group <paramref name="x"/>.
    /// Shared by the reference, the fast path and <see cref="IntColumnQuantizer"/>; vectorized and scalar kernels agree bit for bit.
    /// </summary>
    internal static void ComputeGroupParameters(ReadOnlySpan<float> x, in Spec spec, ScaleSearch search, bool vectorized,
        int row, int group, out float scale, out float zero)
    {
        GroupRange.MinMax(x, vectorized, out float xmin, out float xmax);
        if (spec.Symmetric)
        {
            xmax = Math.Max(-xmin, xmax);
            xmin = -xmax;
        }
        if (xmin == 0f && xmax == 0f)
        {
            xmin = -1f;
            xmax = 1f;
        }
        Candidate(xmin, xmax, 1f, spec, row, group, out scale, out zero);
        if (search != ScaleSearch.Mse) return;
        float best = ShrinkSearch.ErrorSum(x, new IntRounding(scale, zero, spec.MaxQ), vectorized);
        float lastScale = scale, lastZero = zero;
        var factors = ShrinkSearch.Factors;
        for (int i = 1; i < factors.Length; i++)
        {
            Candidate(xmin, xmax, factors[i], spec, row, group, out float s, out float z);
            if (s == lastScale && z == lastZero) continue; // same stored parameters, same error
            lastScale = s;
            lastZero = z;
            float error = ShrinkSearch.ErrorSum(x, new IntRounding(s, z, spec.MaxQ), vectorized);
            if (error < best)
            {
                best = error;
                scale = s;
                zero = z;
            }
        }
    }

    // The range [p·xmin, p·xmax] → (FP16 scale, zero point).
    private static void Candidate(float xmin, float xmax, float p, in Spec spec, int row, int group, out float scale, out float zero)
    {
        float lo = p * xmin, hi = p * xmax;
        scale = ToFp16Scale((hi - lo) / spec.MaxQ, spec.Format, row, group);
        if (spec.Symmetric)
        {
            zero = (spec.MaxQ + 1f) / 2f;
        }
        else
        {
            zero = MathF.Round(-lo / scale);
            if (zero < 0f) zero = 0f;
            if (zero > spec.MaxQ) zero = spec.MaxQ;
        }
    }

    /// <summary>The FP16 value nearest to <paramref name="scale"/>, at least the smallest FP16 subnormal (2^−24).</summary>
    internal static float ToFp16Scale(float scale, QuantFormat format, int row, int group)
    {
        var h = (Half)scale;
        if (Half.IsInfinity(h)) QuantThrow.Argument_ScaleOverflow(format, row, group, scale);
        float s = (float)h;
        return s > 0f ? s : (float)Half.Epsilon;
    }

    // codes[i] = q(x[i]) with fixed parameters
    internal static void QuantizeGroup(ReadOnlySpan<float> x, float scale, float zero, float maxq, bool vectorized, Span<byte> codes)
    {
        int i = 0;
        if (vectorized && Vector256.IsHardwareAccelerated)
        {
            ref float r = ref MemoryMarshal.GetReference(x);
            var s = Vector256.Create(scale);
            var z = Vector256.Create(zero);
            var m = Vector256.Create(maxq);
            for (; i + 8 <= x.Length; i += 8)
            {
                var q = IntRounding.Code(Vector256.LoadUnsafe(ref r, (nuint)i), s, z, m);
                for (int l = 0; l < 8; l++) codes[i + l] = (byte)q.GetElement(l);
            }
        }
        for (; i < x.Length; i++) codes[i] = (byte)IntRounding.Code(x[i], scale, zero, maxq);
    }

    // weight -> result: [rows, StoredColumns]
    internal static void DequantizeStored(PackedWeight weight, float[] result)
    {
        var spec = new Spec(weight.Format, weight.StoredColumns);
        int rows = weight.Rows, groups = spec.Groups;
        int rowBytes = BitPacking.PackedLength(spec.Cols, spec.Bits);
        byte[] qweight = weight.GetTensor("qweight").Data;
        byte[] scaleBytes = weight.GetTensor("scales").Data;
        byte[]? qzeros = spec.Symmetric ? null : weight.GetTensor("qzeros").Data;
        int zeroBytes = BitPacking.PackedLength(groups, spec.Bits);
        Parallel.For(0, rows, Parallelism.Options, () => (new byte[spec.Cols], new byte[groups]), (r, _, scratch) =>
        {
            var (codes, zeros) = scratch;
            BitPacking.Unpack(qweight.AsSpan(r * rowBytes, rowBytes), spec.Bits, codes);
            if (qzeros is not null) BitPacking.Unpack(qzeros.AsSpan(r * zeroBytes, zeroBytes), spec.Bits, zeros);
            var scales = MemoryMarshal.Cast<byte, Half>(scaleBytes.AsSpan()).Slice(r * groups, groups);
            var dst = result.AsSpan(r * spec.Cols, spec.Cols);
            for (int g = 0; g < groups; g++)
            {
                float s = (float)scales[g];
                float z = qzeros is null ? (spec.MaxQ + 1f) / 2f : zeros[g];
                int start = g * spec.GroupSize, end = start + spec.GroupWidth(g);
                for (int c = start; c < end; c++) dst[c] = IntRounding.Value(codes[c], s, z);
            }
            return scratch;
        }, _ => { });
    }

    // Scales finite and positive (zero points always fit their b bits).
    internal static void Validate(PackedWeight weight)
    {
        var spec = new Spec(weight.Format, weight.StoredColumns);
        var scales = MemoryMarshal.Cast<byte, Half>(weight.GetTensor("scales").Data.AsSpan());
        for (int i = 0; i < scales.Length; i++)
            if (!Half.IsFinite(scales[i]) || scales[i] <= Half.Zero)
                QuantThrow.InvalidData_BadScale(weight.Format, "scales", i / spec.Groups, i % spec.Groups, scales[i].ToString());
    }
}
