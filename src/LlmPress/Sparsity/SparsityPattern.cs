using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace LlmPress.Sparsity;

/// <summary>
/// Which weights of a linear layer [rows, cols] are zeroed: an unstructured fraction of the whole layer, or N zeros
/// in every group of M consecutive input weights of each row (N:M; 2:4 is NVIDIA's sparse tensor-core layout, where a
/// group of 4 keeps 2 values and their 2-bit positions).
/// </summary>
public readonly record struct SparsityPattern
{
    private SparsityPattern(double fraction, int n, int m)
    {
        Fraction = fraction;
        N = n;
        M = m;
    }

    /// <summary>Fraction of zeros: as given for unstructured sparsity, N/M for N:M.</summary>
    public double Fraction { get; }

    /// <summary>N:M: zeros per group (0 for unstructured).</summary>
    public int N { get; }

    /// <summary>N:M: group width along the input dimension (0 for unstructured).</summary>
    public int M { get; }

    /// <summary>True for an N:M pattern.</summary>
    public bool IsNOfM => M > 0;

    /// <summary>Dense: nothing pruned.</summary>
    public static SparsityPattern Dense { get; } = new(0, 0, 0);

    /// <summary>An unstructured fraction of zeros.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The fraction is not in [0, 1).</exception>
    public static SparsityPattern Unstructured(double fraction)
    {
        if (!(fraction >= 0 && fraction < 1))
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction,
                $"Sparsity must be in [0, 1) (the fraction of weights set to zero), not {fraction.ToString(CultureInfo.InvariantCulture)}.");
        return new SparsityPattern(fraction, 0, 0);
    }

    /// <summary>N zeros in every M consecutive input weights of a row.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not 1 ≤ N &lt; M ≤ 256.</exception>
    public static SparsityPattern NOfM(int n, int m)
    {
        if (m < 2 || m > 256)
            throw new ArgumentOutOfRangeException(nameof(m), m, $"N:M sparsity needs a group width M between 2 and 256, not {m}.");
        if (n < 1 || n >= m)
            throw new ArgumentOutOfRangeException(nameof(n), n, $"N:M sparsity needs 1 ≤ N < M (N zeros in each group of M), not {n}:{m}.");
        return new SparsityPattern((double)n / m, n, m);
    }

    /// <summary>"0.5", "50%" (unstructured) or "2:4" (N:M).</summary>
    public string Name => IsNOfM ? $"{N}:{M}" : Fraction.ToString("0.####", CultureInfo.InvariantCulture);

    /// <inheritdoc/>
    public override string ToString() => Name;

    /// <summary>Parses "0.5", "50%" or "2:4".</summary>
    /// <exception cref="FormatException">Not a pattern.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A fraction outside [0, 1) or an N:M with N ≥ M.</exception>
    public static SparsityPattern Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string t = text.Trim();
        int colon = t.IndexOf(':');
        if (colon >= 0)
        {
            if (int.TryParse(t.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out int n)
                && int.TryParse(t.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int m))
                return NOfM(n, m);
        }
        else
        {
            bool percent = t.EndsWith('%');
            var number = percent ? t.AsSpan(0, t.Length - 1) : t.AsSpan();
            if (double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out double f))
                return Unstructured(percent ? f / 100 : f);
        }
        throw new FormatException($"'{text}' is not a sparsity: give a fraction of zeros in [0, 1) such as 0.5 (or 50%), or N:M such as 2:4.");
    }

    /// <summary>Parses like <see cref="Parse"/>, returning false instead of throwing.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out SparsityPattern? pattern)
    {
        pattern = null;
        if (text is null) return false;
        try
        {
            pattern = Parse(text);
            return true;
        }
        catch (Exception e) when (e is FormatException or ArgumentOutOfRangeException)
        {
            return false;
        }
    }

    /// <summary>
    /// Zeros this pattern puts in a [rows, cols] layer: N·(cols/M)·rows for N:M; round(fraction·rows·cols) for
    /// unstructured (rounded half to even, so the count is exact and reproducible).
    /// </summary>
    public long ZeroCount(int rows, int cols) =>
        IsNOfM ? (long)rows * (cols / M) * N : (long)Math.Round(Fraction * rows * (double)cols, MidpointRounding.ToEven);

    /// <summary>Checks that the pattern applies to a layer with <paramref name="cols"/> inputs (M must divide it).</summary>
    /// <exception cref="ArgumentException">M does not divide cols; the message names the layer.</exception>
    public void CheckFits(int cols, string? layer = null)
    {
        if (IsNOfM && cols % M != 0)
            throw new ArgumentException(
                $"{(layer is null ? "" : layer + ": ")}{Name} sparsity needs the input size to be a multiple of {M}, but it is {cols}. " +
                "HINT: keep this layer dense (--keep) or use unstructured sparsity.");
    }
}
