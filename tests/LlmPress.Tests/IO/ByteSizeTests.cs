using LlmPress.IO;

namespace LlmPress.Tests.IO;

public class ByteSizeTests
{
    [Theory]
    [InlineData("4G", 4L << 30)]
    [InlineData("1500M", 1500L << 20)]
    [InlineData("1500m", 1500L << 20)]
    [InlineData("2.5GiB", 5L << 29)]
    [InlineData("512KB", 512L << 10)]
    [InlineData("1T", 1L << 40)]
    [InlineData("65536", 65536)]
    [InlineData(" 8g ", 8L << 30)]
    public void ParsesSizes(string text, long expected)
    {
        Assert.True(ByteSize.TryParse(text, out long bytes));
        Assert.Equal(expected, bytes);
    }

    [Theory]
    [InlineData("")]
    [InlineData("G")]
    [InlineData("4X")]
    [InlineData("-4G")]
    [InlineData("0")]
    [InlineData("0.1")]
    [InlineData("4 GB extra")]
    [InlineData("99999999999T")]
    [InlineData(null)]
    public void RefusesNonSizes(string? text) => Assert.False(ByteSize.TryParse(text, out _));
}
