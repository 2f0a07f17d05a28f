using LlmPress.Sparsity;

namespace LlmPress.Tests.Sparsity;

public class SparsityFileTests
{
    [Fact]
    public void Load_ReadsFractionsPercentagesAndNOfM()
    {
        using var dir = new TempDirectory();
        string file = dir.File("s.json");
        File.WriteAllText(file, """{"a.q_proj": 0.6, "a.k_proj": "2:4", "a.v_proj": "25%", "a.o_proj": 0}""");
        var map = SparsityFile.Load(file);
        Assert.Equal(SparsityPattern.Unstructured(0.6), map["a.q_proj"]);
        Assert.Equal(SparsityPattern.NOfM(2, 4), map["a.k_proj"]);
        Assert.Equal(SparsityPattern.Unstructured(0.25), map["a.v_proj"]);
        Assert.Equal(SparsityPattern.Unstructured(0), map["a.o_proj"]);
    }

    [Theory]
    [InlineData("""{"a.q_proj": 1.0}""", "a.q_proj", "[0, 1)")]
    [InlineData("""{"a.q_proj": "4:4"}""", "a.q_proj", "N < M")]
    [InlineData("""{"a.q_proj": true}""", "a.q_proj", "fraction")]
    [InlineData("""[0.5]""", "JSON object", "down_proj")]
    [InlineData("""{"a": 0.5""", "not valid JSON", "s.json")]
    public void Load_RefusesBadEntriesNamingFileAndKey(string json, string fragment1, string fragment2)
    {
        using var dir = new TempDirectory();
        string file = dir.File("s.json");
        File.WriteAllText(file, json);
        var e = Assert.Throws<InvalidDataException>(() => SparsityFile.Load(file));
        Assert.Contains(fragment1, e.Message);
        Assert.Contains(fragment2, e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }
}
