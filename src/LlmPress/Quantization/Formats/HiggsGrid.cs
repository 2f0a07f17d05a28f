using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Text.Json;

namespace LlmPress.Quantization;

/// <summary>
/// A HIGGS grid: n points in p dimensions, MSE-optimal for the standard normal N(0, I_p). The library's grids live in
/// the embedded resource Resources/higgs-grids.json, computed by <c>HiggsGridGenerator</c> (p = 1: Lloyd–Max on the
/// Gaussian density; p = 2: seeded stochastic Lloyd on Gaussian samples).
/// </summary>
public sealed class HiggsGrid
{
    internal const string ResourceName = "LlmPress.Resources.higgs-grids.json";

    private static readonly ConcurrentDictionary<(int, int), HiggsGrid> s_grids = new();
    private static readonly Lazy<Dictionary<(int, int), (float[] Points, double Mse)>> s_resource = new(LoadResource);

    private readonly float[] _points; // [n, p]
    private readonly float[] _x;      // [n] first coordinates
    private readonly float[] _y;      // [n] second coordinates (p = 2), else empty

    /// <summary>Builds a grid from explicit points ([n, p] row-major).</summary>
    /// <exception cref="ArgumentException">p not 1 or 2, n not in 1..256, a length mismatch or a non-finite value.</exception>
    public HiggsGrid(int dimension, float[] points, double mse = double.NaN)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (dimension is not (1 or 2)) throw new ArgumentException($"HIGGS grids have dimension 1 or 2, not {dimension}.", nameof(dimension));
        if (points.Length % dimension != 0 || points.Length == 0 || points.Length / dimension > 256)
            throw new ArgumentException($"A {dimension}-D grid needs 1 to 256 points of {dimension} values; got {points.Length} values.", nameof(points));
        int bad = GroupRange.IndexOfNonFinite(points);
        if (bad >= 0) throw new ArgumentException($"Grid value {bad} is {points[bad]}; grid values must be finite.", nameof(points));
        Dimension = dimension;
        Count = points.Length / dimension;
        Mse = mse;
        _points = points;
        _x = new float[Count];
        _y = dimension == 2 ? new float[Count] : [];
        for (int j = 0; j < Count; j++)
        {
            _x[j] = points[j * dimension];
            if (dimension == 2) _y[j] = points[j * 2 + 1];
        }
    }

    /// <summary>p.</summary>
    public int Dimension { get; }

    /// <summary>n.</summary>
    public int Count { get; }

    /// <summary>The points, [n, p] row-major; the code of a vector is its point's index.</summary>
    public ReadOnlySpan<float> Points => _points;

    /// <summary>Mean squared error per coordinate on N(0, I_p) recorded with the grid (NaN if unknown).</summary>
    public double Mse { get; }

    /// <summary>The (p, n) pairs the library ships grids for.</summary>
    public static bool IsSupported(int dimension, int count) =>
        (dimension, count) is (1, 4) or (1, 8) or (1, 16) or (2, 16) or (2, 64) or (2, 256);

    /// <summary>The library grid for (p, n), loaded from the embedded resource once.</summary>
    /// <exception cref="ArgumentException">(p, n) is not supported.</exception>
    public static HiggsGrid Get(int dimension, int count)
    {
        if (!IsSupported(dimension, count)) QuantThrow.Argument_HiggsGrid(dimension, count);
        return s_grids.GetOrAdd((dimension, count), key =>
        {
            if (!s_resource.Value.TryGetValue(key, out var entry))
                QuantThrow.InvalidData_Resource(ResourceName, $"no grid with p = {key.Item1}, n = {key.Item2}");
            return new HiggsGrid(key.Item1, entry.Points, entry.Mse);
        });
    }

    /// <summary>Index of the point nearest to <paramref name="vector"/> (p values) in L2; the lowest index wins ties.</summary>
    public int FindNearest(ReadOnlySpan<float> vector)
    {
        if (vector.Length != Dimension) throw new ArgumentException($"Expected {Dimension} values, got {vector.Length}.", nameof(vector));
        Span<byte> code = stackalloc byte[1];
        Nearest(vector[..1], Dimension == 2 ? vector[1..2] : default, code, vectorized: false);
        return code[0];
    }

    /// <summary>
    /// Nearest point of each item i = (ux[i], uy[i]) (uy unused for p = 1): argmin_j (ux − x_j)² + (uy − y_j)², lowest j on
    /// ties. The vector version runs 8 items per lane set with the same FP32 operations, so both agree bit for bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void Nearest(ReadOnlySpan<float> ux, ReadOnlySpan<float> uy, Span<byte> codes, bool vectorized)
    {
        int count = ux.Length, i = 0;
        float[] gx = _x, gy = _y;
        int n = Count;
        bool twoD = Dimension == 2;
        if (vectorized && Vector256.IsHardwareAccelerated)
        {
            ref float rx = ref MemoryMarshal.GetReference(ux);
            ref float ry = ref MemoryMarshal.GetReference(uy);
            ref float rgx = ref MemoryMarshal.GetArrayDataReference(gx);
            ref float rgy = ref twoD ? ref MemoryMarshal.GetArrayDataReference(gy) : ref rgx;
            // Four independent vectors (32 items) per pass over the grid: the compare-select chain through `best` is
            // serial in j, so interleaving four chains keeps the pipeline busy (about 3x faster than one at a time).
            for (; i + 32 <= count; i += 32)
            {
                var x0 = Vector256.LoadUnsafe(ref rx, (nuint)i);
                var x1 = Vector256.LoadUnsafe(ref rx, (nuint)(i + 8));
                var x2 = Vector256.LoadUnsafe(ref rx, (nuint)(i + 16));
                var x3 = Vector256.LoadUnsafe(ref rx, (nuint)(i + 24));
                var y0 = twoD ? Vector256.LoadUnsafe(ref ry, (nuint)i) : default;
                var y1 = twoD ? Vector256.LoadUnsafe(ref ry, (nuint)(i + 8)) : default;
                var y2 = twoD ? Vector256.LoadUnsafe(ref ry, (nuint)(i + 16)) : default;
                var y3 = twoD ? Vector256.LoadUnsafe(ref ry, (nuint)(i + 24)) : default;
                var b0 = Vector256.Create(float.PositiveInfinity);
                var b1 = b0;
                var b2 = b0;
                var b3 = b0;
                var i0 = Vector256<int>.Zero;
                var i1 = i0;
                var i2 = i0;
                var i3 = i0;
                for (int j = 0; j < n; j++)
                {
                    var px = Vector256.Create(Unsafe.Add(ref rgx, j));
                    var vj = Vector256.Create(j);
                    Vector256<float> d0, d1, d2, d3;
                    if (twoD)
                    {
                        var py = Vector256.Create(Unsafe.Add(ref rgy, j));
                        d0 = Distance(x0, px, y0, py);
                        d1 = Distance(x1, px, y1, py);
                        d2 = Distance(x2, px, y2, py);
                        d3 = Distance(x3, px, y3, py);
                    }
                    else
                    {
                        d0 = Distance(x0, px);
                        d1 = Distance(x1, px);
                        d2 = Distance(x2, px);
                        d3 = Distance(x3, px);
                    }
                    var c0 = Vector256.LessThan(d0, b0);
                    var c1 = Vector256.LessThan(d1, b1);
                    var c2 = Vector256.LessThan(d2, b2);
                    var c3 = Vector256.LessThan(d3, b3);
                    b0 = Vector256.ConditionalSelect(c0, d0, b0);
                    b1 = Vector256.ConditionalSelect(c1, d1, b1);
                    b2 = Vector256.ConditionalSelect(c2, d2, b2);
                    b3 = Vector256.ConditionalSelect(c3, d3, b3);
                    i0 = Vector256.ConditionalSelect(c0.AsInt32(), vj, i0);
                    i1 = Vector256.ConditionalSelect(c1.AsInt32(), vj, i1);
                    i2 = Vector256.ConditionalSelect(c2.AsInt32(), vj, i2);
                    i3 = Vector256.ConditionalSelect(c3.AsInt32(), vj, i3);
                }
                StoreCodes(i0, codes[i..]);
                StoreCodes(i1, codes[(i + 8)..]);
                StoreCodes(i2, codes[(i + 16)..]);
                StoreCodes(i3, codes[(i + 24)..]);
            }
            for (; i + 8 <= count; i += 8)
            {
                var x0 = Vector256.LoadUnsafe(ref rx, (nuint)i);
                var y0 = twoD ? Vector256.LoadUnsafe(ref ry, (nuint)i) : default;
                var b0 = Vector256.Create(float.PositiveInfinity);
                var i0 = Vector256<int>.Zero;
                for (int j = 0; j < n; j++)
                {
                    var px = Vector256.Create(Unsafe.Add(ref rgx, j));
                    var d0 = twoD ? Distance(x0, px, y0, Vector256.Create(Unsafe.Add(ref rgy, j))) : Distance(x0, px);
                    var c0 = Vector256.LessThan(d0, b0);
                    b0 = Vector256.ConditionalSelect(c0, d0, b0);
                    i0 = Vector256.ConditionalSelect(c0.AsInt32(), Vector256.Create(j), i0);
                }
                StoreCodes(i0, codes[i..]);
            }
        }
        for (; i < count; i++)
        {
            float x = ux[i], y = twoD ? uy[i] : 0f;
            float best = float.PositiveInfinity;
            int index = 0;
            for (int j = 0; j < n; j++)
            {
                float dx = x - gx[j];
                float d = dx * dx;
                if (twoD)
                {
                    float dy = y - gy[j];
                    d += dy * dy;
                }
                if (d < best)
                {
                    best = d;
                    index = j;
                }
            }
            codes[i] = (byte)index;
        }
    }

    // (x − px)² + (y − py)², the same operations as the scalar loop
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Distance(Vector256<float> x, Vector256<float> px, Vector256<float> y, Vector256<float> py)
    {
        var dx = x - px;
        var dy = y - py;
        return dx * dx + dy * dy;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Distance(Vector256<float> x, Vector256<float> px)
    {
        var dx = x - px;
        return dx * dx;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreCodes(Vector256<int> index, Span<byte> codes)
    {
        for (int l = 0; l < 8; l++) codes[l] = (byte)index.GetElement(l);
    }

    private static Dictionary<(int, int), (float[] Points, double Mse)> LoadResource()
    {
        using var stream = typeof(HiggsGrid).Assembly.GetManifestResourceStream(ResourceName);
        if (stream is null) QuantThrow.InvalidData_Resource(ResourceName, "not found in the assembly");
        return ParseGrids(stream);
    }

    /// <summary>Reads the resource's JSON: {"grids": [{"p": 2, "n": 16, "mse": …, "points": [x0, y0, x1, y1, …]}, …]}.</summary>
    internal static Dictionary<(int, int), (float[] Points, double Mse)> ParseGrids(Stream json)
    {
        var result = new Dictionary<(int, int), (float[], double)>();
        using var document = JsonDocument.Parse(json);
        foreach (var grid in document.RootElement.GetProperty("grids").EnumerateArray())
        {
            int p = grid.GetProperty("p").GetInt32();
            int n = grid.GetProperty("n").GetInt32();
            double mse = grid.GetProperty("mse").GetDouble();
            var values = grid.GetProperty("points");
            var points = new float[values.GetArrayLength()];
            int k = 0;
            foreach (var v in values.EnumerateArray()) points[k++] = v.GetSingle();
            if (points.Length != p * n) QuantThrow.InvalidData_Resource(ResourceName, $"grid p = {p}, n = {n} has {points.Length} values, expected {p * n}");
            result[(p, n)] = (points, mse);
        }
        return result;
    }
}
