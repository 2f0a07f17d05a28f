using System.Runtime.InteropServices;
using LlmPress.Numerics;
using LlmPress.Sparsity;

namespace LlmPress.Tests.Sparsity;

/// <summary>
/// The sparse-24-bitmask layout against an independent reference of compressed-tensors' definition (numpy packbits
/// with little bit order over the kept-positions mask; kept values in row-major order), and round trips to the bit.
/// </summary>
public class SparseBitmaskTests
{
    // A [rows, cols] N:M-sparse matrix: in every group, N random positions are +0, the others random nonzero values.
    private static float[] Sparse(int rows, int cols, int n, int m, int seed)
    {
        var rng = new Random(seed);
        var w = new float[rows * cols];
        for (int g = 0; g < w.Length; g += m)
        {
            var zeros = Enumerable.Range(0, m).OrderBy(_ => rng.Next()).Take(n).ToHashSet();
            for (int i = 0; i < m; i++) w[g + i] = zeros.Contains(i) ? 0f : (float)(rng.NextDouble() * 2 - 1) + (rng.Next(2) == 0 ? 0.01f : -0.01f);
        }
        return w;
    }

    // compressed-tensors: bytemask = kept positions; bitmask = packbits(bytemask, axis=-1, bitorder="little");
    // compressed = values[bytemask] reshaped to [rows, kept].
    private static (byte[] Bitmask, float[] Values) Reference(float[] w, int rows, int cols)
    {
        int bytes = (cols + 7) / 8;
        var bitmask = new byte[rows * bytes];
        var values = new List<float>();
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                if (w[r * cols + c] != 0)
                {
                    bitmask[r * bytes + c / 8] |= (byte)(1 << (c % 8));
                    values.Add(w[r * cols + c]);
                }
        return (bitmask, values.ToArray());
    }

    [Theory]
    [InlineData(2, 4, 6, 16)]
    [InlineData(2, 4, 5, 172)] // 172 columns: the last bitmask byte is half used
    [InlineData(1, 4, 3, 12)]
    [InlineData(4, 8, 4, 24)]
    public void Encode_MatchesCompressedTensorsDefinition_AndDecodesBitExactly(int n, int m, int rows, int cols)
    {
        var w = Sparse(rows, cols, n, m, seed: rows * cols);
        byte[] dense = MemoryMarshal.AsBytes(w.AsSpan()).ToArray();
        var tensors = SparseBitmask.Encode("layer", dense, DType.F32, rows, cols, SparsityPattern.NOfM(n, m));
        Assert.Equal(["layer.compressed", "layer.bitmask", "layer.shape"], tensors.Select(t => t.Name));
        var (bitmask, values) = Reference(w, rows, cols);
        Assert.Equal([rows, (long)cols / m * (m - n)], tensors[0].Shape);
        Assert.Equal(values, MemoryMarshal.Cast<byte, float>(tensors[0].Data.Span).ToArray());
        Assert.Equal(DType.U8, tensors[1].DType);
        Assert.Equal([rows, (long)(cols + 7) / 8], tensors[1].Shape);
        Assert.Equal(bitmask, tensors[1].Data.ToArray());
        Assert.Equal(DType.I64, tensors[2].DType);
        Assert.Equal([2L, 1L], tensors[2].Shape);
        Assert.Equal([(long)rows, cols], MemoryMarshal.Cast<byte, long>(tensors[2].Data.Span).ToArray());

        var decoded = SparseBitmask.Decode(tensors[0].Data.Span, DType.F32, tensors[0].Shape, tensors[1].Data.Span, tensors[1].Shape,
            tensors[2].Data.Span, rows, cols, "layer");
        Assert.Equal(dense, decoded);
        long stored = tensors.Sum(t => (long)t.Data.Length);
        Assert.Equal(SparseBitmask.StorageBytes(SparsityPattern.NOfM(n, m), DType.F32, rows, cols), stored);
        Assert.True(stored < dense.Length);
    }

    [Fact]
    public void Bf16_WithExtraZerosAndNegativeZero_RoundTripsBitExactly()
    {
        // A group may hold more zeros than N (a kept weight that happens to be 0): the +0 is stored as a value. −0 is
        // a value too and survives.
        const int rows = 2, cols = 8;
        float[] w = [0f, 0f, 0f, 0.5f, -0f, 0f, 0f, 0f, 1f, 0f, -2f, 0f, 0f, 3f, 0f, 4f];
        var bf16 = w.Select(FloatConversion.SingleToBFloat16).ToArray();
        byte[] dense = MemoryMarshal.AsBytes(bf16.AsSpan()).ToArray();
        var t = SparseBitmask.Encode("x", dense, DType.BF16, rows, cols, SparsityPattern.NOfM(2, 4));
        Assert.Equal(DType.BF16, t[0].DType);
        var decoded = SparseBitmask.Decode(t[0].Data.Span, DType.BF16, t[0].Shape, t[1].Data.Span, t[1].Shape, t[2].Data.Span, rows, cols, "x");
        Assert.Equal(dense, decoded);
    }

    [Fact]
    public void Encode_RefusesAGroupWithTooManyNonzeros()
    {
        float[] w = [1f, 2f, 3f, 0f];
        var e = Assert.Throws<ArgumentException>(() => SparseBitmask.Encode("m.q_proj", MemoryMarshal.AsBytes(w.AsSpan()), DType.F32, 1, 4, SparsityPattern.NOfM(2, 4)));
        Assert.Contains("m.q_proj", e.Message);
        Assert.Contains("row 0", e.Message);
    }

    [Fact]
    public void Decode_RefusesMismatchedTensorsNamingThem()
    {
        var w = Sparse(2, 8, 2, 4, 1);
        var t = SparseBitmask.Encode("x", MemoryMarshal.AsBytes(w.AsSpan()), DType.F32, 2, 8, SparsityPattern.NOfM(2, 4));
        var mask = t[1].Data.ToArray();
        mask[0] ^= 0b1000_0000; // one more kept position in row 0
        var e = Assert.Throws<InvalidDataException>(() =>
            SparseBitmask.Decode(t[0].Data.Span, DType.F32, t[0].Shape, mask, t[1].Shape, t[2].Data.Span, 2, 8, "file: x"));
        Assert.Contains("file: x.bitmask", e.Message);
        e = Assert.Throws<InvalidDataException>(() =>
            SparseBitmask.Decode(t[0].Data.Span, DType.F32, t[0].Shape, t[1].Data.Span, t[1].Shape, t[2].Data.Span, 2, 12, "file: x"));
        Assert.Contains("x.shape", e.Message);
    }
}
