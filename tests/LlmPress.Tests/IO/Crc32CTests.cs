using LlmPress.IO;

namespace LlmPress.Tests.IO;

public class Crc32CTests
{
    [Fact]
    public void MatchesTheStandardCheckValues()
    {
        // RFC 3720 (iSCSI) B.4 and the CRC catalogue's check value for "123456789".
        Assert.Equal(0xE3069283u, Crc32C.Append(0, "123456789"u8));
        Assert.Equal(0x8A9136AAu, Crc32C.Append(0, new byte[32]));
        Assert.Equal(0x62A8AB43u, Crc32C.Append(0, Enumerable.Repeat((byte)0xFF, 32).ToArray()));
        Assert.Equal(0x46DD794Eu, Crc32C.Append(0, Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));
    }

    [Fact]
    public void HardwareEqualsTheTableAndAppendingInPiecesEqualsOneCall()
    {
        var data = new byte[10_007];
        new Random(5).NextBytes(data);
        uint whole = Crc32C.Append(0, data);
        Assert.Equal(Crc32C.AppendReference(0, data), whole);
        uint pieces = 0;
        for (int i = 0; i < data.Length; i += 333) pieces = Crc32C.Append(pieces, data.AsSpan(i, Math.Min(333, data.Length - i)));
        Assert.Equal(whole, pieces);
        data[5000] ^= 4;
        Assert.NotEqual(whole, Crc32C.Append(0, data));
    }
}
