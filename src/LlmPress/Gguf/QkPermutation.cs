namespace LlmPress.Gguf;

/// <summary>
/// The row order llama.cpp expects for Llama's q_proj / k_proj (convert_hf_to_gguf.py LlamaModel.permute): Hugging Face
/// checkpoints rotate halves (row h·d + a·d/2 + j pairs with h·d + d/2 + j), llama.cpp's RoPE rotates adjacent rows, so
/// each head's rows are interleaved: GGUF row h·d + 2j + a = HF row h·d + a·d/2 + j (a ∈ {0, 1}, j &lt; d/2).
/// Applied to whole rows of bytes, so it works on any ggml type (every row is whole blocks). Qwen2 is not permuted.
/// </summary>
public static class QkPermutation
{
    /// <summary>The HF row that GGUF row <paramref name="ggufRow"/> holds, for heads of <paramref name="headDim"/> rows.</summary>
    public static int SourceRow(int ggufRow, int headDim)
    {
        int head = ggufRow / headDim, i = ggufRow % headDim;
        int j = i >> 1, a = i & 1;
        return head * headDim + a * (headDim / 2) + j;
    }

    /// <summary>HF order → GGUF order: <paramref name="rows"/> rows of <paramref name="rowBytes"/> bytes.</summary>
    public static byte[] ToGguf(ReadOnlySpan<byte> data, int rows, int headDim)
    {
        int rowBytes = Check(data.Length, rows, headDim);
        var result = new byte[data.Length];
        for (int r = 0; r < rows; r++)
            data.Slice(SourceRow(r, headDim) * rowBytes, rowBytes).CopyTo(result.AsSpan(r * rowBytes, rowBytes));
        return result;
    }

    /// <summary>GGUF order → HF order, for FP32 rows of <paramref name="cols"/> values.</summary>
    public static float[] ToHuggingFace(ReadOnlySpan<float> data, int rows, int cols, int headDim)
    {
        Check(data.Length, rows, headDim);
        var result = new float[data.Length];
        for (int r = 0; r < rows; r++)
            data.Slice(r * cols, cols).CopyTo(result.AsSpan(SourceRow(r, headDim) * cols, cols));
        return result;
    }

    /// <summary>GGUF order → HF order, for rows of raw bytes (whole rows of any type).</summary>
    public static byte[] ToHuggingFace(ReadOnlySpan<byte> data, int rows, int headDim)
    {
        int rowBytes = Check(data.Length, rows, headDim);
        var result = new byte[data.Length];
        for (int r = 0; r < rows; r++)
            data.Slice(r * rowBytes, rowBytes).CopyTo(result.AsSpan(SourceRow(r, headDim) * rowBytes, rowBytes));
        return result;
    }

    private static int Check(int length, int rows, int headDim)
    {
        if (rows <= 0 || headDim <= 0 || headDim % 2 != 0 || rows % headDim != 0 || length % rows != 0)
            throw new ArgumentException($"Cannot permute {rows} rows ({length} elements) in heads of {headDim}: rows must be whole heads of even size.");
        return length / rows;
    }
}
