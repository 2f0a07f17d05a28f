using System.Buffers.Binary;
using System.Text;

namespace LlmPress.Tests.IO;

/// <summary>Builds safetensors files byte by byte, so tests control every field, including wrong ones.</summary>
internal static class SafeTensorsBytes
{
    /// <summary>[u64 LE header length][header, space-padded to 8 when <paramref name="pad"/>][data].</summary>
    public static byte[] Build(string headerJson, ReadOnlySpan<byte> data, bool pad = true)
    {
        byte[] header = Encoding.UTF8.GetBytes(headerJson);
        return Build(header, data, pad);
    }

    public static byte[] Build(byte[] header, ReadOnlySpan<byte> data, bool pad = true)
    {
        int headerLength = pad ? (header.Length + 7) & ~7 : header.Length;
        var file = new byte[8 + headerLength + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)headerLength);
        header.CopyTo(file.AsSpan(8));
        file.AsSpan(8 + header.Length, headerLength - header.Length).Fill((byte)' ');
        data.CopyTo(file.AsSpan(8 + headerLength));
        return file;
    }

    /// <summary>A header plus <paramref name="dataLength"/> bytes of data 0, 1, 2, ...</summary>
    public static byte[] Build(string headerJson, int dataLength) => Build(headerJson, Pattern(dataLength));

    public static byte[] Pattern(int length)
    {
        var data = new byte[length];
        for (int i = 0; i < length; i++) data[i] = (byte)(i * 7 + 3);
        return data;
    }

    /// <summary>One header entry: "name": {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}.</summary>
    public static string Entry(string name, string dtype, string shape, long begin, long end) =>
        $"\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape},\"data_offsets\":[{begin},{end}]}}";
}
