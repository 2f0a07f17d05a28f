using System.Text;
using System.Text.RegularExpressions;

namespace LlmPress.Tokenization;

/// <summary>One turn of a conversation: role is "system", "user" or "assistant".</summary>
public readonly record struct ChatMessage(string Role, string Content);

/// <summary>The families of chat prompt layout <see cref="ChatPromptFormat"/> can render.</summary>
public enum ChatPromptStyle
{
    /// <summary>No recognised template: "System: …\nUser: …\nAssistant:" (see <see cref="ChatPromptFormat.Render"/>).</summary>
    Plain,

    /// <summary>Llama-3: bos + "&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\ncontent&lt;|eot_id|&gt;" per turn.</summary>
    Llama3,

    /// <summary>ChatML (Qwen, SmolLM2): "&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n" per turn.</summary>
    ChatMl,
}

/// <summary>
/// Turns chat messages into the prompt text a model was tuned on. tokenizer_config.json's chat_template is a Jinja
/// program; rather than interpret Jinja, this recognises the layout families that the common templates produce
/// (Llama-3 headers, ChatML with an optional default system prompt, Qwen3's reasoning handling) from markers in the
/// template text and renders them in C#, giving exactly what the template gives for system/user/assistant messages
/// with add_generation_prompt=true and no tools. Anything else falls back to <see cref="ChatPromptStyle.Plain"/>,
/// and <see cref="Description"/> says so, so a server can log it.
/// </summary>
public sealed partial class ChatPromptFormat
{
    private ChatPromptFormat(ChatPromptStyle style, string description, string? bosToken = null,
        string? defaultSystemPrompt = null, bool handlesReasoning = false)
    {
        Style = style;
        Description = description;
        _bosToken = bosToken;
        DefaultSystemPrompt = defaultSystemPrompt;
        _handlesReasoning = handlesReasoning;
    }

    private readonly string? _bosToken;
    private readonly bool _handlesReasoning;

    /// <summary>Which layout <see cref="Render"/> produces.</summary>
    public ChatPromptStyle Style { get; }

    /// <summary>One line for a log: the layout and why it was chosen.</summary>
    public string Description { get; }

    /// <summary>The system prompt a ChatML template inserts when the conversation has none (SmolLM2, Qwen2.5), or null.</summary>
    public string? DefaultSystemPrompt { get; }

    /// <summary>
    /// True when the rendered text already starts with the BOS token (Llama-3 writes bos_token itself), so the
    /// encoded prompt must not get another; false for ChatML (no BOS) and Plain (the caller adds BOS like for a
    /// completion).
    /// </summary>
    public bool IncludesBos => Style == ChatPromptStyle.Llama3 && _bosToken is not null;

    /// <summary>The token that ends an assistant turn ("&lt;|eot_id|&gt;", "&lt;|im_end|&gt;"), or null for Plain.</summary>
    public string? EndOfTurnToken => Style switch
    {
        ChatPromptStyle.Llama3 => "<|eot_id|>",
        ChatPromptStyle.ChatMl => "<|im_end|>",
        _ => null,
    };

    /// <summary>The format for a tokenizer (its chat_template and BOS token).</summary>
    public static ChatPromptFormat FromTokenizer(Tokenizer tokenizer, string? templateOverride = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        string? bos = tokenizer.BosTokenId is { } id ? tokenizer.GetTokenString(id) : null;
        return Detect(templateOverride ?? tokenizer.ChatTemplate, bos);
    }

    /// <summary>Recognises the layout of a Jinja chat template.</summary>
    /// <param name="template">The chat_template text, or null when the tokenizer has none.</param>
    /// <param name="bosToken">The bos_token string the template's <c>bos_token</c> variable holds, or null.</param>
    public static ChatPromptFormat Detect(string? template, string? bosToken)
    {
        if (string.IsNullOrWhiteSpace(template))
            return new ChatPromptFormat(ChatPromptStyle.Plain, "plain \"User: …\\nAssistant:\" prompts (the tokenizer has no chat_template)");

        if (template.Contains("<|start_header_id|>", StringComparison.Ordinal) && template.Contains("<|eot_id|>", StringComparison.Ordinal))
        {
            // Llama-3.1+ templates add a dated system preamble and tool sections; rendering them without that
            // preamble would not be what the model saw in tuning, so they are not claimed.
            if (template.Contains("Cutting Knowledge Date", StringComparison.Ordinal) || template.Contains("tools", StringComparison.Ordinal))
                return Unrecognised("a Llama-3.1-style template with a dated system preamble / tools");
            bool writesBos = template.Contains("bos_token", StringComparison.Ordinal);
            return new ChatPromptFormat(ChatPromptStyle.Llama3, "Llama-3 header template", writesBos ? bosToken : null);
        }

        if (template.Contains("<|im_start|>", StringComparison.Ordinal) && template.Contains("<|im_end|>", StringComparison.Ordinal))
        {
            // A default system prompt is a whole literal turn: '<|im_start|>system\n…<|im_end|>\n' in one string.
            var match = DefaultSystemTurn().Match(template);
            string? defaultSystem = match.Success ? UnescapeJinjaString(match.Groups[1].Value) : null;
            bool reasoning = template.Contains("</think>", StringComparison.Ordinal);
            string description = "ChatML template"
                + (defaultSystem is not null ? $" with default system prompt \"{defaultSystem}\"" : "")
                + (reasoning ? ", earlier turns' <think> reasoning removed as Qwen3 does" : "");
            return new ChatPromptFormat(ChatPromptStyle.ChatMl, description, defaultSystemPrompt: defaultSystem, handlesReasoning: reasoning);
        }

        return Unrecognised("an unrecognised chat_template");
    }

    private static ChatPromptFormat Unrecognised(string what) =>
        new(ChatPromptStyle.Plain, $"plain \"User: …\\nAssistant:\" prompts (the tokenizer has {what}; LlmPress renders Llama-3 and ChatML layouts only)");

    /// <summary>
    /// The prompt for the assistant's next turn. Plain: each message as "System: …", "User: …" or "Assistant: …" on
    /// its own line, then "Assistant:" (no trailing space, so the model's first token brings its own).
    /// </summary>
    /// <exception cref="ArgumentException">No messages, or a role other than system/user/assistant.</exception>
    public string Render(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (messages.Count == 0) throw new ArgumentException("A chat needs at least one message.", nameof(messages));
        for (int i = 0; i < messages.Count; i++)
            if (messages[i].Role is not ("system" or "user" or "assistant"))
                throw new ArgumentException($"messages[{i}].role is \"{messages[i].Role}\"; expected system, user or assistant.", nameof(messages));
        return Style switch
        {
            ChatPromptStyle.Llama3 => RenderLlama3(messages),
            ChatPromptStyle.ChatMl => RenderChatMl(messages),
            _ => RenderPlain(messages),
        };
    }

    // {% for message %}'<|start_header_id|>' + role + '<|end_header_id|>\n\n' + content | trim + '<|eot_id|>'
    // (bos_token before the first){% endfor %}'<|start_header_id|>assistant<|end_header_id|>\n\n'
    private string RenderLlama3(IReadOnlyList<ChatMessage> messages)
    {
        var text = new StringBuilder(_bosToken);
        foreach (var m in messages)
            text.Append("<|start_header_id|>").Append(m.Role).Append("<|end_header_id|>\n\n").Append(m.Content.Trim()).Append("<|eot_id|>");
        return text.Append("<|start_header_id|>assistant<|end_header_id|>\n\n").ToString();
    }

    private string RenderChatMl(IReadOnlyList<ChatMessage> messages)
    {
        var text = new StringBuilder();
        if (DefaultSystemPrompt is not null && messages[0].Role != "system")
            Turn(text, "system", DefaultSystemPrompt);
        // Qwen3: the last user message starts the current exchange; assistant turns after it keep a <think> block.
        int lastQuery = messages.Count - 1;
        if (_handlesReasoning)
            for (int i = messages.Count - 1; i >= 0; i--)
                if (messages[i].Role == "user" && !(messages[i].Content.StartsWith("<tool_response>", StringComparison.Ordinal)
                    && messages[i].Content.EndsWith("</tool_response>", StringComparison.Ordinal)))
                {
                    lastQuery = i;
                    break;
                }
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            if (!_handlesReasoning || m.Role != "assistant")
            {
                Turn(text, m.Role, m.Content);
                continue;
            }
            string content = m.Content, reasoning = "";
            int end = content.IndexOf("</think>", StringComparison.Ordinal);
            if (end >= 0)
            {
                string before = content[..end].TrimEnd('\n');
                int start = before.LastIndexOf("<think>", StringComparison.Ordinal);
                reasoning = (start >= 0 ? before[(start + "<think>".Length)..] : before).TrimStart('\n');
                content = content[(content.LastIndexOf("</think>", StringComparison.Ordinal) + "</think>".Length)..].TrimStart('\n');
            }
            text.Append("<|im_start|>assistant\n");
            if (i > lastQuery && (i == messages.Count - 1 || reasoning.Length > 0))
                text.Append("<think>\n").Append(reasoning.Trim('\n')).Append("\n</think>\n\n").Append(content.TrimStart('\n'));
            else
                text.Append(content);
            text.Append("<|im_end|>\n");
        }
        return text.Append("<|im_start|>assistant\n").ToString();

        static void Turn(StringBuilder text, string role, string content) =>
            text.Append("<|im_start|>").Append(role).Append('\n').Append(content).Append("<|im_end|>\n");
    }

    private static string RenderPlain(IReadOnlyList<ChatMessage> messages)
    {
        var text = new StringBuilder();
        foreach (var m in messages)
            text.Append(char.ToUpperInvariant(m.Role[0])).Append(m.Role, 1, m.Role.Length - 1).Append(": ").Append(m.Content).Append('\n');
        return text.Append("Assistant:").ToString();
    }

    // The common Jinja string escapes; anything else is kept as written.
    private static string UnescapeJinjaString(string s) =>
        s.Replace("\\n", "\n", StringComparison.Ordinal).Replace("\\'", "'", StringComparison.Ordinal)
            .Replace("\\\"", "\"", StringComparison.Ordinal).Replace("\\\\", "\\", StringComparison.Ordinal);

    [GeneratedRegex(@"'<\|im_start\|>system\\n((?:[^'\\]|\\.)*?)<\|im_end\|>\\n'")]
    private static partial Regex DefaultSystemTurn();
}
