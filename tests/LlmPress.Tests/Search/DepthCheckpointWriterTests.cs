using System.Text.Json.Nodes;
using LlmPress.IO;
using LlmPress.Models;
using LlmPress.Search;

namespace LlmPress.Tests.Search;

/// <summary>
/// A depth-pruned stories260K written by <see cref="DepthCheckpointWriter"/>: layers with both sub-blocks dropped are
/// removed (num_hidden_layers lowered, later layers renumbered), a lone dropped sub-block is stored with a zero output
/// projection and listed in config.json; the checkpoint computes exactly the in-memory candidate's logits, also when
/// loaded by an engine that ignores llmpress_dropped_blocks (the zeros alone remove the sub-block), and an existing
/// output is never half-replaced.
/// </summary>
public class DepthCheckpointWriterTests
{
    private static readonly int[] Tokens = [1, 403, 261, 378, 425, 314, 13, 284, 359, 306, 1, 66, 401, 29, 318, 400];

    private static float[] Logits(LlamaModel model) => model.Forward(Tokens);

    [Fact]
    public void RemovedAndZeroedBlocks_LoadWithTheRightLayers_AndComputeTheCandidateExactly()
    {
        string source = SharedData.Require("models", "stories260K");
        using var dir = new TempDirectory();
        using var dense = LlamaModel.Load(source);
        // Layer 1 loses both sub-blocks (removed), layer 3 its attention, layer 4 its MLP.
        var levels = DepthUnits.Dropping(10, [2, 3, 6, 9]);
        DepthUnits.Apply(dense, levels);
        var expected = Logits(dense);
        DepthUnits.Restore(dense);

        string output = dir.File("out");
        var written = DepthCheckpointWriter.Write(source, dense.Store!, 5, levels, output, overwrite: false);
        Assert.Equal(4, written.DecoderLayers);
        Assert.Equal([1], written.RemovedLayers);
        Assert.Equal([new DroppedBlock(2, DecoderBlock.SelfAttention), new DroppedBlock(3, DecoderBlock.Mlp)], written.ZeroedBlocks);

        using (var pruned = LlamaModel.Load(output))
        {
            Assert.Equal(4, pruned.Config.LayerCount);
            Assert.Equal(written.ZeroedBlocks, pruned.Config.DroppedBlocks);
            Assert.True(pruned.Layers[2].SkipAttention && pruned.Layers[3].SkipMlp && !pruned.Layers[0].SkipAttention);
            Assert.Equal(expected, Logits(pruned)); // the same operations on the same weights: bit-identical
            // Renumbered: written layer 1 is source layer 2.
            Assert.Equal(dense.Store!.GetData("model.layers.2.mlp.up_proj.weight").ToArray(), pruned.Store!.GetData("model.layers.1.mlp.up_proj.weight").ToArray());
            Assert.False(pruned.Store.Contains("model.layers.4.input_layernorm.weight"));
            Assert.All(pruned.Store.GetData("model.layers.2.self_attn.o_proj.weight").ToArray(), b => Assert.Equal(0, b));
            Assert.All(pruned.Store.GetData("model.layers.3.mlp.down_proj.weight").ToArray(), b => Assert.Equal(0, b));
        }
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));

        // An engine that ignores llmpress_dropped_blocks runs the zeroed sub-blocks: they add exact zeros.
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!;
        Assert.Equal(4, (int)config["num_hidden_layers"]!);
        config.Remove(DroppedBlock.ConfigKey);
        File.WriteAllText(Path.Combine(output, "config.json"), config.ToJsonString());
        using var plain = LlamaModel.Load(output);
        Assert.All(plain.Layers, l => Assert.False(l.SkipAttention || l.SkipMlp));
        Assert.Equal(expected, Logits(plain));
    }

    [Fact]
    public void EverySubBlockDropped_KeepsOneZeroedLayer_AndTheModelStillLoads()
    {
        string source = SharedData.Require("models", "stories260K");
        using var dir = new TempDirectory();
        using var dense = LlamaModel.Load(source);
        var written = DepthCheckpointWriter.Write(source, dense.Store!, 5, DepthUnits.Dropping(10, Enumerable.Range(0, 10)), dir.File("out"), overwrite: false);
        Assert.Equal(1, written.DecoderLayers);
        Assert.Equal([0, 1, 2, 3], written.RemovedLayers);
        using var pruned = LlamaModel.Load(dir.File("out"));
        Assert.True(pruned.Layers[0].SkipAttention && pruned.Layers[0].SkipMlp);
        DepthUnits.Apply(dense, DepthUnits.Dropping(10, Enumerable.Range(0, 10)));
        Assert.Equal(Logits(dense), Logits(pruned));
    }

    [Fact]
    public void AnExistingOutput_IsLeftAlone_WithoutOverwrite()
    {
        string source = SharedData.Require("models", "stories260K");
        using var dir = new TempDirectory();
        using var dense = LlamaModel.Load(source);
        string output = dir.File("out");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "keep.txt"), "mine");
        Assert.Throws<IOException>(() => DepthCheckpointWriter.Write(source, dense.Store!, 5, DepthUnits.Dropping(10, [0]), output, overwrite: false));
        Assert.Equal(["keep.txt"], Directory.GetFiles(output).Select(Path.GetFileName));
        Assert.Equal(["out"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName)); // no temporary left behind
    }
}
