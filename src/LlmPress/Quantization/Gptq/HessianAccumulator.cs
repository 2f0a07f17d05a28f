using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using LlmPress.Numerics;

namespace LlmPress.Quantization;

/// <summary>
/// GPTQ's layer Hessian H = 2/N · Σₜ xₜxₜᵀ over N calibration tokens xₜ (the inputs of one linear layer), accumulated
/// batch by batch (gptq.py's <c>add_batch</c>). One accumulator serves every linear layer reading the same input
/// (q/k/v, gate/up). Not thread-safe: call it from one thread (the work inside is parallel).
/// </summary>
/// <remarks>
/// <para>
/// Precision: each slice of at most <see cref="FoldTokens"/> tokens is multiplied out in FP32 by the GEMM-class SYRK
/// (<see cref="SymmetricRankUpdate"/>), then folded into a double-precision running sum, which is scaled by 2/N only
/// when read. gptq.py instead rescales an FP32 H by n/(n + b) every batch; here the FP32 rounding stays that of a
/// ≤ 4096-term dot product however many tokens are added (262,144 = 128 × 2048 is the GPTQ default).
/// Small batches are staged and multiplied <see cref="StageTokens"/> at a time, so one-token calls stay GEMM-class.
/// N counts tokens (gptq.py counts sequences: a constant factor when they have equal lengths, which cancels against the
/// dampening, relative to mean(diag H)).
/// </para>
/// <para>
/// Memory for n input columns: an FP32 [n, n] partial sum, the double lower triangle (n(n+1)/2 · 8 bytes ≈ the same
/// again) and a [256, n] staging buffer: about 8n² bytes, 512 MiB at n = 8192 (plus 256 MiB for each
/// <see cref="GetHessian()"/> result).
/// </para>
/// </remarks>
public sealed class HessianAccumulator
{
    /// <summary>Most tokens summed in FP32 before the partial sum is folded into the double total.</summary>
    public const int FoldTokens = 4096;

    /// <summary>Batches smaller than this are copied into a staging buffer and multiplied together.</summary>
    public const int StageTokens = 256;

    private readonly float[] _block;   // [Columns, Columns] FP32 partial sum (lower triangle meaningful, upper undefined)
    private readonly double[] _sum;    // lower triangle packed by rows: row i at i(i+1)/2, i + 1 values
    private readonly bool _parallel;
    private float[]? _stage;           // [StageTokens, Columns]
    private int _staged;
    private int _blockTokens;

    /// <param name="columns">Input features of the layer (the Hessian is [columns, columns]).</param>
    /// <param name="parallel">Let the SYRK use up to <see cref="Parallelism.MaxThreads"/> threads (results are identical either way).</param>
    public HessianAccumulator(int columns, bool parallel = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns);
        Columns = columns;
        _parallel = parallel;
        _block = new float[(long)columns * columns];
        _sum = new double[(long)columns * (columns + 1) / 2];
    }

    /// <summary>Input features: the Hessian is [Columns, Columns].</summary>
    public int Columns { get; }

    /// <summary>Tokens added so far (N).</summary>
    public long TokenCount { get; private set; }

    /// <summary>
    /// Adds a batch of inputs: effectively Σ += xᵀx and N += tokenCount.
    /// </summary>
    /// <param name="x">[tokenCount, Columns] row-major, one token per row.</param>
    /// <param name="tokenCount">Rows of x (≥ 0).</param>
    /// <exception cref="ArgumentException">x does not hold [tokenCount, Columns], or holds a NaN/∞ (the message names token and column).</exception>
    public void Add(ReadOnlySpan<float> x, int tokenCount)
    {
        int n = Columns;
        ArgumentOutOfRangeException.ThrowIfNegative(tokenCount);
        if (x.Length != (long)tokenCount * n)
            GptqThrow.Argument_Length(null, nameof(x), $"[{tokenCount}, {n}]", (long)tokenCount * n, x.Length);
        int bad = GroupRange.IndexOfNonFinite(x);
        if (bad >= 0) GptqThrow.Argument_TokenNonFinite(bad / n, bad % n, x[bad]);

        int t = 0;
        // Big batches go straight to the SYRK, in slices that keep each FP32 partial sum within FoldTokens tokens.
        while (tokenCount - t >= StageTokens)
        {
            int slice = Math.Min(tokenCount - t, FoldTokens);
            Multiply(x.Slice(t * n, slice * n), slice);
            t += slice;
        }
        // The remainder (< StageTokens tokens) is staged.
        while (t < tokenCount)
        {
            _stage ??= new float[(long)StageTokens * n];
            int take = Math.Min(tokenCount - t, StageTokens - _staged);
            x.Slice(t * n, take * n).CopyTo(_stage.AsSpan(_staged * n));
            _staged += take;
            t += take;
            if (_staged == StageTokens) FlushStage();
        }
        TokenCount += tokenCount;
    }

    /// <summary>H = 2/N · Σ xxᵀ as a new float[Columns · Columns] (row-major, exactly symmetric).</summary>
    /// <exception cref="InvalidOperationException">No tokens were added.</exception>
    public float[] GetHessian()
    {
        var h = new float[(long)Columns * Columns];
        GetHessian(h);
        return h;
    }

    /// <summary>Writes H = 2/N · Σ xxᵀ into <paramref name="destination"/> ([Columns, Columns]); accumulation may go on afterwards.</summary>
    /// <exception cref="ArgumentException">destination is shorter than Columns².</exception>
    /// <exception cref="InvalidOperationException">No tokens were added.</exception>
    public void GetHessian(Span<float> destination)
    {
        int n = Columns;
        if (destination.Length < (long)n * n) GptqThrow.Argument_Length(null, nameof(destination), $"[{n}, {n}]", (long)n * n, destination.Length);
        if (TokenCount == 0) GptqThrow.InvalidOperation_NoTokens();
        FlushStage();
        Fold();
        double scale = 2.0 / TokenCount;
        for (int i = 0; i < n; i++)
        {
            long p = (long)i * (i + 1) / 2;
            for (int j = 0; j <= i; j++)
            {
                float v = (float)(_sum[p + j] * scale);
                destination[i * n + j] = v;
                destination[j * n + i] = v;
            }
        }
    }

    /// <summary>Forgets all tokens (keeps the buffers).</summary>
    public void Reset()
    {
        Array.Clear(_sum);
        Array.Clear(_block);
        _blockTokens = 0;
        _staged = 0;
        TokenCount = 0;
    }

    private void Multiply(ReadOnlySpan<float> x, int tokens)
    {
        if (_blockTokens + tokens > FoldTokens) Fold();
        // Fold reads only the lower triangle, so the SYRK's mirror pass (an n² strided copy per batch) is skipped.
        SymmetricRankUpdate.AccumulateLower(x, tokens, Columns, 1f, _block, _parallel);
        _blockTokens += tokens;
    }

    private void FlushStage()
    {
        if (_staged == 0) return;
        Multiply(_stage.AsSpan(0, _staged * Columns), _staged);
        _staged = 0;
    }

    // Σ += block (lower triangle, widened to double); block = 0.
    private void Fold()
    {
        if (_blockTokens == 0) return;
        int n = Columns;
        for (int i = 0; i < n; i++)
        {
            var row = _block.AsSpan(i * n, i + 1);
            var sum = _sum.AsSpan((int)((long)i * (i + 1) / 2), i + 1);
            int j = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                // The same double additions of widened floats as the scalar loop, 16 at a time.
                ref float r0 = ref MemoryMarshal.GetReference(row);
                ref double s0 = ref MemoryMarshal.GetReference(sum);
                for (; j + 16 <= row.Length; j += 16)
                {
                    var (lower, upper) = Vector512.Widen(Vector512.LoadUnsafe(ref r0, (nuint)j));
                    (Vector512.LoadUnsafe(ref s0, (nuint)j) + lower).StoreUnsafe(ref s0, (nuint)j);
                    (Vector512.LoadUnsafe(ref s0, (nuint)(j + 8)) + upper).StoreUnsafe(ref s0, (nuint)(j + 8));
                }
            }
            for (; j < row.Length; j++) sum[j] += row[j];
        }
        Array.Clear(_block);
        _blockTokens = 0;
    }
}
