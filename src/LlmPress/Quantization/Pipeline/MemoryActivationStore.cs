namespace LlmPress.Quantization.Pipeline;

/// <summary>An <see cref="ActivationStore"/> in RAM: one float[SlotLength] per slot, allocated up front.</summary>
public sealed class MemoryActivationStore : ActivationStore
{
    // One array per slot rather than one big array: a slot is one window's [seqLen, width] matrix (≤ 2 GB), the
    // whole store may not be.
    private readonly float[][] _slots;

    public MemoryActivationStore(int slotCount, long slotLength) : base(slotCount, slotLength)
    {
        if (slotLength > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(slotLength), $"A slot of {slotLength} floats exceeds one array.");
        _slots = new float[slotCount][];
        for (int s = 0; s < slotCount; s++) _slots[s] = new float[slotLength];
    }

    public override bool IsSpilled => false;

    protected override void WriteCore(int slot, ReadOnlySpan<float> values) => values.CopyTo(_slots[slot]);

    protected override void ReadCore(int slot, Span<float> destination) => _slots[slot].AsSpan(0, destination.Length).CopyTo(destination);
}
