using LlmPress.Gguf;
using LlmPress.Numerics;

namespace LlmPress.Models;

/// <summary>
/// Loads a Llama-family model from a GGUF file (architectures llama and qwen2): the configuration from the metadata
/// (<see cref="GgufModelMetadata.ReadConfig"/>), every weight decoded to FP32 with ggml's dequantization and, for
/// llama, q/k rows put back into Hugging Face order (<see cref="QkPermutation"/>).
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
        var embedding = WeightView.FromFloats(ReadMatrix(file, GgufTensorNames.Embedding, c.VocabSize, d), c.VocabSize, d);

        var layers = new DecoderLayer[c.LayerCount];
        for (int l = 0; l < c.LayerCount; l++)
        {
            int layer = l;
            LinearLayer Linear(string module, int rows, int cols, bool bias)
            {
                string name = GgufTensorNames.ForModule(module) ?? throw new InvalidOperationException($"No GGUF name for {module}.");
                bool qk = permute && (name.EndsWith(".attn_q", StringComparison.Ordinal) || name.EndsWith(".attn_k", StringComparison.Ordinal));
                var weight = ReadMatrix(file, name + ".weight", rows, cols);
                float[]? b = bias ? ReadVector(file, name + ".bias", rows) : null;
                if (qk)
                {
                    weight = QkPermutation.ToHuggingFace(weight, rows, cols, c.HeadDim);
                    if (b is not null) b = QkPermutation.ToHuggingFace(b, rows, 1, c.HeadDim);
                }
                return new LinearLayer(module, WeightView.FromFloats(weight, rows, cols), b);
            }
            layers[l] = DecoderLayer.Create(layer, c, rope,
                new RmsNorm(ReadVector(file, GgufTensorNames.AttentionNorm(layer), d), c.RmsNormEps),
                new RmsNorm(ReadVector(file, GgufTensorNames.FfnNorm(layer), d), c.RmsNormEps),
                Linear);
        }
        var finalNorm = new RmsNorm(ReadVector(file, GgufTensorNames.FinalNorm, d), c.RmsNormEps);
        var head = c.TieWordEmbeddings
            ? new LinearLayer("lm_head", embedding)
            : new LinearLayer("lm_head", WeightView.FromFloats(ReadMatrix(file, GgufTensorNames.Output, c.VocabSize, d), c.VocabSize, d));
        return new LlamaModel(c, embedding, layers, finalNorm, head);
    }

    /// <summary>A 2-D tensor [rows, cols] decoded to FP32 (in the file's row order).</summary>
    /// <exception cref="InvalidDataException">Missing, or another shape.</exception>
    public static float[] ReadMatrix(GgufFile file, string name, int rows, int cols)
    {
        var info = file.GetTensor(name);
        if (info.Shape is not [long r, long k] || r != rows || k != cols)
            throw new InvalidDataException($"{file.Path}: tensor '{name}' has shape {info.ShapeText} but [{rows}, {cols}] was expected; the metadata does not match the weights.");
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
