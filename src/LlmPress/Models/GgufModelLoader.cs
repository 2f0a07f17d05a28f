using LlmPress.Gguf;
using LlmPress.Numerics;

namespace LlmPress.Models;

/// <summary>
/// Loads a Llama-family model from a GGUF file (architectures llama and qwen2): the configuration from the metadata
/// (<see cref="GgufModelMetadata.ReadConfig"/>), F32/F16/BF16 weights kept in their type, block-quantized ones decoded
/// to FP32 with ggml's dequantization, and for llama q/k rows put back into Hugging Face order (<see cref="QkPermutation"/>).
/// </summary>
public static class GgufModelLoader
{
    /// <summary>Loads <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Invalid GGUF, unsupported architecture, or a missing tensor or wrong shape (the message names it).</exception>
    public static LlamaModel Load(string path)
    {
        using var file = GgufFile.Open(path);
        return Load(file);
    }

    /// <summary>Builds the model from an opened file; the weights are copied, so the file may be disposed afterwards.</summary>
    public static LlamaModel Load(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var c = GgufModelMetadata.ReadConfig(file);
        string arch = GgufModelMetadata.Architecture(c);
        bool permute = GgufModelMetadata.PermutesQk(arch);
        int d = c.HiddenSize;
        var rope = new RotaryEmbedding(c.HeadDim, c.RopeTheta, c.RopeScaling);
        var embedding = ReadWeight(file, GgufTensorNames.Embedding, c.VocabSize, d, 0);

        var layers = new DecoderLayer[c.LayerCount];
        for (int l = 0; l < c.LayerCount; l++)
        {
            int layer = l;
            LinearLayer Linear(string module, int rows, int cols, bool bias)
            {
                string name = GgufTensorNames.ForModule(module) ?? throw new InvalidOperationException($"No GGUF name for {module}.");
                bool qk = permute && (name.EndsWith(".attn_q", StringComparison.Ordinal) || name.EndsWith(".attn_k", StringComparison.Ordinal));
                var weight = ReadWeight(file, name + ".weight", rows, cols, qk ? c.HeadDim : 0);
                float[]? b = bias ? ReadVector(file, name + ".bias", rows) : null;
                if (qk && b is not null) b = QkPermutation.ToHuggingFace(b, rows, 1, c.HeadDim);
                return new LinearLayer(module, weight, b);
            }
            layers[l] = DecoderLayer.Create(layer, c, rope,
                new RmsNorm(ReadVector(file, GgufTensorNames.AttentionNorm(layer), d), c.RmsNormEps),
                new RmsNorm(ReadVector(file, GgufTensorNames.FfnNorm(layer), d), c.RmsNormEps),
                Linear);
        }
        var finalNorm = new RmsNorm(ReadVector(file, GgufTensorNames.FinalNorm, d), c.RmsNormEps);
        var head = c.TieWordEmbeddings
            ? new LinearLayer("lm_head", embedding)
            : new LinearLayer("lm_head", ReadWeight(file, GgufTensorNames.Output, c.VocabSize, d, 0));
        return new LlamaModel(c, embedding, layers, finalNorm, head);
    }

    /// <summary>
    /// A weight matrix in Hugging Face row order: F32, F16 and BF16 tensors keep their type (a copy of the bytes, so
    /// half the memory of FP32 for 16-bit files), block types are dequantized to FP32.
    /// </summary>
    private static WeightView ReadWeight(GgufFile file, string name, int rows, int cols, int permuteHead)
    {
        var info = file.GetTensor(name);
        if (info.Type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16)
        {
            CheckShape(file, info, rows, cols);
            var bytes = file.GetData(info).Span;
            var type = info.Type switch { GgmlType.F32 => DType.F32, GgmlType.F16 => DType.F16, _ => DType.BF16 };
            return new WeightView(type, rows, cols, permuteHead > 0 ? QkPermutation.ToHuggingFace(bytes, rows, permuteHead) : bytes.ToArray());
        }
        var values = ReadMatrix(file, name, rows, cols);
        return WeightView.FromFloats(permuteHead > 0 ? QkPermutation.ToHuggingFace(values, rows, cols, permuteHead) : values, rows, cols);
    }

    private static void CheckShape(GgufFile file, GgufTensorInfo info, int rows, int cols)
    {
        if (info.Shape is not [long r, long k] || r != rows || k != cols)
            throw new InvalidDataException($"{file.Path}: tensor '{info.Name}' has shape {info.ShapeText} but [{rows}, {cols}] was expected; the metadata does not match the weights.");
    }

    /// <summary>A 2-D tensor [rows, cols] decoded to FP32 (in the file's row order).</summary>
    /// <exception cref="InvalidDataException">Missing, or another shape.</exception>
    public static float[] ReadMatrix(GgufFile file, string name, int rows, int cols)
    {
        var info = file.GetTensor(name);
        CheckShape(file, info, rows, cols);
        return GgmlCodec.Decode(info.Type, file.GetData(info).Span, rows, cols);
    }

    /// <summary>A 1-D tensor [length] decoded to FP32.</summary>
    public static float[] ReadVector(GgufFile file, string name, int length)
    {
        var info = file.GetTensor(name);
        if (info.Shape is not [long n] || n != length)
            throw new InvalidDataException($"{file.Path}: tensor '{name}' has shape {info.ShapeText} but [{length}] was expected; the metadata does not match the weights.");
        return GgmlCodec.Decode(info.Type, file.GetData(info).Span, 1, length);
    }
}
