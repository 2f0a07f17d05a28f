using System.Globalization;
using System.Xml.Linq;
using LlmPress.Evaluation;

namespace LlmPress.Tests.Evaluation;

public class SvgPlotTests
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    [Fact]
    public void WritesWellFormedSvgWithEverySeriesAndPointInsideThePlot()
    {
        var plot = new SvgPlot { Title = "KL vs bits <stories260K>", XLabel = "average bits", YLabel = "KL", LogY = true }
            .Add("uniform GPTQ", [(2, 0.9), (3, 0.2), (4, 0.05)])
            .Add("DP", [(3, 0.12), (2.5, 0.4)])
            .Add("EvoPress", [(3, 0.1)], lines: false);
        var doc = XDocument.Parse(plot.ToSvg(720, 450));
        var root = doc.Root!;
        Assert.Equal(Svg + "svg", root.Name);
        Assert.Contains("KL vs bits <stories260K>", root.Descendants(Svg + "text").Select(t => t.Value));
        foreach (var name in new[] { "uniform GPTQ", "DP", "EvoPress" })
            Assert.Contains(name, root.Descendants(Svg + "text").Select(t => t.Value));
        Assert.Equal(2, root.Descendants(Svg + "polyline").Count()); // a single point draws no line
        var frame = root.Elements(Svg + "rect").Single(r => r.Attribute("fill")?.Value == "none");
        double fx = D(frame, "x"), fy = D(frame, "y"), fw = D(frame, "width"), fh = D(frame, "height");
        var points = root.Descendants(Svg + "circle").Where(c => c.Element(Svg + "title") is not null).ToArray();
        Assert.Equal(6, points.Length);
        foreach (var c in points)
        {
            Assert.InRange(D(c, "cx"), fx, fx + fw);
            Assert.InRange(D(c, "cy"), fy, fy + fh);
        }
        // Lower y is drawn lower on the page: 0.05 below 0.9 (SVG y grows downwards).
        double Cy(string title) => D(points.Single(c => c.Element(Svg + "title")!.Value.StartsWith(title, StringComparison.Ordinal)), "cy");
        Assert.True(Cy("uniform GPTQ: (4,") > Cy("uniform GPTQ: (2,"));
    }

    [Fact]
    public void RefusesUnplottablePoints()
    {
        var plot = new SvgPlot { Title = "t", XLabel = "x", YLabel = "y", LogY = true };
        Assert.Throws<ArgumentException>(() => plot.Add("s", [(1, 0)]));
        Assert.Throws<ArgumentException>(() => plot.Add("s", [(double.NaN, 1)]));
        Assert.Throws<InvalidOperationException>(() => plot.ToSvg());
        var linear = new SvgPlot { Title = "t", XLabel = "x", YLabel = "y" }.Add("flat", [(1, 5), (2, 5)]);
        XDocument.Parse(linear.ToSvg()); // a flat series still gets a non-degenerate axis
    }

    private static double D(XElement e, string attribute) => double.Parse(e.Attribute(attribute)!.Value, CultureInfo.InvariantCulture);
}
