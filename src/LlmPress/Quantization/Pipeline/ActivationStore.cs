namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// Per-sample activations of a calibration pass: <see cref="SlotCount"/> slots of up to <see cref="SlotLength"/> floats
/// (one calibration window's [seqLen, width] matrix each), kept in RAM (<see cref="MemoryActivationStore"/>) or in a
/// spill file (<see cref="DiskActivationStore"/>). Allocated once per run and reused by every decoder layer, so the
/// pipeline's memory does not grow with garbage from layer to layer. Both kinds hold exactly the floats written, so a
/// spilled run is bit-identical to an in-RAM one.
/// </summary>
public abstract class ActivationStore : IDisposable
{
    protected ActivationStore(int slotCount, long slotLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slotCount);
        ArgumentOutOfRangeException.ThrowIfNegative(slotLength);
        SlotCount = slotCount;
        SlotLength = slotLength;
    }

    /// <summary>Number of slots (calibration windows).</summary>
    public int SlotCount { get; }

    /// <summary>Capacity of one slot in floats.</summary>
    public long SlotLength { get; }

    /// <summary>Bytes held (in RAM or on disk): SlotCount × SlotLength × 4.</summary>
    public long Bytes => SlotCount * SlotLength * sizeof(float);

    /// <summary>True when the slots live in a file rather than in RAM.</summary>
    public abstract bool IsSpilled { get; }

    /// <summary>Stores <paramref name="values"/> (at most <see cref="SlotLength"/> floats) at the start of slot <paramref name="slot"/>.</summary>
    public void Write(int slot, ReadOnlySpan<float> values)
    {
        Check(slot, values.Length);
        WriteCore(slot, values);
    }

    /// <summary>Fills <paramref name="destination"/> from the start of slot <paramref name="slot"/>.</summary>
    public void Read(int slot, Span<float> destination)
    {
        Check(slot, destination.Length);
        ReadCore(slot, destination);
    }

    protected abstract void WriteCore(int slot, ReadOnlySpan<float> values);

    protected abstract void ReadCore(int slot, Span<float> destination);

    /// <summary>
    /// A store of <paramref name="slotCount"/> × <paramref name="slotLength"/> floats: a spill file in
    /// <paramref name="spillDirectory"/> when <paramref name="spill"/> is true, RAM otherwise.
    /// </summary>
    public static ActivationStore Create(int slotCount, long slotLength, bool spill, string? spillDirectory) =>
        spill ? new DiskActivationStore(slotCount, slotLength, spillDirectory ?? Path.GetTempPath())
              : new MemoryActivationStore(slotCount, slotLength);

    private void Check(int slot, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slot);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(slot, SlotCount);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, SlotLength);
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
    }
}
