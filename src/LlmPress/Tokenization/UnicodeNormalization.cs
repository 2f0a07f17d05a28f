using System.Buffers;
using System.Text;

namespace LlmPress.Tokenization;

/// <summary>
/// Canonical Unicode normalization (NFC, NFD) implemented from <see cref="UnicodeNormalizationData"/>.
/// </summary>
/// <remarks>
/// The project builds with InvariantGlobalization, where <see cref="string.Normalize(NormalizationForm)"/> silently
/// returns its input unchanged for non-ASCII text, so tokenizers with an NFC normalizer (Qwen) need this.
/// Algorithm: UAX #15 — full canonical decomposition (Hangul algorithmically), canonical ordering of combining
/// marks, then (NFC) canonical composition of unblocked pairs — applied only to the short spans around combining
/// marks, characters NFC never keeps, and composition trailers; everything else is copied, so already-normalized
/// text costs one scan and no allocation.
/// </remarks>
internal static class UnicodeNormalization
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    // Every code point below these bounds is unaffected by the respective form (no decomposition, class 0,
    // never the second half of a composition), so scanning can skip them without a table look-up.
    private const char NfcFirstInteresting = '\u0300';
    private const char NfdFirstInteresting = '\u00C0';

    private static readonly Lazy<Tables> s_tables = new(Tables.Build);

    /// <summary>Returns <paramref name="text"/> in Normalization Form C (the same instance when it already is).</summary>
    public static string ToNfc(string text) => Normalize(text, compose: true);

    /// <summary>Returns <paramref name="text"/> in Normalization Form D (the same instance when it already is).</summary>
    public static string ToNfd(string text) => Normalize(text, compose: false);

    // Only the spans around "interesting" code points are normalized: from the starter before them (which a mark
    // may compose with) up to the next code point that is a starter and never composes with what precedes it.
    // Such stable code points are boundaries across which no decomposition, reordering or composition happens
    // (UAX #15), so the rest of the text is copied as is — and returned as the same instance when nothing changes.
    private static string Normalize(string text, bool compose)
    {
        char first = compose ? NfcFirstInteresting : NfdFirstInteresting;
        Tables? tables = null;
        StringBuilder? result = null;
        int copied = 0; // text[..copied] has been appended to result (or is unchanged)
        int i = 0;
        while (i < text.Length)
        {
            if (text[i] < first)
            {
                i++;
                continue;
            }
            tables ??= s_tables.Value;
            ulong[] interesting = compose ? tables.NfcInteresting : tables.NfdInteresting;
            int width = CodePointAt(text, i, out int cp);
            if (!IsSet(interesting, cp))
            {
                i += width;
                continue;
            }

            int start = i;
            if (start > copied) start = i >= 2 && char.IsLowSurrogate(text[i - 1]) && char.IsHighSurrogate(text[i - 2]) ? i - 2 : i - 1;
            start = Math.Max(start, copied);
            int end = i + width;
            while (end < text.Length)
            {
                int w = CodePointAt(text, end, out int next);
                if (text[end] < first || !IsSet(interesting, next)) break;
                end += w;
            }

            ReadOnlySpan<char> span = text.AsSpan(start, end - start);
            string normalized = NormalizeSpan(span, compose, tables);
            if (!span.SequenceEqual(normalized))
            {
                result ??= new StringBuilder(text.Length + 16);
                result.Append(text, copied, start - copied).Append(normalized);
                copied = end;
            }
            i = end;
        }
        if (result is null) return text;
        result.Append(text, copied, text.Length - copied);
        return result.ToString();
    }

    private static int CodePointAt(string text, int i, out int cp)
    {
        char c = text[i];
        if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
        {
            cp = char.ConvertToUtf32(c, text[i + 1]);
            return 2;
        }
        cp = c; // a lone surrogate stays itself
        return 1;
    }

    private static bool IsSet(ulong[] bits, int cp) => (bits[cp >> 6] & (1UL << (cp & 63))) != 0;

    private static string NormalizeSpan(ReadOnlySpan<char> text, bool compose, Tables tables)
    {
        // Decomposition never grows a code point into more than 4 (Hangul: 3, UCD maximum: 4 after recursion)
        // but long runs of marks are rare; grow on demand instead of reserving the worst case.
        int[] buffer = ArrayPool<int>.Shared.Rent(text.Length + 16);
        try
        {
            int count = 0;
            for (int i = 0; i < text.Length; i++)
            {
                int cp = text[i];
                if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                    cp = char.ConvertToUtf32(text[i], text[++i]);
                Decompose(cp, tables, ref buffer, ref count);
            }
            ReorderMarks(buffer.AsSpan(0, count), tables);
            if (compose) count = Compose(buffer.AsSpan(0, count), tables);

            var sb = new StringBuilder(count + 8);
            for (int i = 0; i < count; i++)
            {
                int cp = buffer[i];
                // Lone surrogates from the input are carried through as themselves.
                if (cp < 0x10000) sb.Append((char)cp);
                else sb.Append(char.ConvertFromUtf32(cp));
            }
            return sb.ToString();
        }
        finally
        {
            ArrayPool<int>.Shared.Return(buffer);
        }
    }

    private static void Decompose(int cp, Tables tables, ref int[] buffer, ref int count)
    {
        if (count + 4 > buffer.Length)
        {
            int[] bigger = ArrayPool<int>.Shared.Rent(buffer.Length * 2);
            buffer.AsSpan(0, count).CopyTo(bigger);
            ArrayPool<int>.Shared.Return(buffer);
            buffer = bigger;
        }
        int sIndex = cp - SBase;
        if ((uint)sIndex < SCount)
        {
            buffer[count++] = LBase + sIndex / NCount;
            buffer[count++] = VBase + sIndex % NCount / TCount;
            int t = sIndex % TCount;
            if (t != 0) buffer[count++] = TBase + t;
            return;
        }
        if (tables.Decompositions.TryGetValue(cp, out (int First, int Second) pair))
        {
            Decompose(pair.First, tables, ref buffer, ref count);
            if (pair.Second != 0) Decompose(pair.Second, tables, ref buffer, ref count);
            return;
        }
        buffer[count++] = cp;
    }

    // Canonical ordering: a stable sort of each run of non-starters by combining class (runs are short).
    private static void ReorderMarks(Span<int> cps, Tables tables)
    {
        for (int i = 1; i < cps.Length; i++)
        {
            int cc = tables.CombiningClass(cps[i]);
            if (cc == 0) continue;
            int j = i;
            int cp = cps[i];
            while (j > 0)
            {
                int prev = tables.CombiningClass(cps[j - 1]);
                if (prev <= cc) break; // starters (0) stop the run; equal classes keep their order
                cps[j] = cps[j - 1];
                j--;
            }
            cps[j] = cp;
        }
    }

    private static int Compose(Span<int> cps, Tables tables)
    {
        if (cps.Length == 0) return 0;
        int starterPos = 0;
        int starter = cps[0];
        int lastClass = tables.CombiningClass(starter);
        if (lastClass != 0) lastClass = 256; // a leading non-starter can never be composed onto
        int write = 1;
        for (int i = 1; i < cps.Length; i++)
        {
            int cp = cps[i];
            int cc = tables.CombiningClass(cp);
            // Not blocked: either adjacent to the starter (lastClass == 0) or every mark in between has a lower class.
            if ((lastClass < cc || lastClass == 0) && TryCompose(starter, cp, tables, out int composite))
            {
                cps[starterPos] = composite;
                starter = composite;
                continue;
            }
            if (cc == 0)
            {
                starterPos = write;
                starter = cp;
            }
            lastClass = cc;
            cps[write++] = cp;
        }
        return write;
    }

    private static bool TryCompose(int first, int second, Tables tables, out int composite)
    {
        int lIndex = first - LBase;
        if ((uint)lIndex < LCount)
        {
            int vIndex = second - VBase;
            if ((uint)vIndex < VCount)
            {
                composite = SBase + (lIndex * VCount + vIndex) * TCount;
                return true;
            }
        }
        int sIndex = first - SBase;
        if ((uint)sIndex < SCount && sIndex % TCount == 0)
        {
            int tIndex = second - TBase;
            if (tIndex > 0 && tIndex < TCount)
            {
                composite = first + tIndex;
                return true;
            }
        }
        return tables.Compositions.TryGetValue(((long)first << 21) | (uint)second, out composite);
    }

    private sealed class Tables
    {
        public required Dictionary<int, byte> CombiningClasses { get; init; }
        public required Dictionary<int, (int First, int Second)> Decompositions { get; init; }
        public required Dictionary<long, int> Compositions { get; init; }

        /// <summary>Bit per code point: may change under NFC (mark, excluded decomposable, composition trailer).</summary>
        public required ulong[] NfcInteresting { get; init; }

        /// <summary>Bit per code point: may change under NFD (mark, decomposable, Hangul syllable).</summary>
        public required ulong[] NfdInteresting { get; init; }

        public int CombiningClass(int cp) => cp < NfcFirstInteresting ? 0 : CombiningClasses.GetValueOrDefault(cp);

        public static Tables Build()
        {
            ReadOnlySpan<int> classes = UnicodeNormalizationData.CombiningClasses;
            ReadOnlySpan<int> decompositions = UnicodeNormalizationData.Decompositions;
            var ccc = new Dictionary<int, byte>(classes.Length);
            var nfc = new ulong[0x110000 / 64];
            var nfd = new ulong[0x110000 / 64];
            foreach (int packed in classes)
            {
                int cp = packed >> 8;
                ccc[cp] = (byte)packed;
                Set(nfc, cp);
                Set(nfd, cp);
            }

            var decomp = new Dictionary<int, (int, int)>(decompositions.Length / 3);
            var comp = new Dictionary<long, int>(decompositions.Length / 3);
            for (int i = 0; i < decompositions.Length; i += 3)
            {
                int cp = decompositions[i] & 0x1FFFFF;
                bool primaryComposite = (decompositions[i] & UnicodeNormalizationData.PrimaryCompositeFlag) != 0;
                int first = decompositions[i + 1], second = decompositions[i + 2];
                decomp[cp] = (first, second);
                Set(nfd, cp);
                if (primaryComposite)
                {
                    comp[((long)first << 21) | (uint)second] = cp;
                    Set(nfc, second); // may combine with what precedes it
                }
                else
                {
                    Set(nfc, cp); // never survives NFC
                }
            }
            for (int cp = SBase; cp < SBase + SCount; cp++) Set(nfd, cp);
            for (int cp = VBase; cp < VBase + VCount; cp++) Set(nfc, cp);
            for (int cp = TBase + 1; cp < TBase + TCount; cp++) Set(nfc, cp);

            return new Tables
            {
                CombiningClasses = ccc,
                Decompositions = decomp,
                Compositions = comp,
                NfcInteresting = nfc,
                NfdInteresting = nfd,
            };
        }

        private static void Set(ulong[] bits, int cp) => bits[cp >> 6] |= 1UL << (cp & 63);
    }
}
