using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LlmPress.Quantization;

/// <summary>E2M1 codes of one group with a fixed scale: code_i = E2M1(x_i / scale). Shared by MXFP4 and NVFP4.</summary>
internal static class Fp4Group
{
    public static void Quantize(ReadOnlySpan<float> x, float scale, bool vectorized, Span<byte> codes)
    {
        int i = 0;
        if (vectorized && Vector256.IsHardwareAccelerated)
        {
            ref float r = ref MemoryMarshal.GetReference(x);
            var s = Vector256.Create(scale);
            for (; i + 8 <= x.Length; i += 8)
            {
                var q = Fp4E2M1.Encode(Vector256.LoadUnsafe(ref r, (nuint)i) / s, out _);
                for (int l = 0; l < 8; l++) codes[i + l] = (byte)q.GetElement(l);
            }
        }
        for (; i < x.Length; i++) codes[i] = Fp4E2M1.Encode(x[i] / scale);
    }
}
