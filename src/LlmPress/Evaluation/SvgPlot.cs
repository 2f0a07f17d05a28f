using System.Globalization;
using System.Security;
using System.Text;

namespace LlmPress.Evaluation;

/// <summary>
/// A small line/scatter chart written as a standalone SVG file (no dependencies): named series of (x, y) points, axes
/// with "nice" ticks, optional logarithmic y, a legend. Used for quality-vs-size trade-off curves.
/// </summary>
public sealed class SvgPlot
{
    private static readonly string[] Palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
    private readonly List<(string Name, (double X, double Y)[] Points, bool Lines)> _series = [];

    /// <summary>Chart title.</summary>
    public required string Title { get; init; }

    /// <summary>X axis label.</summary>
    public required string XLabel { get; init; }

    /// <summary>Y axis label.</summary>
    public required string YLabel { get; init; }

    /// <summary>Logarithmic y axis (all y must be &gt; 0). Default false.</summary>
    public bool LogY { get; init; }

    /// <summary>Adds a series; points are drawn in x order, joined by lines unless <paramref name="lines"/> is false.</summary>
    /// <exception cref="ArgumentException">A non-finite coordinate, or y ≤ 0 on a log axis.</exception>
    public SvgPlot Add(string name, IEnumerable<(double X, double Y)> points, bool lines = true)
    {
        ArgumentNullException.ThrowIfNull(name);
        var p = points.OrderBy(q => q.X).ToArray();
        foreach (var (x, y) in p)
            if (!double.IsFinite(x) || !double.IsFinite(y) || (LogY && y <= 0))
                throw new ArgumentException($"Series '{name}': point ({x}, {y}) cannot be plotted{(LogY ? " on a log axis" : "")}.", nameof(points));
        _series.Add((name, p, lines));
        return this;
    }

    /// <summary>The SVG document.</summary>
    /// <exception cref="InvalidOperationException">No points.</exception>
    public string ToSvg(int width = 720, int height = 450)
    {
        var all = _series.SelectMany(s => s.Points).ToArray();
        if (all.Length == 0) throw new InvalidOperationException("The plot has no points.");
        const double left = 70, right = 170, top = 40, bottom = 55;
        double plotW = width - left - right, plotH = height - top - bottom;
        var (x0, x1, xTicks) = NiceAxis(all.Min(p => p.X), all.Max(p => p.X));
        Func<double, double> ty = LogY ? Math.Log10 : v => v;
        var (y0, y1, yTicks) = LogY ? LogAxis(all.Min(p => p.Y), all.Max(p => p.Y)) : NiceAxis(all.Min(p => p.Y), all.Max(p => p.Y));
        double X(double v) => left + (v - x0) / (x1 - x0) * plotW;
        double Y(double v) => top + plotH - (ty(v) - ty(y0)) / (ty(y1) - ty(y0)) * plotH;

        var s = new StringBuilder();
        s.Append(Invariant($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n"));
        s.Append(Invariant($"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n"));
        s.Append(Invariant($"<text x=\"{width / 2.0}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{Escape(Title)}</text>\n"));
        foreach (double t in xTicks)
            s.Append(Invariant($"<line x1=\"{X(t):0.##}\" y1=\"{top}\" x2=\"{X(t):0.##}\" y2=\"{top + plotH}\" stroke=\"#e5e5e5\"/><text x=\"{X(t):0.##}\" y=\"{top + plotH + 16}\" text-anchor=\"middle\">{Format(t)}</text>\n"));
        foreach (double t in yTicks)
            s.Append(Invariant($"<line x1=\"{left}\" y1=\"{Y(t):0.##}\" x2=\"{left + plotW}\" y2=\"{Y(t):0.##}\" stroke=\"#e5e5e5\"/><text x=\"{left - 6}\" y=\"{Y(t) + 4:0.##}\" text-anchor=\"end\">{Format(t)}</text>\n"));
        s.Append(Invariant($"<rect x=\"{left}\" y=\"{top}\" width=\"{plotW}\" height=\"{plotH}\" fill=\"none\" stroke=\"#444\"/>\n"));
        s.Append(Invariant($"<text x=\"{left + plotW / 2}\" y=\"{height - 12}\" text-anchor=\"middle\">{Escape(XLabel)}</text>\n"));
        s.Append(Invariant($"<text x=\"16\" y=\"{top + plotH / 2}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {top + plotH / 2})\">{Escape(YLabel)}</text>\n"));
        for (int i = 0; i < _series.Count; i++)
        {
            var (name, points, lines) = _series[i];
            string color = Palette[i % Palette.Length];
            if (lines && points.Length > 1)
                s.Append(Invariant($"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{string.Join(" ", points.Select(p => Invariant($"{X(p.X):0.##},{Y(p.Y):0.##}")))}\"/>\n"));
            foreach (var (x, y) in points)
                s.Append(Invariant($"<circle cx=\"{X(x):0.##}\" cy=\"{Y(y):0.##}\" r=\"4\" fill=\"{color}\"><title>{Escape(name)}: ({Format(x)}, {Format(y)})</title></circle>\n"));
            double ly = top + 10 + 20 * i;
            s.Append(Invariant($"<circle cx=\"{left + plotW + 18}\" cy=\"{ly}\" r=\"5\" fill=\"{color}\"/><text x=\"{left + plotW + 30}\" y=\"{ly + 4}\">{Escape(name)}</text>\n"));
        }
        s.Append("</svg>\n");
        return s.ToString();
    }

    // Round bounds and 4–8 ticks at 1/2/5·10^k steps.
    private static (double Min, double Max, double[] Ticks) NiceAxis(double min, double max)
    {
        if (max - min < 1e-12 * Math.Max(1, Math.Abs(max))) { min -= 0.5; max += 0.5; }
        double raw = (max - min) / 5, magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = magnitude * (raw / magnitude) switch { < 1.5 => 1, < 3.5 => 2, < 7.5 => 5, _ => 10 };
        double lo = Math.Floor(min / step) * step, hi = Math.Ceiling(max / step) * step;
        var ticks = new List<double>();
        for (double t = lo; t <= hi + step * 1e-9; t += step) ticks.Add(Math.Round(t / step) * step);
        return (lo, hi, ticks.ToArray());
    }

    // Decades that cover [min, max], ticks at 1, 2, 5 × 10^k.
    private static (double Min, double Max, double[] Ticks) LogAxis(double min, double max)
    {
        double lo = Math.Pow(10, Math.Floor(Math.Log10(min))), hi = Math.Pow(10, Math.Ceiling(Math.Log10(max)));
        if (hi <= lo) hi = lo * 10;
        var ticks = new List<double>();
        for (double d = lo; d <= hi * 1.0001; d *= 10)
            foreach (double m in new[] { 1.0, 2, 5 })
                if (d * m <= hi * 1.0001) ticks.Add(d * m);
        return (lo, hi, ticks.ToArray());
    }

    private static string Format(double v) => v.ToString(Math.Abs(v) >= 1e4 || (v != 0 && Math.Abs(v) < 1e-3) ? "0.##e0" : "0.###", CultureInfo.InvariantCulture);

    private static string Escape(string text) => SecurityElement.Escape(text) ?? "";

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
