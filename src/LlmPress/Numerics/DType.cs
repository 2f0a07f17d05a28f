namespace LlmPress.Numerics;

/// <summary>Element types a tensor can be stored in. Names follow safetensors' dtype strings.</summary>
public enum DType
{
    F32,
    F16,
    BF16,
    F64,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    Bool,
    /// <summary>FP8 E4M3 "fn" (bias 7, max 448, NaN 0x7F/0xFF, no infinities): torch.float8_e4m3fn, safetensors "F8_E4M3". Stored as raw bytes; no arithmetic here.</summary>
    F8E4M3,
}

public static class DTypeInfo
{
    /// <summary>Bytes per element.</summary>
    public static int SizeOf(DType type) => type switch
    {
        DType.F32 or DType.I32 or DType.U32 => 4,
        DType.F16 or DType.BF16 or DType.I16 or DType.U16 => 2,
        DType.F64 or DType.I64 or DType.U64 => 8,
        DType.I8 or DType.U8 or DType.Bool or DType.F8E4M3 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    /// <summary>The dtype string used in safetensors headers ("F32", "BF16", "BOOL", ...).</summary>
    public static string SafeTensorsName(DType type) => type switch
    {
        DType.Bool => "BOOL",
        DType.F8E4M3 => "F8_E4M3",
        _ => type.ToString(),
    };

    public static bool TryParseSafeTensorsName(string name, out DType type)
    {
        switch (name)
        {
            case "F32": type = DType.F32; return true;
            case "F16": type = DType.F16; return true;
            case "BF16": type = DType.BF16; return true;
            case "F64": type = DType.F64; return true;
            case "I8": type = DType.I8; return true;
            case "U8": type = DType.U8; return true;
            case "I16": type = DType.I16; return true;
            case "U16": type = DType.U16; return true;
            case "I32": type = DType.I32; return true;
            case "U32": type = DType.U32; return true;
            case "I64": type = DType.I64; return true;
            case "U64": type = DType.U64; return true;
            case "BOOL": type = DType.Bool; return true;
            case "F8_E4M3": type = DType.F8E4M3; return true;
            default: type = default; return false;
        }
    }

    /// <summary>True for the floating-point types a weight matrix may be stored in for the GEMM kernels.</summary>
    public static bool IsWeightFloat(DType type) => type is DType.F32 or DType.F16 or DType.BF16;
}
