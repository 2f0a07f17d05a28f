namespace LlmPress.Numerics;

/// <summary>Scalar definition of <see cref="HadamardTransform"/>: radix-2 butterflies, stride 1 first.</summary>
public static class HadamardTransformReference
{
    /// <summary>Each row of data ([rows, rowLength]) ← H·row, then × <see cref="HadamardTransform.ScaleFor"/> if normalising.</summary>
    public static void Transform(Span<float> data, int rowLength, bool normalize)
    {
        float scale = HadamardTransform.ScaleFor(rowLength);
        for (int r = 0; r + rowLength <= data.Length; r += rowLength)
        {
            var row = data.Slice(r, rowLength);
            Butterflies(row);
            if (normalize)
                for (int i = 0; i < row.Length; i++) row[i] *= scale;
        }
    }

    /// <summary>Unnormalised in-place transform of one power-of-two-length row.</summary>
    public static void Butterflies(Span<float> x)
    {
        int n = x.Length;
        for (int h = 1; h < n; h *= 2)
            for (int start = 0; start < n; start += 2 * h)
                for (int j = start; j < start + h; j++)
                {
                    float a = x[j], b = x[j + h];
                    x[j] = a + b;
                    x[j + h] = a - b;
                }
    }
}
