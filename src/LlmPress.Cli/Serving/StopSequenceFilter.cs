using System.Text;

namespace LlmPress.Cli.Serving;

/// <summary>
/// Cuts generated text at the first stop sequence while it streams: text that might be the start of a stop
/// sequence is held back until the next piece shows whether it is, so nothing past a stop is ever emitted.
/// </summary>
/// <remarks>
/// Invariant: the pending text never contains a whole stop sequence, and what <see cref="Push"/> returns never
/// ends inside one. So a stop spanning several tokens ("\n\n" from "\n" + "\n") is caught, and the concatenated
/// output equals the full text cut before the stop occurrence that ends first, however the text was split.
/// </remarks>
internal sealed class StopSequenceFilter(IReadOnlyList<string> stops)
{
    private readonly StringBuilder _pending = new();

    /// <summary>True once a stop sequence was seen; later pushes return "".</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds generated text; returns the part that is certainly before any stop sequence.</summary>
    public string Push(string piece)
    {
        if (Stopped) return "";
        if (stops.Count == 0) return piece;
        _pending.Append(piece);
        string text = _pending.ToString();
        // Generation stops as soon as the text holds a stop sequence: the occurrence that ends first wins (the
        // longest when several end together), so the result does not depend on how the text was split into tokens.
        int cut = -1, cutEnd = int.MaxValue;
        foreach (string stop in stops)
        {
            int at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at < 0) continue;
            int end = at + stop.Length;
            if (end < cutEnd || (end == cutEnd && at < cut))
            {
                cut = at;
                cutEnd = end;
            }
        }
        if (cut >= 0)
        {
            Stopped = true;
            _pending.Clear();
            return text[..cut];
        }
        int hold = 0;
        foreach (string stop in stops)
            for (int length = Math.Min(stop.Length - 1, text.Length); length > hold; length--)
                if (text.AsSpan(text.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                {
                    hold = length;
                    break;
                }
        _pending.Clear().Append(text, text.Length - hold, hold);
        return text[..^hold];
    }

    /// <summary>The held-back text once generation has ended without a stop sequence.</summary>
    public string Flush()
    {
        string rest = Stopped ? "" : _pending.ToString();
        _pending.Clear();
        return rest;
    }
}
