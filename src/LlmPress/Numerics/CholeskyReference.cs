namespace LlmPress.Numerics;

/// <summary>Scalar, double-precision definitions of <see cref="Cholesky"/>'s operations (unblocked textbook forms).</summary>
public static class CholeskyReference
{
    /// <summary>a = L·Lᵀ in place (lower triangle read; L below, zeros above). Fails on a pivot ≤ 0 or NaN.</summary>
    public static bool TryFactor(Span<float> a, int n, out int failedColumn)
    {
        var l = ToDoubleLower(a, n);
        if (!FactorInPlace(l, n, out failedColumn)) return false;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) a[i * n + j] = j <= i ? (float)l[i, j] : 0f;
        return true;
    }

    /// <summary>inverse = (L·Lᵀ)⁻¹ from the lower triangle of factor, via X = L⁻¹ (forward substitution) and XᵀX.</summary>
    public static void Invert(ReadOnlySpan<float> factor, int n, Span<float> inverse)
    {
        var x = InvertLower(ToDoubleLower(factor, n), n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = Math.Max(i, j); p < n; p++) sum += x[p, i] * x[p, j];
                inverse[i * n + j] = (float)sum;
            }
    }

    /// <summary>
    /// GPTQ's route, step by step in double: L = chol(h), h⁻¹ = L⁻ᵀL⁻¹, U = chol(h⁻¹)ᵀ (upper; zeros below).
    /// failedColumn reports a failure of the first factorisation.
    /// </summary>
    public static bool UpperFactorOfInverse(Span<float> h, int n, out int failedColumn)
    {
        var l = ToDoubleLower(h, n);
        if (!FactorInPlace(l, n, out failedColumn)) return false;
        var x = InvertLower(l, n);
        var inv = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++)
            {
                double sum = 0;
                for (int p = i; p < n; p++) sum += x[p, i] * x[p, j];
                inv[i, j] = sum;
            }
        if (!FactorInPlace(inv, n, out failedColumn)) return false;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) h[i * n + j] = j >= i ? (float)inv[j, i] : 0f;
        return true;
    }

    private static double[,] ToDoubleLower(ReadOnlySpan<float> a, int n)
    {
        var l = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) l[i, j] = a[i * n + j];
        return l;
    }

    private static bool FactorInPlace(double[,] l, int n, out int failedColumn)
    {
        for (int j = 0; j < n; j++)
        {
            double pivot = l[j, j];
            for (int p = 0; p < j; p++) pivot -= l[j, p] * l[j, p];
            if (!(pivot > 0))
            {
                failedColumn = j;
                return false;
            }
            double d = Math.Sqrt(pivot);
            l[j, j] = d;
            for (int i = j + 1; i < n; i++)
            {
                double s = l[i, j];
                for (int p = 0; p < j; p++) s -= l[i, p] * l[j, p];
                l[i, j] = s / d;
            }
            for (int q = j + 1; q < n; q++) l[j, q] = 0;
        }
        failedColumn = -1;
        return true;
    }

    private static double[,] InvertLower(double[,] l, int n)
    {
        var x = new double[n, n];
        for (int c = 0; c < n; c++)
        {
            x[c, c] = 1 / l[c, c];
            for (int i = c + 1; i < n; i++)
            {
                double s = 0;
                for (int p = c; p < i; p++) s += l[i, p] * x[p, c];
                x[i, c] = -s / l[i, i];
            }
        }
        return x;
    }
}
