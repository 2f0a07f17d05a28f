using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Tests.Numerics;

namespace LlmPress.Tests.Models;

[Collection(GlobalSettingsCollection.Name)] // one test sets Parallelism.MaxThreads
public class CausalAttentionTests
{
    /// <summary>Direct definition, in double: out = softmax(q·kᵀ/√d masked to visible keys) · v.</summary>
    private static float[] Reference(float[] q, float[] k, float[] v, int tokens, int start, int heads, int kvHeads, int headDim, int? window)
    {
        var output = new float[tokens * heads * headDim];
        int qs = heads * headDim, ks = kvHeads * headDim;
        for (int t = 0; t < tokens; t++)
        for (int h = 0; h < heads; h++)
        {
            int g = h / (heads / kvHeads), pos = start + t;
            int lo = window is { } w ? Math.Max(0, pos - w + 1) : 0;
            var scores = new double[pos + 1];
            double max = double.NegativeInfinity;
            for (int j = lo; j <= pos; j++)
            {
                double s = 0;
                for (int e = 0; e < headDim; e++) s += (double)q[t * qs + h * headDim + e] * k[j * ks + g * headDim + e];
                scores[j] = s / Math.Sqrt(headDim);
                max = Math.Max(max, scores[j]);
            }
            double sum = 0;
            for (int j = lo; j <= pos; j++) sum += scores[j] = Math.Exp(scores[j] - max);
            for (int e = 0; e < headDim; e++)
            {
                double acc = 0;
                for (int j = lo; j <= pos; j++) acc += scores[j] / sum * v[j * ks + g * headDim + e];
                output[t * qs + h * headDim + e] = (float)acc;
            }
        }
        return output;
    }

    /// <summary>The portable tiled path (forced AVX2 tier) on a shape the AVX-512 path would otherwise take.</summary>
    [Fact]
    public void PortablePathMatchesOnWideHeads()
    {
        var rng = new Random(17);
        float[] Rand(int n) { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 4 - 2); return a; }
        const int tokens = 300, heads = 6, kvHeads = 2, headDim = 64;
        var q = Rand(tokens * heads * headDim);
        var k = Rand(tokens * kvHeads * headDim);
        var v = Rand(tokens * kvHeads * headDim);
        var expected = Reference(q, k, v, tokens, 0, heads, kvHeads, headDim, null);
        var actual = new float[expected.Length];
        using (NumericsTestUtil.Force(LlmPress.Numerics.Kernels.KernelLevel.Avx2))
            CausalAttention.Forward(q, k, v, tokens, 0, heads, kvHeads, headDim, null, actual);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f * (1 + Math.Abs(expected[i])), $"[{i}] expected {expected[i]}, got {actual[i]}");
    }

    /// <summary>Work items are split across threads, never a softmax or a K sum: bit-identical for 1, 2, 3 threads.</summary>
    [Fact]
    public void IsIndependentOfThreadCount()
    {
        var rng = new Random(11);
        float[] Rand(int n) { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 4 - 2); return a; }
        const int tokens = 600, heads = 6, kvHeads = 2, headDim = 64;
        var q = Rand(tokens * heads * headDim);
        var k = Rand(tokens * kvHeads * headDim);
        var v = Rand(tokens * kvHeads * headDim);
        float[] Run(int threads)
        {
            var output = new float[q.Length];
            using (NumericsTestUtil.Threads(threads))
                CausalAttention.Forward(q, k, v, tokens, 0, heads, kvHeads, headDim, null, output);
            return output;
        }
        var one = Run(1);
        foreach (int threads in new[] { 2, 3 })
        {
            var other = Run(threads);
            for (int i = 0; i < one.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(one[i]) == BitConverter.SingleToInt32Bits(other[i]), $"threads {threads}: [{i}] {one[i]:R} vs {other[i]:R}");
        }
    }

    /// <summary>The decode path splits KV heads over threads on long caches: bit-identical for 1, 2, 3 threads.</summary>
    [Fact]
    public void DecodeIsIndependentOfThreadCount()
    {
        var rng = new Random(12);
        float[] Rand(int n) { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 4 - 2); return a; }
        const int start = 3000, heads = 9, kvHeads = 3, headDim = 64;
        var q = Rand(heads * headDim);
        var k = Rand((start + 1) * kvHeads * headDim);
        var v = Rand((start + 1) * kvHeads * headDim);
        float[] Run(int threads)
        {
            var output = new float[q.Length];
            using (NumericsTestUtil.Threads(threads))
                CausalAttention.Forward(q, k, v, 1, start, heads, kvHeads, headDim, null, output);
            return output;
        }
        var one = Run(1);
        foreach (int threads in new[] { 2, 3 })
            Assert.True(one.AsSpan().SequenceEqual(Run(threads)), $"threads {threads}");
    }

    [Theory]
    [InlineData(1, 0, 4, 2, 8, null)]
    [InlineData(7, 0, 4, 4, 16, null)]
    [InlineData(130, 0, 6, 2, 16, null)]   // crosses query blocks of 128 (3 heads per KV head)
    [InlineData(700, 0, 6, 2, 16, null)]   // several full key tiles of 256 before the masked diagonal tile
    [InlineData(300, 400, 4, 4, 8, null)]  // continues a cache: full tiles from the cache, query blocks of 96
    [InlineData(600, 0, 8, 1, 8, 300)]     // sliding window: masked first tile, a row's first tiles see nothing
    [InlineData(517, 0, 16, 2, 8, 1000)]   // window longer than the sequence; query blocks of 48
    // headDim a multiple of 64: the AVX-512 transposed-score path (where the CPU has it)
    [InlineData(300, 0, 6, 2, 64, null)]   // diagonal tile + a full tile of 252 keys; partial key sliver
    [InlineData(5, 0, 3, 3, 64, null)]     // 5 rows padded to 192
    [InlineData(130, 400, 4, 1, 128, null)] // cache, two 64-wide output slivers, query block 96
    [InlineData(400, 0, 8, 2, 64, 150)]    // sliding window: skipped and partly visible score blocks
    [InlineData(200, 0, 1, 1, 64, 1)]      // window 1: each query sees only itself
    [InlineData(3, 61, 4, 1, 8, null)]     // continues a cache
    [InlineData(100, 0, 2, 1, 8, 17)]      // sliding window
    [InlineData(5, 40, 2, 2, 8, 9)]
    [InlineData(2, 30, 2, 1, 8, 9)]       // direct (decode) path with a sliding window
    [InlineData(3, 700, 8, 2, 64, null)]  // direct path, parallel over heads
    [InlineData(1, 95, 9, 3, 64, null)]   // decode, SmolLM2's heads: three query heads per cached key/value row
    [InlineData(2, 40, 4, 2, 16, 9)]      // decode path, sliding window, one 16-wide slice
    [InlineData(1, 30, 6, 3, 48, null)]   // a 48-wide head: three slices in one pass
    [InlineData(3, 50, 2, 1, 80, 20)]     // an 80-wide head: a pass of 64 columns and one of 16
    [InlineData(1, 2000, 9, 3, 64, null)] // decode over a long cache: KV heads split over threads
    [InlineData(1, 300, 14, 2, 128, null)] // decode, seven heads per KV head (3 + 3 + 1 per pass), two 64-column slices
    [InlineData(2, 900, 4, 2, 64, 600)]   // decode over a long sliding window: the first visible key is not 0
    public void MatchesDirectDefinition(int tokens, int start, int heads, int kvHeads, int headDim, int? window)
    {
        var rng = new Random(tokens * 31 + start);
        float[] Rand(int n) { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 4 - 2); return a; }
        int total = start + tokens;
        var q = Rand(tokens * heads * headDim);
        var k = Rand(total * kvHeads * headDim);
        var v = Rand(total * kvHeads * headDim);
        var expected = Reference(q, k, v, tokens, start, heads, kvHeads, headDim, window);
        var actual = new float[expected.Length];
        CausalAttention.Forward(q, k, v, tokens, start, heads, kvHeads, headDim, window, actual);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f * (1 + Math.Abs(expected[i])), $"[{i}] expected {expected[i]}, got {actual[i]}");

        // The KV cache's head-major layout: the same arithmetic on the same values, so the same bits. Positions past the
        // sequence hold NaN, which any read beyond it would carry into the output.
        int capacity = total + 5;
        var layout = KvLayout.HeadMajor(capacity, headDim);
        var kh = new float[kvHeads * capacity * headDim];
        var vh = new float[kh.Length];
        kh.AsSpan().Fill(float.NaN);
        vh.AsSpan().Fill(float.NaN);
        for (int g = 0; g < kvHeads; g++)
            for (int j = 0; j < total; j++)
            {
                k.AsSpan(j * kvHeads * headDim + g * headDim, headDim).CopyTo(kh.AsSpan((g * capacity + j) * headDim));
                v.AsSpan(j * kvHeads * headDim + g * headDim, headDim).CopyTo(vh.AsSpan((g * capacity + j) * headDim));
            }
        var headMajor = new float[expected.Length];
        CausalAttention.Forward(q, kh, vh, layout, tokens, start, heads, kvHeads, headDim, window, headMajor);
        Assert.True(actual.AsSpan().SequenceEqual(headMajor), "head-major layout differs from the interleaved one");
    }

    [Theory]
    [InlineData(1, 0, 64, null)]      // first decode step
    [InlineData(1, 150, 64, null)]    // decode: nine 16-key blocks and a 7-key tail
    [InlineData(2, 40, 128, null)]    // two queries, 128-wide heads
    [InlineData(1, 70, 48, 33)]       // width not a multiple of 64, sliding window
    [InlineData(37, 0, 64, null)]     // a prompt (widened once, the tiled path)
    [InlineData(9, 20, 64, 16)]       // a prompt continuing the cache, with a window
    public void Bf16CacheGivesTheBitsOfFp32KeysAndValuesRoundedToBf16(int tokens, int start, int headDim, int? window)
    {
        int heads = 9, kvHeads = 3, total = start + tokens;
        var config = RandomModel.SmolLM2Shape with { LayerCount = 1, HeadCount = heads, KvHeadCount = kvHeads, HeadDim = headDim, HiddenSize = heads * headDim };
        var random = new Random(tokens * 1000 + start);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        var q = Random(tokens * heads * headDim);
        var k = Random(total * kvHeads * headDim);
        var v = Random(total * kvHeads * headDim);
        float[] Rounded(float[] x) => x.Select(e => FloatConversion.BFloat16ToSingle(FloatConversion.SingleToBFloat16(e))).ToArray();

        var bf16 = new KvCache(config, total + 3, DType.BF16);
        var fp32 = new KvCache(config, total + 3);
        Assert.Equal(fp32.MemoryBytes / 2, bf16.MemoryBytes);
        bf16.Write(0, 0, total, k, v);
        fp32.Write(0, 0, total, Rounded(k), Rounded(v));
        foreach (var level in NumericsTestUtil.Levels())
            using (NumericsTestUtil.Force(level))
            {
                var expected = new float[q.Length];
                var actual = new float[q.Length];
                CausalAttention.Forward(q, fp32, 0, tokens, start, heads, window, expected);
                CausalAttention.Forward(q, bf16, 0, tokens, start, heads, window, actual);
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"{level}: the BF16 cache differs from FP32 rounded to BF16");
            }
    }

    [Fact]
    public void KvCacheRefusesStorageTypesItDoesNotHave()
    {
        var config = RandomModel.SmolLM2Shape with { LayerCount = 1 };
        Assert.Throws<ArgumentException>(() => new KvCache(config, 4, DType.F16));
        Assert.Throws<InvalidOperationException>(() => new KvCache(config, 4, DType.BF16).Keys(0).Length);
    }

    [Fact]
    public void KvCacheStoresEachHeadsPositionsContiguously()
    {
        var config = RandomModel.SmolLM2Shape with { LayerCount = 2, KvHeadCount = 3, HeadDim = 4, HeadCount = 3, HiddenSize = 12 };
        var cache = new KvCache(config, capacity: 5);
        // Two positions written as the projections give them: [position, kvHead · headDim], value = 100·pos + 10·head + e.
        var keys = new float[2 * 12];
        for (int t = 0; t < 2; t++) for (int h = 0; h < 3; h++) for (int e = 0; e < 4; e++) keys[t * 12 + h * 4 + e] = 100 * (t + 1) + 10 * h + e;
        var values = keys.Select(x => -x).ToArray();
        cache.Write(1, 1, 2, keys, values);
        var stored = cache.Keys(1);
        for (int h = 0; h < 3; h++)
            for (int pos = 1; pos <= 2; pos++)
                for (int e = 0; e < 4; e++)
                {
                    Assert.Equal(100 * pos + 10 * h + e, stored[(h * 5 + pos) * 4 + e]);
                    Assert.Equal(-(100 * pos + 10 * h + e), cache.Values(1)[(h * 5 + pos) * 4 + e]);
                }
        Assert.Equal(0f, stored[0]);
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Write(0, 4, 2, keys, values));
    }
}
