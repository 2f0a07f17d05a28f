using System.Collections.Concurrent;
using System.Net;
using LlmPress.Cli.Serving;
using LlmPress.Models;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Serving;

/// <summary>
/// One `llmpress serve` server for stories260K on a free loopback port (port 0, the bound one read back),
/// shared by a test class; tests talk to it with a real HttpClient. Skips when ../shared is missing.
/// </summary>
public sealed class ServerFixture : IAsyncLifetime
{
    private OpenAiServer? _server;

    public string ModelDirectory { get; private set; } = "";
    public HttpClient Client { get; private set; } = null!;
    public ConcurrentQueue<string> Log { get; } = new();
    internal ServedModel Model { get; private set; } = null!;
    public bool Available { get; private set; }

    public async ValueTask InitializeAsync()
    {
        string? root = SharedData.Root;
        if (root is null || !Directory.Exists(Path.Combine(root, "models", "stories260K"))) return;
        ModelDirectory = Path.Combine(root, "models", "stories260K");
        Model = new ServedModel("stories260K", LlamaModel.Load(ModelDirectory), Tokenizer.Load(ModelDirectory));
        _server = await OpenAiServer.StartAsync(Model, IPAddress.Loopback, 0, Log.Enqueue);
        Client = new HttpClient { BaseAddress = _server.Address, Timeout = TimeSpan.FromMinutes(2) };
        Available = true;
    }

    /// <summary>The model directory, or a skip of the calling test when the shared data is missing.</summary>
    public string Require()
    {
        SharedData.Require("models", "stories260K");
        Assert.True(Available, "the server did not start");
        return ModelDirectory;
    }

    public async ValueTask DisposeAsync()
    {
        Client?.Dispose();
        if (_server is not null) await _server.DisposeAsync();
        Model?.Dispose();
    }
}
