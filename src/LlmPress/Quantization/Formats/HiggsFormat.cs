using System.Buffers;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using LlmPress.Numerics;

namespace LlmPress.Quantization;

// HIGGS (Malinovskii et al., arXiv 2411.17525; transformers' quantize_with_higgs), vectors of p weights, n-point grid:
//
//   rotation  each row is zero-padded to C = a multiple of R (default 1024) columns and each block of R is multiplied
//             by H_R/√R (orthonormal Hadamard): v = w·H_R/√R  (transformers: FWHT(w)/s·(s/32), the same for R = 1024)
//   scale     s = fp16(RMS(v over the block)) = fp16(‖w_block‖/√R)   (transformers' s/32), one per (row, block)
//   codes     each p-vector u of the block (columns [p·k, p·k + p)) → j = argmin_j ‖u/s − grid_j‖² (lowest j on ties);
//             s = 0 (an all-zero block) uses u/s := 0 and decodes to 0
//   value     v ≈ grid_j·s (rotated basis); the original basis multiplies each block by H_R/√R again and drops the padding
//
// Stored tensors:
//   qweight U8  [rows, ceil(C/p·log2(n)/8)]  each row's vector codes as a little-endian log2(n)-bit stream (p = 2, n = 256:
//                                             one byte per pair)
//   scales  F16 [rows, C/256]                 one scale per 256 columns, the block's scale repeated R/256 times (FLUTE layout)
//   grid    F32 [n, p]                        the grid the codes index (so a checkpoint does not depend on this library)
// bits/weight = log2(n)/p + 16/256, plus the grid table (n·p·32 bits per matrix):
//   higgs-p2-n256 4.0625, higgs-p2-n64 3.0625, higgs-p2-n16 2.0625, higgs-p1-n16 4.0625, higgs-p1-n8 3.0625, higgs-p1-n4 2.0625.

/// <summary>HIGGS quantization (data-free, Hadamard + Gaussian MSE-optimal grids); see the layout comment at the top of the file.</summary>
public static class HiggsFormat
{
    /// <summary>Nominal bits per weight: log2(n)/p + 16/256.</summary>
    public static double BitsPerWeight(int dimension, int gridSize) =>
        Math.Log2(gridSize) / dimension + 16.0 / QuantFormat.HiggsScaleGroupSize; // blocks ≥ 256 columns

    /// <summary>Quantizes [rows, cols] (see <see cref="QuantFormat.Quantize"/>); rotates first.</summary>
    public static PackedWeight Quantize(QuantFormat format, ReadOnlySpan<float> weights, int rows, int cols)
    {
        CheckKind(format);
        return format.Quantize(weights, rows, cols);
    }

    /// <summary>Scalar reference of <see cref="Quantize"/>.</summary>
    public static PackedWeight QuantizeReference(QuantFormat format, ReadOnlySpan<float> weights, int rows, int cols)
    {
        CheckKind(format);
        return format.QuantizeReference(weights, rows, cols);
    }

    /// <summary>Dequantizes to FP32 [rows, cols] in the original basis.</summary>
    public static float[] Dequantize(PackedWeight weight)
    {
        CheckKind(weight.Format);
        return weight.Dequantize();
    }

    private static void CheckKind(QuantFormat format)
    {
        if (format.Kind != QuantKind.Higgs) throw new ArgumentException($"{format} is not a HIGGS format.", nameof(format));
    }

    internal static TensorLayout[] Layout(QuantFormat format, int rows, int cols)
    {
        int stored = format.StoredColumns(cols);
        return
        [
            new TensorLayout("qweight", DType.U8, [rows, BitPacking.PackedLength(stored / format.HiggsDimension, format.CodeBits)]),
            new TensorLayout("scales", DType.F16, [rows, stored / format.HiggsScaleColumns]),
            new TensorLayout("grid", DType.F32, [format.HiggsGridSize, format.HiggsDimension]),
        ];
    }

    /// <summary>
    /// fp16(RMS) of one rotated block, the sum of squares taken in FP64 in index order (the same in every path).
    /// </summary>
    internal static float ComputeScale(ReadOnlySpan<float> block, QuantFormat format, int row, int group)
    {
        double sum = 0;
        foreach (float v in block) sum += (double)v * v;
        float rms = (float)Math.Sqrt(sum / block.Length);
        var h = (Half)rms;
        if (Half.IsInfinity(h)) QuantThrow.Argument_ScaleOverflow(format, row, group, rms);
        return (float)h;
    }

    /// <summary>u = v / s, or 0 when s = 0 (identical in the scalar and vector paths).</summary>
    internal static void Normalize(ReadOnlySpan<float> v, ReadOnlySpan<float> scale, Span<float> u, bool vectorized)
    {
        int i = 0;
        if (vectorized && Vector256.IsHardwareAccelerated)
        {
            ref float rv = ref MemoryMarshal.GetReference(v);
            ref float rs = ref MemoryMarshal.GetReference(scale);
            for (; i + 8 <= v.Length; i += 8)
            {
                var s = Vector256.LoadUnsafe(ref rs, (nuint)i);
                var q = Vector256.LoadUnsafe(ref rv, (nuint)i) / s;
                Vector256.ConditionalSelect(Vector256.Equals(s, Vector256<float>.Zero), Vector256<float>.Zero, q).CopyTo(u[i..]);
            }
        }
        for (; i < v.Length; i++) u[i] = scale[i] == 0f ? 0f : v[i] / scale[i];
    }

    // stored: [rows, C] rotated -> packed tensors
    internal static PackedWeight QuantizeStored(QuantFormat format, ReadOnlySpan<float> stored, int rows, int cols, bool fast)
    {
        var grid = HiggsGrid.Get(format.HiggsDimension, format.HiggsGridSize);
        int storedCols = format.StoredColumns(cols);
        int block = format.RotationBlockSize!.Value;
        int p = format.HiggsDimension;
        int vectorsPerRow = storedCols / p, vectorsPerBlock = block / p;
        int rowBytes = BitPacking.PackedLength(vectorsPerRow, format.CodeBits);
        int scalesPerRow = storedCols / format.HiggsScaleColumns, scalesPerBlock = block / format.HiggsScaleColumns;
        var qweight = new byte[(long)rows * rowBytes];
        var scales = new Half[(long)rows * scalesPerRow];
        RowParallel.For(stored, rows, (matrix, first, count) =>
        {
            byte[] codes = ArrayPool<byte>.Shared.Rent(vectorsPerRow);
            float[] scratch = ArrayPool<float>.Shared.Rent(4 * vectorsPerBlock);
            try
            {
                var ux = scratch.AsSpan(0, vectorsPerBlock);
                var uy = scratch.AsSpan(vectorsPerBlock, vectorsPerBlock);
                var coordinate = scratch.AsSpan(2 * vectorsPerBlock, vectorsPerBlock);
                var blockScale = scratch.AsSpan(3 * vectorsPerBlock, vectorsPerBlock);
                for (int r = first; r < first + count; r++)
                {
                    var row = matrix.Slice(r * storedCols, storedCols);
                    for (int b = 0; b < storedCols / block; b++)
                    {
                        var v = row.Slice(b * block, block);
                        float s = ComputeScale(v, format, r, b);
                        scales.AsSpan(r * scalesPerRow + b * scalesPerBlock, scalesPerBlock).Fill((Half)s);
                        blockScale.Fill(s);
                        for (int k = 0; k < vectorsPerBlock; k++) coordinate[k] = v[k * p];
                        Normalize(coordinate, blockScale, ux, fast);
                        if (p == 2)
                        {
                            for (int k = 0; k < vectorsPerBlock; k++) coordinate[k] = v[k * 2 + 1];
                            Normalize(coordinate, blockScale, uy, fast);
                        }
                        grid.Nearest(ux, p == 2 ? uy : default, codes.AsSpan(b * vectorsPerBlock, vectorsPerBlock), fast);
                    }
                    BitPacking.Pack(codes.AsSpan(0, vectorsPerRow), format.CodeBits, qweight.AsSpan(r * rowBytes, rowBytes));
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(codes);
                ArrayPool<float>.Shared.Return(scratch);
            }
        }, parallel: fast);
        return Build(format, rows, cols, qweight, scales, grid);
    }

    internal static PackedWeight Build(QuantFormat format, int rows, int cols, byte[] qweight, Half[] scales, HiggsGrid grid)
    {
        var layout = Layout(format, rows, cols);
        return new PackedWeight(format, rows, cols,
        [
            new PackedTensor("qweight", DType.U8, layout[0].Shape, qweight),
            new PackedTensor("scales", DType.F16, layout[1].Shape, MemoryMarshal.AsBytes(scales.AsSpan()).ToArray()),
            new PackedTensor("grid", DType.F32, layout[2].Shape, MemoryMarshal.AsBytes(grid.Points).ToArray()),
        ]);
    }

    // weight -> result: [rows, C] in the rotated basis
    internal static void DequantizeStored(PackedWeight weight, float[] result)
    {
        var format = weight.Format;
        int p = format.HiggsDimension, storedCols = weight.StoredColumns;
        int vectorsPerRow = storedCols / p;
        int rowBytes = BitPacking.PackedLength(vectorsPerRow, format.CodeBits);
        int scalesPerRow = storedCols / format.HiggsScaleColumns;
        byte[] qweight = weight.GetTensor("qweight").Data;
        byte[] scaleBytes = weight.GetTensor("scales").Data;
        float[] grid = MemoryMarshal.Cast<byte, float>(weight.GetTensor("grid").Data.AsSpan()).ToArray();
        Parallel.For(0, weight.Rows, Parallelism.Options, () => new byte[vectorsPerRow], (r, _, codes) =>
        {
            BitPacking.Unpack(qweight.AsSpan(r * rowBytes, rowBytes), format.CodeBits, codes);
            var scales = MemoryMarshal.Cast<byte, Half>(scaleBytes.AsSpan()).Slice(r * scalesPerRow, scalesPerRow);
            var dst = result.AsSpan(r * storedCols, storedCols);
            for (int k = 0; k < vectorsPerRow; k++)
            {
                float s = (float)scales[k * p / format.HiggsScaleColumns];
                for (int d = 0; d < p; d++) dst[k * p + d] = grid[codes[k] * p + d] * s;
            }
            return codes;
        }, _ => { });
    }

    internal static void Validate(PackedWeight weight)
    {
        var scales = MemoryMarshal.Cast<byte, Half>(weight.GetTensor("scales").Data.AsSpan());
        int perRow = weight.StoredColumns / weight.Format.HiggsScaleColumns;
        for (int i = 0; i < scales.Length; i++)
            if (!Half.IsFinite(scales[i])) QuantThrow.InvalidData_BadScale(weight.Format, "scales", i / perRow, i % perRow, scales[i].ToString());
        var grid = MemoryMarshal.Cast<byte, float>(weight.GetTensor("grid").Data.AsSpan());
        int bad = GroupRange.IndexOfNonFinite(grid);
        if (bad >= 0) QuantThrow.InvalidData_BadGrid(weight.Format, bad, grid[bad]);
    }
}
