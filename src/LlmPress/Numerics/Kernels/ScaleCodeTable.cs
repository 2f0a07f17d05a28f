namespace LlmPress.Numerics.Kernels;

/// <summary>
/// The FP32 scales of one coding's 256 codes over one divisor (the scalar codec's values, so every path that reads
/// them agrees bit for bit), and the E4M3 magnitudes' scales cut into byte planes for <see cref="ScaleCodeDecoder"/>.
/// Built once per matrix.
/// </summary>
internal sealed class ScaleCodeTable
{
    public ScaleCodeTable(ScaleCoding coding, float divisor)
    {
        Coding = coding;
        Divisor = divisor;
        Values = new float[256];
        for (int code = 0; code < 256; code++) Values[code] = ScaleCodeDecoder.Decode((byte)code, coding, divisor);
        BytePlanes = new byte[4 * 128];
        for (int m = 0; m < 128; m++)
        {
            uint bits = BitConverter.SingleToUInt32Bits(Values[m]);
            for (int b = 0; b < 4; b++) BytePlanes[b * 128 + m] = (byte)(bits >> (8 * b));
        }
    }

    public ScaleCoding Coding { get; }

    /// <summary>The E4M3 scales' divisor (NVFP4's global scale); 1 for E8M0.</summary>
    public float Divisor { get; }

    /// <summary>[256]: the FP32 scale of each code.</summary>
    public float[] Values { get; }

    /// <summary>[4, 128]: byte b (little-endian) of the scales of codes 0..127, plane b at 128·b.</summary>
    public byte[] BytePlanes { get; }

    public float this[byte code] => Values[code];

    /// <summary>Bytes held.</summary>
    public int MemoryBytes => 4 * Values.Length + BytePlanes.Length;
}
