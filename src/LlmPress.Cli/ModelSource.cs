using LlmPress.Gguf;
using LlmPress.Models;
using LlmPress.Tokenization;

namespace LlmPress.Cli;

/// <summary>Opens what a verb's &lt;model&gt; argument names: a Hugging Face–layout directory or a .gguf file.</summary>
internal static class ModelSource
{
    /// <summary>Whether <paramref name="path"/> names a GGUF file (an existing file ending in .gguf).</summary>
    public static bool IsGguf(string path) => File.Exists(path) && path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase);

    public static LlamaModel OpenModel(string path)
    {
        if (IsGguf(path)) return GgufModelLoader.Load(path);
        if (File.Exists(path))
            throw new CliException($"{path}: expected a model directory (config.json + *.safetensors) or a .gguf file, got another file.");
        if (!Directory.Exists(path))
            throw new CliException($"{path}: model directory not found.");
        return LlamaModel.Load(path);
    }

    public static Tokenizer OpenTokenizer(string modelPath)
    {
        if (IsGguf(modelPath))
        {
            using var gguf = GgufFile.Open(modelPath);
            return GgufTokenizer.Load(gguf);
        }
        string file = Path.Combine(modelPath, "tokenizer.json");
        if (!File.Exists(file))
            throw new CliException($"{modelPath}: no tokenizer.json; this verb needs the model's tokenizer to turn text into tokens.");
        return Tokenizer.Load(file);
    }
}
