using LlmPress.Models;
using LlmPress.Tokenization;

namespace LlmPress.Cli;

/// <summary>Opens what a verb's &lt;model&gt; argument names: a Hugging Face–layout directory.</summary>
internal static class ModelSource
{
    public static LlamaModel OpenModel(string path)
    {
        if (File.Exists(path))
            throw new CliException($"{path}: expected a model directory (config.json + *.safetensors), got a file.");
        if (!Directory.Exists(path))
            throw new CliException($"{path}: model directory not found.");
        return LlamaModel.Load(path);
    }

    public static Tokenizer OpenTokenizer(string modelPath)
    {
        string file = Path.Combine(modelPath, "tokenizer.json");
        if (!File.Exists(file))
            throw new CliException($"{modelPath}: no tokenizer.json; this verb needs the model's tokenizer to turn text into tokens.");
        return Tokenizer.Load(file);
    }
}
