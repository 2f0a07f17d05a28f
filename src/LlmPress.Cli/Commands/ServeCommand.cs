using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using LlmPress.Cli.Serving;

namespace LlmPress.Cli.Commands;

/// <summary>`llmpress serve &lt;model&gt; [--port P] [--host A]`: an OpenAI-compatible HTTP endpoint until Ctrl+C.</summary>
internal static class ServeCommand
{
    /// <summary>The default port: 8080, as llama.cpp's server, so existing client settings often work unchanged.</summary>
    public const int DefaultPort = 8080;

    public static Command Create(CliConsole console)
    {
        var model = new Argument<string>("model") { Description = "Model directory (FP checkpoint or an LlmPress quantized directory) with tokenizer.json." };
        var port = new Option<int>("--port") { Description = $"TCP port to listen on (default {DefaultPort}; 0 picks a free one, printed at startup).", DefaultValueFactory = _ => DefaultPort };
        var host = new Option<string>("--host") { Description = "Address to bind (default 127.0.0.1, this machine only; the server has no authentication, so bind another address only on a trusted network).", DefaultValueFactory = _ => "127.0.0.1" };
        var name = new Option<string?>("--name") { Description = "Model id clients pass as \"model\" (default: the directory's name); requests may also omit it." };
        var kvCache = GenerateCommand.KvCacheOption();
        var command = new Command("serve",
            "Serve the model over HTTP with an OpenAI-compatible API: POST /v1/completions and /v1/chat/completions (\"stream\": true " +
            "for Server-Sent Events), GET /v1/models and /health. Requests run one at a time. Chat prompts use the tokenizer's chat " +
            "template when it is a Llama-3 or ChatML one, else \"User: …\\nAssistant:\" lines. Request defaults follow the OpenAI API: " +
            "temperature 1, top_p 1, a random seed, max_tokens 16 for completions and the rest of the context for chat. Ctrl+C stops.")
        { model, port, host, name, kvCache };
        command.SetAction(parse => console.Guard(parse, () =>
            Run(console, parse.GetValue(model)!, parse.GetValue(host)!, parse.GetValue(port), parse.GetValue(name),
                GenerateCommand.ParseKvCache(parse.GetValue(kvCache)))));
        return command;
    }

    private static int Run(CliConsole console, string modelPath, string host, int port, string? name, LlmPress.Numerics.DType kvCacheType)
    {
        if (port is < 0 or > 65535) throw new CliException($"--port must be between 0 and 65535, not {port}.");
        IPAddress address = host == "localhost" ? IPAddress.Loopback
            : IPAddress.TryParse(host, out var parsed) ? parsed
            : throw new CliException($"--host must be an IP address such as 127.0.0.1 (or localhost), not '{host}'.");

        var model = ModelSource.OpenModel(modelPath);
        ServedModel served;
        try
        {
            string id = name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(modelPath)));
            served = new ServedModel(id, model, ModelSource.OpenTokenizer(modelPath), ReadChatTemplateFile(modelPath), kvCacheType);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        using var _ = served;

        var gate = new object();
        void Log(string line)
        {
            lock (gate) console.Log(line);
        }

        using var shutdown = new CancellationTokenSource();
        ConsoleCancelEventHandler onCtrlC = (_, e) =>
        {
            e.Cancel = true; // let the server finish shutting down instead of killing the process
            shutdown.Cancel();
        };
        Console.CancelKeyPress += onCtrlC;
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            shutdown.Cancel();
        });
        try
        {
            return ServeAsync(console, served, address, port, Log, shutdown.Token).GetAwaiter().GetResult();
        }
        finally
        {
            Console.CancelKeyPress -= onCtrlC;
        }
    }

    private static async Task<int> ServeAsync(CliConsole console, ServedModel served, IPAddress address, int port, Action<string> log, CancellationToken shutdown)
    {
        OpenAiServer server;
        try
        {
            server = await OpenAiServer.StartAsync(served, address, port, log, shutdown);
        }
        catch (IOException e)
        {
            throw new CliException($"cannot listen on {address}:{port}: {e.Message.TrimEnd('.')}. Choose another --port.");
        }
        await using (server)
        {
            log($"chat prompts: {served.ChatFormat.Description}");
            if (!IPAddress.IsLoopback(address))
                log($"warning: listening on {address}, reachable from other machines; the server has no authentication.");
            console.Out.WriteLine($"Serving {served.Id} at {server.Address.ToString().TrimEnd('/')}/v1 (context {served.ContextLength} tokens); Ctrl+C stops.");
            console.Out.Flush();
            try
            {
                await Task.Delay(Timeout.Infinite, shutdown);
            }
            catch (OperationCanceledException)
            {
            }
            log("stopping: waiting up to 5 s for requests in flight");
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await server.StopAsync(grace.Token);
        }
        return 0;
    }

    // Newer checkpoints keep the template in chat_template.jinja instead of tokenizer_config.json.
    private static string? ReadChatTemplateFile(string modelPath)
    {
        string file = Path.Combine(modelPath, "chat_template.jinja");
        return File.Exists(file) ? File.ReadAllText(file) : null;
    }
}
