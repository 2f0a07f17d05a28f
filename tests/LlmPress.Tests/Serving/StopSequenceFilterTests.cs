using LlmPress.Cli.Serving;

namespace LlmPress.Tests.Serving;

public class StopSequenceFilterTests
{
    // Reference, on the whole text: find the shortest prefix that contains a stop sequence (scan end positions);
    // cut before the longest stop ending there.
    private static (string Text, bool Stopped) Reference(string text, string[] stops)
    {
        for (int end = 1; end <= text.Length; end++)
        {
            int cut = -1;
            foreach (var s in stops)
                if (s.Length <= end && string.CompareOrdinal(text, end - s.Length, s, 0, s.Length) == 0 && (cut < 0 || end - s.Length < cut))
                    cut = end - s.Length;
            if (cut >= 0) return (text[..cut], true);
        }
        return (text, false);
    }

    private static (string Text, bool Stopped) Stream(IEnumerable<string> pieces, string[] stops)
    {
        var filter = new StopSequenceFilter(stops);
        var output = new System.Text.StringBuilder();
        foreach (var piece in pieces)
        {
            output.Append(filter.Push(piece));
            if (filter.Stopped) break;
        }
        output.Append(filter.Flush());
        return (output.ToString(), filter.Stopped);
    }

    [Fact]
    public void StopSpanningPiecesIsCaughtAndNothingPastItEmitted()
    {
        var filter = new StopSequenceFilter(["\n\n"]);
        Assert.Equal("Hello", filter.Push("Hello\n"));   // "\n" may start the stop: held back
        Assert.Equal("", filter.Push("\nWorld"));
        Assert.True(filter.Stopped);
        Assert.Equal("", filter.Flush());
    }

    [Fact]
    public void HeldBackTextIsReleasedWhenItTurnsOutNotToBeAStop()
    {
        var filter = new StopSequenceFilter(["END"]);
        Assert.Equal("a ", filter.Push("a EN"));
        Assert.Equal("ENd", filter.Push("d"));
        Assert.Equal("", filter.Push("E"));
        Assert.False(filter.Stopped);
        Assert.Equal("E", filter.Flush());
    }

    [Fact]
    public void TheStopThatEndsFirstWinsWhateverTheSplit()
    {
        // "b ab" starts first but " a" is complete first: the text ends before " a" for any split.
        Assert.Equal(("xb", true), Stream(["xb a", "b"], ["b ab", " a"]));
        Assert.Equal(("xb", true), Stream(["xb ab"], ["b ab", " a"]));
        Assert.Equal(("xb", true), Stream(["x", "b", " ", "a", "b"], ["b ab", " a"]));
    }

    [Fact]
    public void RandomSplitsMatchTheReference()
    {
        // Small alphabet so stops, partial stops and overlaps ("aab" inside "aaab") occur often.
        var random = new Random(1234);
        for (int trial = 0; trial < 2000; trial++)
        {
            string text = RandomText(random, random.Next(0, 40));
            string[] stops = new string[random.Next(1, 4)];
            for (int i = 0; i < stops.Length; i++) stops[i] = RandomText(random, random.Next(1, 5));
            var pieces = new List<string>();
            for (int at = 0; at < text.Length;)
            {
                int length = Math.Min(text.Length - at, random.Next(0, 6));
                pieces.Add(text.Substring(at, length));
                at += length;
            }
            Assert.Equal(Reference(text, stops), Stream(pieces, stops));
        }

        static string RandomText(Random random, int length)
        {
            var chars = new char[length];
            for (int i = 0; i < length; i++) chars[i] = "aab "[random.Next(4)];
            return new string(chars);
        }
    }

    [Fact]
    public void NoStopsPassesEverythingThrough()
    {
        var filter = new StopSequenceFilter([]);
        Assert.Equal("abc", filter.Push("abc"));
        Assert.Equal("", filter.Flush());
    }
}
