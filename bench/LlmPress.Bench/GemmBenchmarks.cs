using BenchmarkDotNet.Attributes;
using LlmPress.Numerics;

namespace LlmPress.Bench;

/// <summary>
/// BenchmarkDotNet view of the kernels (allocation check: the single-threaded calls should show 0 B once the
/// per-thread scratch has grown). Run: dotnet run -c Release --project bench/LlmPress.Bench -- bdn --filter '*Gemm*'
/// </summary>
[MemoryDiagnoser]
public class GemmBenchmarks
{
    private float[] _a = [], _b = [], _c = [];
    private WeightView _w;

    [Params(256, 1024)]
    public int N { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        _a = KernelBenchmark.Random(rng, (long)N * N);
        _b = KernelBenchmark.Random(rng, (long)N * N);
        _c = new float[(long)N * N];
        var bf16 = new byte[(long)N * N * 2];
        for (int i = 0; i < _b.Length; i++) BitConverter.TryWriteBytes(bf16.AsSpan(i * 2), FloatConversion.SingleToBFloat16(_b[i]));
        _w = new WeightView(DType.BF16, N, N, bf16);
    }

    [Benchmark(Baseline = true)]
    public void SgemmSingleThread() => Gemm.Sgemm(false, false, N, N, N, 1f, _a, N, _b, N, 0f, _c, N, parallel: false);

    [Benchmark]
    public void SgemmParallel() => Gemm.Sgemm(false, false, N, N, N, 1f, _a, N, _b, N, 0f, _c, N);

    [Benchmark]
    public void MultiplyByWeightBf16SingleThread() => Gemm.MultiplyByWeight(_a, N, _w, _c, parallel: false);

    [Benchmark]
    public void GemvBf16SingleThread() => Gemm.MultiplyByWeight(_a, 1, _w, _c, parallel: false);

    [Benchmark]
    public void SymmetricRankUpdateSingleThread() => SymmetricRankUpdate.Accumulate(_a, N, N, 1e-6f, _c, parallel: false);

    // Parallel over rows once the batch reaches 2^18 elements (it then allocates its small job object).
    [Benchmark]
    public void Hadamard() => HadamardTransform.Transform(_c, N, normalize: true);
}
