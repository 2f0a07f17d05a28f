using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization;

public class BitPackingTests
{
    [Fact]
    public void ThreeBitCodesFormALittleEndianStream()
    {
        // codes 5 = 101b at bits 0-2, 3 = 011b at bits 3-5, 7 = 111b at bits 6-8, 1 = 001b at bits 9-11:
        // byte 0 = bits 7..0 = 11 011 101b = 0xDD, byte 1 = bits 15..8 = 0000 001 1b = 0x03
        byte[] codes = [5, 3, 7, 1];
        var packed = new byte[BitPacking.PackedLength(4, 3)];
        BitPacking.Pack(codes, 3, packed);
        Assert.Equal(new byte[] { 0xDD, 0x03 }, packed);
        for (int i = 0; i < 4; i++) Assert.Equal(codes[i], BitPacking.Read(packed, 3, i));
    }

    [Theory]
    [InlineData(1)] [InlineData(2)] [InlineData(3)] [InlineData(4)] [InlineData(5)] [InlineData(6)] [InlineData(7)] [InlineData(8)]
    public void RoundTripsEveryLength(int bits)
    {
        var rng = new Random(bits);
        for (int n = 0; n < 70; n++)
        {
            var codes = new byte[n];
            for (int i = 0; i < n; i++) codes[i] = (byte)rng.Next(1 << bits);
            int length = BitPacking.PackedLength(n, bits);
            var packed = new byte[length + 1];
            packed[^1] = 0xAB; // must stay untouched
            BitPacking.Pack(codes, bits, packed);
            Assert.Equal(0xAB, packed[^1]);
            if (n * bits % 8 != 0) Assert.Equal(0, packed[length - 1] >> (n * bits % 8)); // unused high bits are zero
            var back = new byte[n];
            BitPacking.Unpack(packed.AsSpan(0, length), bits, back);
            Assert.Equal(codes, back);
            for (int i = 0; i < n; i++) Assert.Equal(codes[i], BitPacking.Read(packed.AsSpan(0, length), bits, i));
        }
    }

    [Fact]
    public void RejectsBadArguments()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => BitPacking.Pack(new byte[2], 9, new byte[4]));
        Assert.Throws<ArgumentException>(() => BitPacking.Pack(new byte[5], 4, new byte[2]));
    }
}
