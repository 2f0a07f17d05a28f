using System.Runtime.InteropServices;
using LlmPress.IO;
using LlmPress.Numerics;
using LlmPress.Quantization;

namespace LlmPress.Export;

/// <summary>
/// One quantized linear in compressed-tensors tensors, both ways: <see cref="Encode"/> copies an LlmPress
/// <see cref="PackedWeight"/>'s codes and scales into the "&lt;module&gt;.weight_*" tensors of a scheme, and
/// <see cref="Decode"/> dequantizes such tensors following compressed-tensors' own rules, written from its conventions
/// and not through <see cref="PackedWeight"/>, so a round trip checks the mapping rather than repeating it.
/// </summary>
/// <remarks>
/// Tensors per scheme ([out, in] = [rows, cols], groups = cols / group_size, 1 per channel):
/// <code>
/// pack-quantized  weight_packed      I32 [rows, cols·b/32]         codes + 2^(b−1) (= LlmPress codes), value i in bits [i·b, i·b+b)
///                 weight_scale       F16 [rows, groups]            LlmPress's FP16 scales, copied
///                 weight_zero_point  I32 [ceil(rows·b/32), groups] asymmetric only: zero points packed along the output dimension
///                 weight_shape       I64 [2]                       [rows, cols]
///                 value = (q − 2^(b−1) − (z − 2^(b−1)))·scale = (q − z)·scale   (symmetric: z = 2^(b−1))
/// mxfp4-pack-quantized  weight_packed  U8 [rows, cols/2]   E2M1 codes, element 2j in the low nibble of byte j
///                       weight_scale   U8 [rows, cols/32]  E8M0 (value 2^(code − 127))
///                 value = E2M1(q)·2^(e − 127)
/// nvfp4-pack-quantized  weight_packed        U8      [rows, cols/2]
///                       weight_scale         F8_E4M3 [rows, cols/16]
///                       weight_global_scale  F32     [1]   g; dequantization divides by it
///                 value = E2M1(q)·(E4M3(c) / g)
/// </code>
/// Every product has the same operands and one rounding in LlmPress's dequantization, so the values are bit-identical.
/// </remarks>
public static class CompressedTensorsCodec
{
    /// <summary>The tensors of <paramref name="weight"/> under <paramref name="scheme"/> (from <see cref="CompressedTensorsScheme.For"/>).</summary>
    public static List<TensorToWrite> Encode(string module, PackedWeight weight, CompressedTensorsScheme scheme)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(scheme);
        if (CompressedTensorsScheme.For(weight.Format, weight.Rows, weight.Cols, out string reason) != scheme)
            throw new ArgumentException($"{module}: {weight.Format.Name} [{weight.Rows}, {weight.Cols}] is not stored by {scheme}{(reason.Length > 0 ? $": {reason}" : "")}.", nameof(scheme));
        int rows = weight.Rows, cols = weight.Cols, groups = scheme.GroupCount(cols);
        var tensors = new List<TensorToWrite>();
        switch (weight.Format.Kind)
        {
            case QuantKind.Int:
            {
                int bits = scheme.Bits;
                long[] packedShape = [rows, CompressedTensorsPacking.WordCount(cols, bits)];
                // LlmPress's b-bit stream (element i at bit i·b of the row, little-endian) is byte for byte the little-endian
                // int32 words of pack_to_int32 when a row fills whole words; otherwise rows are repacked with padding.
                if (cols % scheme.PackFactor == 0)
                    tensors.Add(new TensorToWrite($"{module}.weight_packed", DType.I32, packedShape, weight.GetTensor("qweight").Data));
                else
                    tensors.Add(Int32Tensor($"{module}.weight_packed", packedShape, CompressedTensorsPacking.PackRows(weight.UnpackCodes(), rows, cols, bits)));
                tensors.Add(new TensorToWrite($"{module}.weight_scale", DType.F16, [rows, groups], weight.GetTensor("scales").Data));
                if (!scheme.Symmetric)
                {
                    int[] zeros = CompressedTensorsPacking.PackColumns(weight.UnpackZeros(), rows, groups, bits);
                    tensors.Add(Int32Tensor($"{module}.weight_zero_point", [CompressedTensorsPacking.WordCount(rows, bits), groups], zeros));
                }
                long[] shape = [rows, cols];
                tensors.Add(new TensorToWrite($"{module}.weight_shape", DType.I64, [2], MemoryMarshal.AsBytes(shape.AsSpan()).ToArray()));
                break;
            }
            case QuantKind.Mxfp4:
                // Whole groups, so LlmPress's rows are exactly cols/2 bytes and cols/32 scales: copied as they are.
                tensors.Add(new TensorToWrite($"{module}.weight_packed", DType.U8, [rows, cols / 2], weight.GetTensor("qweight").Data));
                tensors.Add(new TensorToWrite($"{module}.weight_scale", DType.U8, [rows, groups], weight.GetTensor("scales").Data));
                break;
            default:
                tensors.Add(new TensorToWrite($"{module}.weight_packed", DType.U8, [rows, cols / 2], weight.GetTensor("qweight").Data));
                tensors.Add(new TensorToWrite($"{module}.weight_scale", DType.F8E4M3, [rows, groups], weight.GetTensor("scales").Data));
                tensors.Add(new TensorToWrite($"{module}.weight_global_scale", DType.F32, [1], BitConverter.GetBytes(weight.GlobalScale)));
                break;
        }
        return tensors;
    }

    /// <summary>Names of the tensors <paramref name="scheme"/> stores for <paramref name="module"/>.</summary>
    public static IReadOnlyList<string> TensorNames(string module, CompressedTensorsScheme scheme)
    {
        ArgumentNullException.ThrowIfNull(scheme);
        return scheme.Format switch
        {
            CompressedTensorsScheme.PackQuantized => scheme.Symmetric
                ? [$"{module}.weight_packed", $"{module}.weight_scale", $"{module}.weight_shape"]
                : [$"{module}.weight_packed", $"{module}.weight_scale", $"{module}.weight_zero_point", $"{module}.weight_shape"],
            CompressedTensorsScheme.Nvfp4PackQuantized => [$"{module}.weight_packed", $"{module}.weight_scale", $"{module}.weight_global_scale"],
            _ => [$"{module}.weight_packed", $"{module}.weight_scale"],
        };
    }

    /// <summary>
    /// Dequantizes <paramref name="module"/>'s tensors from <paramref name="store"/> to FP32 [rows, cols] by compressed-tensors'
    /// rules for <paramref name="scheme"/>, checking every dtype and shape first.
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor is missing or has the wrong dtype or shape, or a scale is NaN (the message names the tensor).</exception>
    public static float[] Decode(TensorStore store, string module, CompressedTensorsScheme scheme, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(scheme);
        int groups = scheme.GroupCount(cols);
        int groupSize = cols / groups;
        if (groups * groupSize != cols) throw new InvalidDataException($"{module}: group_size {scheme.GroupSize} does not divide {cols} columns.");
        var result = new float[(long)rows * cols];
        if (scheme.Format == CompressedTensorsScheme.PackQuantized)
        {
            int bits = scheme.Bits, offset = 1 << (bits - 1), words = CompressedTensorsPacking.WordCount(cols, bits);
            long[] shape = MemoryMarshal.Cast<byte, long>(Read(store, $"{module}.weight_shape", DType.I64, [2]).Span).ToArray();
            if (shape[0] != rows || shape[1] != cols)
                throw new InvalidDataException($"{store.Path}: {module}.weight_shape is [{shape[0]}, {shape[1]}], expected [{rows}, {cols}].");
            var packed = Read(store, $"{module}.weight_packed", DType.I32, [rows, words]);
            float[] scales = ReadScales(store, $"{module}.weight_scale", rows, groups);
            byte[]? zeros = null;
            if (!scheme.Symmetric)
            {
                var zeroWords = MemoryMarshal.Cast<byte, int>(
                    Read(store, $"{module}.weight_zero_point", DType.I32, [CompressedTensorsPacking.WordCount(rows, bits), groups]).Span);
                zeros = CompressedTensorsPacking.UnpackColumns(zeroWords, rows, groups, bits);
            }
            Parallel.For(0, rows, Parallelism.Options, () => new byte[cols], (r, _, codes) =>
            {
                CompressedTensorsPacking.UnpackLine(MemoryMarshal.Cast<byte, int>(packed.Span).Slice(r * words, words), bits, codes);
                var dst = result.AsSpan(r * cols, cols);
                for (int g = 0; g < groups; g++)
                {
                    int z = zeros is null ? 0 : zeros[r * groups + g] - offset; // signed zero point (0 when symmetric)
                    float scale = scales[r * groups + g];
                    for (int c = g * groupSize; c < (g + 1) * groupSize; c++)
                        dst[c] = (float)(codes[c] - offset - z) * scale;         // unpack_from_int32 gives code − 2^(b−1)
                }
                return codes;
            }, _ => { });
            return result;
        }

        bool nv = scheme.Format == CompressedTensorsScheme.Nvfp4PackQuantized;
        var fp4 = Read(store, $"{module}.weight_packed", DType.U8, [rows, cols / 2]);
        var scaleCodes = Read(store, $"{module}.weight_scale", nv ? DType.F8E4M3 : DType.U8, [rows, groups]);
        float globalScale = nv ? BitConverter.ToSingle(Read(store, $"{module}.weight_global_scale", DType.F32, [1]).Span) : 1f;
        if (nv && !(globalScale > 0f && float.IsFinite(globalScale)))
            throw new InvalidDataException($"{store.Path}: {module}.weight_global_scale is {globalScale}, not a positive finite number.");
        for (int i = 0; i < scaleCodes.Length; i++)
        {
            byte code = scaleCodes.Span[i];
            if (nv ? (code & 0x7F) == 0x7F : code == 0xFF) throw new InvalidDataException($"{store.Path}: {module}.weight_scale[{i / groups}, {i % groups}] is NaN (0x{code:X2}).");
        }
        Parallel.For(0, rows, Parallelism.Options, r =>
        {
            var packedRow = fp4.Span.Slice(r * (cols / 2), cols / 2);
            var dst = result.AsSpan(r * cols, cols);
            for (int g = 0; g < groups; g++)
            {
                byte code = scaleCodes.Span[r * groups + g];
                float scale = nv ? E4M3(code) / globalScale : E8M0Value(code);
                for (int c = g * groupSize; c < (g + 1) * groupSize; c++)
                    dst[c] = E2M1((packedRow[c >> 1] >> ((c & 1) * 4)) & 0xF) * scale; // low nibble first (pack_fp4_to_uint8)
            }
        });
        return result;
    }

    // E2M1 from its definition: sign bit 3, magnitudes {0, 0.5, 1, 1.5, 2, 3, 4, 6} (compressed-tensors' FLOAT_TO_E2M1);
    // code 8 is −0, as unpack_fp4_from_uint8's kE2M1[0]·(−1) gives.
    private static readonly float[] s_e2m1 = [0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f];

    private static float E2M1(int code) => s_e2m1[code & 0xF];

    // FP8 E4M3 "fn" from its definition: bias 7, subnormals m·2^−9, S.1111.111 NaN, no infinities.
    private static float E4M3(byte code)
    {
        int e = (code >> 3) & 0xF, m = code & 7;
        if (e == 15 && m == 7) return float.NaN;
        float magnitude = e == 0 ? m * MathF.ScaleB(1f, -9) : (1f + m / 8f) * MathF.ScaleB(1f, e - 7);
        return (code & 0x80) != 0 ? -magnitude : magnitude;
    }

    // E8M0: 2^(code − 127), 0xFF NaN.
    private static float E8M0Value(byte code) => code == 0xFF ? float.NaN : (float)Math.ScaleB(1.0, code - 127);

    private static float[] ReadScales(TensorStore store, string name, int rows, int groups)
    {
        if (!store.TryGetInfo(name, out var info)) throw new InvalidDataException($"{store.Path}: tensor {name} is missing.");
        if (info.DType is not (DType.F16 or DType.BF16 or DType.F32))
            throw new InvalidDataException($"{store.Path}: {name} is {DTypeInfo.SafeTensorsName(info.DType)}; expected F16, BF16 or F32.");
        var scales = store.ReadFloats(name, rows, groups);
        for (int i = 0; i < scales.Length; i++)
            if (!float.IsFinite(scales[i])) throw new InvalidDataException($"{store.Path}: {name}[{i / groups}, {i % groups}] is {scales[i]}.");
        return scales;
    }

    private static ReadOnlyMemory<byte> Read(TensorStore store, string name, DType dtype, long[] shape)
    {
        if (!store.TryGetInfo(name, out var info)) throw new InvalidDataException($"{store.Path}: tensor {name} is missing.");
        if (info.DType != dtype || !info.Shape.AsSpan().SequenceEqual(shape))
            throw new InvalidDataException(
                $"{store.Path}: {name} is {DTypeInfo.SafeTensorsName(info.DType)} {TensorInfo.FormatShape(info.Shape)}; expected {DTypeInfo.SafeTensorsName(dtype)} {TensorInfo.FormatShape(shape)}.");
        return store.GetData(name);
    }

    private static TensorToWrite Int32Tensor(string name, long[] shape, int[] values) =>
        new(name, DType.I32, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
}
