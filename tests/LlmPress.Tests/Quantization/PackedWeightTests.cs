using LlmPress.IO;
using LlmPress.Numerics;
using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization;

public class PackedWeightTests
{
    public static TheoryData<string> Formats => QuantTestData.AllFormatNames();

    [Theory]
    [MemberData(nameof(Formats))]
    public void RoundTripsThroughItsTensors(string name)
    {
        var format = QuantFormat.Parse(name);
        int rows = 6, cols = 70;
        var w = QuantTestData.Gaussian(rows, cols, 31, sigma: 0.1f);
        var packed = format.Quantize(w, rows, cols);
        // Copy every array, as if written to and read back from a file.
        var copies = packed.Tensors.Select(t => new PackedTensor(t.Suffix, t.DType, (long[])t.Shape.Clone(), (byte[])t.Data.Clone())).Reverse();
        var back = PackedWeight.FromTensors(QuantFormat.Parse(format.Name), rows, cols, copies);
        QuantTestData.AssertIdentical(packed, back);
        QuantTestData.AssertBitIdentical(packed.Dequantize(), back.Dequantize(), name);
        Assert.Equal(packed.StorageBytes, back.StorageBytes);
        Assert.Equal(rows * cols, packed.Dequantize().Length);
        Assert.Equal(rows * packed.StoredColumns, packed.DequantizeStored().Length);
        Assert.Equal(8.0 * packed.StorageBytes / (rows * cols), packed.BitsPerWeight);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void TensorsHaveTheDocumentedLayout(string name)
    {
        var format = QuantFormat.Parse(name);
        int rows = 3, cols = 50, stored = format.StoredColumns(cols);
        var packed = format.Quantize(QuantTestData.Gaussian(rows, cols, 1), rows, cols);
        var layout = packed.Tensors.ToDictionary(t => t.Suffix, t => (t.DType, Shape: string.Join("x", t.Shape)));
        int groups = packed.GroupCount;
        switch (format.Kind)
        {
            case QuantKind.Int:
                Assert.Equal((DType.U8, $"{rows}x{(stored * format.Bits + 7) / 8}"), layout["qweight"]);
                Assert.Equal((DType.F16, $"{rows}x{groups}"), layout["scales"]);
                if (format.Symmetric) Assert.Equal(2, layout.Count);
                else Assert.Equal((DType.U8, $"{rows}x{(groups * format.Bits + 7) / 8}"), layout["qzeros"]);
                break;
            case QuantKind.Mxfp4:
            case QuantKind.Nvfp4:
                Assert.Equal((DType.U8, $"{rows}x{(stored + 1) / 2}"), layout["qweight"]);
                Assert.Equal((DType.U8, $"{rows}x{(stored + format.GroupSize!.Value - 1) / format.GroupSize.Value}"), layout["scales"]);
                if (format.Kind == QuantKind.Nvfp4) Assert.Equal((DType.F32, "1"), layout["global_scale"]);
                break;
            default:
                Assert.Equal((DType.U8, $"{rows}x{(stored / format.HiggsDimension * format.CodeBits + 7) / 8}"), layout["qweight"]);
                Assert.Equal((DType.F16, $"{rows}x{stored / 256}"), layout["scales"]);
                Assert.Equal((DType.F32, $"{format.HiggsGridSize}x{format.HiggsDimension}"), layout["grid"]);
                break;
        }
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void ScalesZerosAndCodesReproduceTheDequantizedMatrix(string name)
    {
        // What an exporter reads (GetScale, GetZero, UnpackCodes) is enough to rebuild every value.
        var format = QuantFormat.Parse(name);
        if (format.Kind == QuantKind.Higgs) return; // vector codes: covered in HiggsFormatTests
        int rows = 4, cols = 45;
        var packed = format.Quantize(QuantTestData.Gaussian(rows, cols, 2), rows, cols);
        var codes = packed.UnpackCodes();
        var zeros = packed.UnpackZeros();
        var scales = packed.UnpackScales();
        var stored = packed.DequantizeStored();
        int c0 = packed.StoredColumns;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < c0; c++)
            {
                int g = c / packed.GroupSize;
                float s = packed.GetScale(r, g);
                Assert.Equal(s, scales[r * packed.GroupCount + g]);
                float expected = format.Kind == QuantKind.Int
                    ? s * (codes[r * c0 + c] - (float)zeros[r * packed.GroupCount + g])
                    : Fp4E2M1.Decode(codes[r * c0 + c]) * s;
                Assert.Equal(expected, stored[r * c0 + c]);
            }
    }

    [Fact]
    public void TensorsConvertToSafeTensorsEntries()
    {
        var packed = QuantFormat.Int(4, 32).Quantize(new float[4 * 64], 4, 64);
        var entry = packed.GetTensor("qzeros").ToTensorToWrite("model.layers.0.mlp.down_proj");
        Assert.Equal("model.layers.0.mlp.down_proj.qzeros", entry.Name);
        Assert.Equal(DType.U8, entry.DType);
        Assert.Equal([4L, 1L], entry.Shape);
        Assert.Throws<KeyNotFoundException>(() => packed.GetTensor("global_scale"));
    }

    [Fact]
    public void FromTensorsRejectsMismatchedData()
    {
        var format = QuantFormat.Nvfp4();
        var packed = format.Quantize(QuantTestData.Gaussian(2, 32, 3), 2, 32);
        var t = packed.Tensors.ToList();
        PackedTensor With(string suffix, Func<PackedTensor, PackedTensor> change) => change(t.Single(x => x.Suffix == suffix));
        List<PackedTensor> Replace(PackedTensor replacement) => t.Select(x => x.Suffix == replacement.Suffix ? replacement : x).ToList();

        Assert.Contains("'global_scale' is missing",
            Assert.Throws<InvalidDataException>(() => PackedWeight.FromTensors(format, 2, 32, t.Where(x => x.Suffix != "global_scale"))).Message);
        Assert.Contains("unexpected tensor 'qzeros'",
            Assert.Throws<InvalidDataException>(() => PackedWeight.FromTensors(format, 2, 32, [.. t, new PackedTensor("qzeros", DType.U8, [1], [0])])).Message);
        Assert.Contains("dtype F16, expected U8",
            Assert.Throws<InvalidDataException>(() => PackedWeight.FromTensors(format, 2, 32, Replace(With("scales", s => s with { DType = DType.F16 })))).Message);
        Assert.Contains("shape [4, 2], expected [2, 2]",
            Assert.Throws<InvalidDataException>(() => PackedWeight.FromTensors(format, 2, 32, Replace(With("scales", s => s with { Shape = [4, 2] })))).Message);
        Assert.Contains("has 3 bytes, expected 4",
            Assert.Throws<InvalidDataException>(() => PackedWeight.FromTensors(format, 2, 32, Replace(With("scales", s => s with { Data = new byte[3] })))).Message);
        Assert.Contains("row 1, group 0",
            Assert.Throws<InvalidDataException>(() => PackedWeight.FromTensors(format, 2, 32, Replace(With("scales", s => s with { Data = [0x38, 0x38, 0x7F, 0x38] })))).Message);
        Assert.Contains("global_scale is NaN",
            Assert.Throws<InvalidDataException>(() => PackedWeight.FromTensors(format, 2, 32, Replace(With("global_scale", s => s with { Data = BitConverter.GetBytes(float.NaN) })))).Message);
        // A shape that fits another matrix size is caught by the format layout.
        Assert.Throws<InvalidDataException>(() => PackedWeight.FromTensors(format, 2, 48, t));

        var mx = QuantFormat.Mxfp4().Quantize(new float[32], 1, 32);
        var badE8 = mx.Tensors.Select(x => x.Suffix == "scales" ? x with { Data = [0xFF] } : x);
        Assert.Contains("E8M0 NaN", Assert.Throws<InvalidDataException>(() => PackedWeight.FromTensors(QuantFormat.Mxfp4(), 1, 32, badE8)).Message);

        var int4 = QuantFormat.Int(4, 16).Quantize(new float[32], 1, 32);
        var badHalf = int4.Tensors.Select(x => x.Suffix == "scales" ? x with { Data = BitConverter.GetBytes(Half.PositiveInfinity).Concat(new byte[2]).ToArray() } : x);
        Assert.Throws<InvalidDataException>(() => PackedWeight.FromTensors(QuantFormat.Int(4, 16), 1, 32, badHalf));
    }

    [Fact]
    public void BitsPerWeightTable()
    {
        // Nominal storage per weight (rows of 4096, aligned): the table in the report.
        var expected = new Dictionary<string, double>
        {
            ["int2-asym-g128"] = 2.140625, ["int3-asym-g128"] = 3.1484375, ["int4-asym-g128"] = 4.15625, ["int8-asym-g128"] = 8.1875,
            ["int4-sym-g128"] = 4.125, ["int4-sym-g32"] = 4.5, ["int4-asym-perchannel"] = 4 + 20.0 / 4096,
            ["mxfp4"] = 4.25, ["nvfp4"] = 4.5,
            ["higgs-p2-n256"] = 4.0625, ["higgs-p2-n64"] = 3.0625, ["higgs-p2-n16"] = 2.0625,
            ["higgs-p1-n16"] = 4.0625, ["higgs-p1-n8"] = 3.0625, ["higgs-p1-n4"] = 2.0625,
        };
        foreach (var (name, bits) in expected) Assert.Equal(bits, QuantFormat.Parse(name).BitsPerWeight(4096), 12);
    }
}
