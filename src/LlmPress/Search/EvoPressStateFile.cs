using System.Text.Json;
using LlmPress.IO;

namespace LlmPress.Search;

/// <summary>
/// An <see cref="EvoPressState"/> on disk beside the settings' fingerprint (JSON, written atomically after every
/// generation), so an interrupted search continues with --resume exactly where it stopped — and only with the same
/// settings.
/// </summary>
public static class EvoPressStateFile
{
    private sealed record Stored(string Fingerprint, int Generation, int[] Parent, double ParentFitness, double[] History);

    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true };

    /// <summary>Writes <paramref name="state"/> to <paramref name="path"/> (temporary file renamed into place).</summary>
    public static void Save(string path, string fingerprint, EvoPressState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var stored = new Stored(fingerprint, state.Generation, state.Parent, state.ParentFitness, [.. state.History]);
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(stored, s_json));
    }

    /// <summary>Reads the state saved at <paramref name="path"/>, or null when there is none.</summary>
    /// <exception cref="InvalidDataException">Unreadable, or saved with other settings (the message says to start over).</exception>
    public static EvoPressState? Load(string path, string fingerprint)
    {
        if (!File.Exists(path)) return null;
        Stored? stored;
        try
        {
            stored = JsonSerializer.Deserialize<Stored>(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a valid search state ({e.Message}); start over with --force.", e);
        }
        if (stored?.Parent is null || stored.History is null) throw new InvalidDataException($"{path}: not a valid search state; start over with --force.");
        if (stored.Fingerprint != fingerprint)
            throw new InvalidDataException($"{path}: the saved search used other settings (model, database, target, method, calibration, offspring, top-K or seed differ); "
                                           + "rerun with the same settings or start over with --force.");
        return new EvoPressState(stored.Generation, stored.Parent, stored.ParentFitness, stored.History);
    }
}
