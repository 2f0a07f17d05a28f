using LlmPress.Cli;

namespace LlmPress.Tests.Cli;

/// <summary>Runs the CLI in-process and captures stdout and stderr.</summary>
internal static class CliRunner
{
    public static (int ExitCode, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CliApp.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>A failed run: exit code 1 and exactly one "error: …" line on stderr, no stack trace, naming every fragment.</summary>
    public static void AssertOneLineError(int code, string err, params string[] fragments)
    {
        Assert.Equal(1, code);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line, got:\n{err}");
        Assert.StartsWith("error: ", lines[0]);
        Assert.DoesNotContain("   at ", err);
        foreach (var f in fragments) Assert.Contains(f, err);
    }

    /// <summary>Copies a shared model into a scratch directory so a test may damage it.</summary>
    public static string CopyModel(TempDirectory dir, string model)
    {
        string source = SharedData.Require("models", model);
        string target = Path.Combine(dir.Path, model);
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(source))
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        return target;
    }
}
