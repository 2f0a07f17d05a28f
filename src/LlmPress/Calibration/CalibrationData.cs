using LlmPress.Tokenization;

namespace LlmPress.Calibration;

/// <summary>
/// Calibration samples for data-aware compression: <see cref="SampleCount"/> windows of <see cref="SequenceLength"/>
/// tokens cut at seeded random offsets from one tokenized text (GPTQ's get_wikitext2/get_c4 recipe). The same text,
/// tokenizer, counts and seed always give the same windows.
/// </summary>
public sealed class CalibrationData
{
    private CalibrationData(int[][] samples, int sequenceLength, int textTokens, int seed, string source)
    {
        Samples = samples;
        SequenceLength = sequenceLength;
        TextTokens = textTokens;
        Seed = seed;
        Source = source;
    }

    /// <summary>[SampleCount][SequenceLength] token ids.</summary>
    public IReadOnlyList<int[]> Samples { get; }
    public int SampleCount => Samples.Count;
    public int SequenceLength { get; }
    /// <summary>Tokens in the whole text the windows were cut from.</summary>
    public int TextTokens { get; }
    public int Seed { get; }
    /// <summary>Where the text came from (a file path), for messages and reports.</summary>
    public string Source { get; }

    /// <summary>
    /// Tokenizes <paramref name="text"/> once (with <paramref name="bosTokenId"/> in front when given) and cuts the windows.
    /// </summary>
    /// <exception cref="ArgumentException">Bad counts, or the text is shorter than one window (the message names <paramref name="source"/>).</exception>
    public static CalibrationData FromText(Tokenizer tokenizer, string text, int? bosTokenId, int sampleCount, int sequenceLength, int seed,
        string source = "calibration text")
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(text);
        int[] encoded = tokenizer.Encode(text);
        int[] tokens = bosTokenId is { } b ? [b, .. encoded] : encoded;
        return FromTokens(tokens, sampleCount, sequenceLength, seed, source);
    }

    /// <summary>Cuts <paramref name="sampleCount"/> windows of <paramref name="sequenceLength"/> tokens at offsets drawn by new Random(seed).</summary>
    /// <exception cref="ArgumentException">Bad counts, or fewer tokens than one window.</exception>
    public static CalibrationData FromTokens(ReadOnlySpan<int> tokens, int sampleCount, int sequenceLength, int seed,
        string source = "calibration text")
    {
        if (sampleCount < 1) throw new ArgumentException($"Calibration sample count must be at least 1, not {sampleCount}.", nameof(sampleCount));
        if (sequenceLength < 1) throw new ArgumentException($"Calibration sequence length must be at least 1, not {sequenceLength}.", nameof(sequenceLength));
        if (tokens.Length < sequenceLength)
            throw new ArgumentException($"{source}: the text yields {tokens.Length} tokens, fewer than one calibration window of {sequenceLength}; use a longer text or a smaller --calib-seq-len.");
        var random = new Random(seed);
        var samples = new int[sampleCount][];
        for (int s = 0; s < sampleCount; s++)
        {
            int start = random.Next(0, tokens.Length - sequenceLength + 1);
            samples[s] = tokens.Slice(start, sequenceLength).ToArray();
        }
        return new CalibrationData(samples, sequenceLength, tokens.Length, seed, source);
    }

    /// <summary>
    /// Uses <paramref name="windows"/> as given (e.g. token ids sampled from a model that has no tokenizer); they must
    /// all have the same length.
    /// </summary>
    /// <exception cref="ArgumentException">No windows, an empty one, or windows of different lengths.</exception>
    public static CalibrationData FromWindows(IReadOnlyList<int[]> windows, string source)
    {
        ArgumentNullException.ThrowIfNull(windows);
        if (windows.Count == 0) throw new ArgumentException("Give at least one calibration window.", nameof(windows));
        int length = windows[0].Length;
        if (length == 0) throw new ArgumentException("Calibration windows must hold at least one token.", nameof(windows));
        var samples = new int[windows.Count][];
        for (int i = 0; i < samples.Length; i++)
        {
            if (windows[i].Length != length)
                throw new ArgumentException($"Calibration window {i} has {windows[i].Length} tokens, window 0 has {length}; all must have the same length.", nameof(windows));
            samples[i] = (int[])windows[i].Clone();
        }
        return new CalibrationData(samples, length, samples.Length * length, seed: 0, source);
    }
}
