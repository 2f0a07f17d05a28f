using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace LlmPress.Tests.Cli;

public class ServeCommandTests
{
    [Fact]
    public void HelpExplainsTheDefaults()
    {
        var (code, output, _) = CliRunner.Run("serve", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--port", output);
        Assert.Contains("default 8080", output);
        Assert.Contains("default 127.0.0.1", output);
        Assert.Contains("/v1/chat/completions", output);
    }

    [Fact]
    public void MissingModelDirectory()
    {
        var (code, _, err) = CliRunner.Run("serve", "/nonexistent/model");
        CliRunner.AssertOneLineError(code, err, "/nonexistent/model", "not found");
    }

    [Fact]
    public void ModelWithoutTokenizer()
    {
        var (code, _, err) = CliRunner.Run("serve", SharedData.Require("models", "tiny-llama3"), "--port", "0");
        CliRunner.AssertOneLineError(code, err, "tokenizer.json");
    }

    [Theory]
    [InlineData("--port", "70000", "--port")]
    [InlineData("--port", "-1", "--port")]
    [InlineData("--host", "example.com", "--host")]
    public void BadOptions(string option, string value, string fragment)
    {
        var (code, _, err) = CliRunner.Run("serve", SharedData.Require("models", "stories260K"), option, value);
        CliRunner.AssertOneLineError(code, err, fragment, value);
    }

    [Fact]
    public void PortInUse()
    {
        string model = SharedData.Require("models", "stories260K");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var (code, _, err) = CliRunner.Run("serve", model, "--port", port.ToString());
        CliRunner.AssertOneLineError(code, err, $"127.0.0.1:{port}", "--port");
    }

    /// <summary>The real executable: prints its URL, answers, and exits 0 on SIGTERM (what Ctrl+C's SIGINT also does).</summary>
    [Fact]
    public async Task ServesUntilSignalled()
    {
        if (OperatingSystem.IsWindows()) Assert.Skip("POSIX signals only");
        string model = SharedData.Require("models", "stories260K");
        var ct = TestContext.Current.CancellationToken;
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in (string[])[Path.Combine(AppContext.BaseDirectory, "llmpress.dll"), "serve", model, "--port", "0"])
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        try
        {
            var stderr = process.StandardError.ReadToEndAsync(ct);
            string line = (await process.StandardOutput.ReadLineAsync(ct).AsTask().WaitAsync(TimeSpan.FromSeconds(60), ct))!;
            Assert.StartsWith("Serving stories260K at http://127.0.0.1:", line);
            string url = line.Split(' ')[3];
            Assert.EndsWith("/v1", url);
            using (var client = new HttpClient())
            {
                using var models = JsonDocument.Parse(await client.GetStringAsync(url + "/models", ct));
                Assert.Equal("stories260K", models.RootElement.GetProperty("data")[0].GetProperty("id").GetString());
            }
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString()])) await kill.WaitForExitAsync(ct);
            await process.WaitForExitAsync(ct).WaitAsync(TimeSpan.FromSeconds(30), ct);
            Assert.Equal(0, process.ExitCode);
            string log = await stderr;
            Assert.Contains("chat prompts: plain", log);
            Assert.Contains("stopping", log);
        }
        finally
        {
            if (!process.HasExited) process.Kill();
        }
    }
}
