using System.Runtime.CompilerServices;
using System.Threading.Channels;
using LlmPress.Evaluation;
using LlmPress.Models;
using LlmPress.Tokenization;

namespace LlmPress.Cli.Serving;

/// <summary>
/// The one model a server answers with, and the gate that runs its generations one at a time: a forward pass
/// already uses every core, so running two at once would only make both slower and double the KV-cache memory.
/// </summary>
internal sealed class ServedModel : IDisposable
{
    private readonly LlamaModel _model;
    private readonly Tokenizer _tokenizer;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly int? _endOfTurnId;

    /// <param name="id">The name clients pass as "model".</param>
    /// <param name="chatTemplate">A chat template to use instead of the tokenizer's (e.g. from chat_template.jinja), or null.</param>
    /// <param name="kvCacheType">How each request's KV cache stores keys and values (F32 or BF16).</param>
    public ServedModel(string id, LlamaModel model, Tokenizer tokenizer, string? chatTemplate = null, LlmPress.Numerics.DType kvCacheType = LlmPress.Numerics.DType.F32)
    {
        Id = id;
        KvCacheType = kvCacheType;
        _model = model;
        _tokenizer = tokenizer;
        ChatFormat = ChatPromptFormat.FromTokenizer(tokenizer, chatTemplate);
        if (ChatFormat.EndOfTurnToken is { } end && tokenizer.TryGetTokenId(end, out int endId)) _endOfTurnId = endId;
    }

    public string Id { get; }

    /// <summary>How each request's KV cache stores keys and values.</summary>
    public LlmPress.Numerics.DType KvCacheType { get; }

    /// <summary>How chat messages become a prompt.</summary>
    public ChatPromptFormat ChatFormat { get; }

    /// <summary>The model's context length (max_position_embeddings): prompt + completion tokens must fit.</summary>
    public int ContextLength => _model.Config.MaxPositions;

    /// <summary>Generation requests waiting for or holding the model.</summary>
    public int Queued => _queued;
    private int _queued;

    /// <summary>Tokens generated since start, over all requests (a stopped generation counts only what it made).</summary>
    public long GeneratedTokens => Interlocked.Read(ref _generatedTokens);
    private long _generatedTokens;

    /// <summary>A completion prompt's ids: BOS + text, exactly as <c>llmpress generate</c> encodes it.</summary>
    public int[] EncodePrompt(string prompt) => new TextGenerator(_model, _tokenizer).EncodePrompt(prompt);

    /// <summary>A chat's ids: the rendered template (which may already hold BOS), or BOS + the plain rendering.</summary>
    public int[] EncodeChat(IReadOnlyList<ChatMessage> messages)
    {
        string text = ChatFormat.Render(messages);
        return ChatFormat.IncludesBos || ChatFormat.Style == ChatPromptStyle.ChatMl ? _tokenizer.Encode(text) : EncodePrompt(text);
    }

    /// <summary>True for the token that ends an assistant turn in the chat format (generation should stop there).</summary>
    public bool IsEndOfTurn(int id) => id == _endOfTurnId;

    /// <summary>
    /// Streams the tokens continuing <paramref name="promptIds"/>. Waits its turn for the model; the forward passes
    /// run on a pool thread and stop within one token when <paramref name="cancellation"/> fires (client gone) or
    /// the caller stops enumerating (stop sequence), and the model is released only after the last pass ended.
    /// </summary>
    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(int[] promptIds, GenerationOptions options,
        [EnumeratorCancellation] CancellationToken cancellation)
    {
        Interlocked.Increment(ref _queued);
        try
        {
            await _gate.WaitAsync(cancellation).ConfigureAwait(false);
        }
        catch
        {
            Interlocked.Decrement(ref _queued);
            throw;
        }
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var tokens = Channel.CreateUnbounded<GeneratedToken>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var producer = Task.Run(() =>
        {
            try
            {
                var generator = new TextGenerator(_model, _tokenizer);
                foreach (var token in generator.Generate(promptIds, options))
                {
                    if (token.Id >= 0) Interlocked.Increment(ref _generatedTokens);
                    if (stop.IsCancellationRequested) break;
                    tokens.Writer.TryWrite(token);
                }
                tokens.Writer.TryComplete();
            }
            catch (Exception e)
            {
                tokens.Writer.TryComplete(e);
            }
        }, CancellationToken.None);
        try
        {
            await foreach (var token in tokens.Reader.ReadAllAsync(cancellation).ConfigureAwait(false))
                yield return token;
        }
        finally
        {
            stop.Cancel();
            await producer.ConfigureAwait(false);
            _gate.Release();
            Interlocked.Decrement(ref _queued);
        }
    }

    public void Dispose()
    {
        _model.Dispose();
        _gate.Dispose();
    }
}
