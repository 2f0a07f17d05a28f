using LlmPress.Tokenization;

namespace LlmPress.Tests.Tokenization;

/// <summary>
/// Chat rendering against hand-written expected prompts. Each expected string is what the real template gives
/// (cross-checked by rendering the template with Jinja2 3.1.6 the way transformers' apply_chat_template does:
/// sandboxed, trim_blocks, lstrip_blocks, add_generation_prompt=True), so an exact match is required.
/// </summary>
public class ChatPromptFormatTests
{
    private static ChatMessage[] Chat(params string[] roleContent)
    {
        var messages = new ChatMessage[roleContent.Length / 2];
        for (int i = 0; i < messages.Length; i++) messages[i] = new ChatMessage(roleContent[2 * i], roleContent[2 * i + 1]);
        return messages;
    }

    // SmolLM2-Instruct's published chat_template (shared/tokenizers/smollm2 ships no tokenizer_config.json).
    private const string SmolLm2Template =
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    [Fact]
    public void Llama3HeadersWithBosOnceAndTrimmedContent()
    {
        var tokenizer = Tokenizer.Load(SharedData.Require("tokenizers", "llama3"));
        var format = ChatPromptFormat.FromTokenizer(tokenizer);
        Assert.Equal(ChatPromptStyle.Llama3, format.Style);
        Assert.True(format.IncludesBos);
        Assert.Equal("<|eot_id|>", format.EndOfTurnToken);
        string prompt = format.Render(Chat("system", "You are terse.", "user", "  Hi!  ", "assistant", "Hello.", "user", "Bye"));
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n", prompt);

        // The markers encode as their special ids, and BOS appears exactly once, first.
        int[] ids = tokenizer.Encode(prompt);
        Assert.Equal(tokenizer.BosTokenId, ids[0]);
        Assert.Single(ids, id => id == tokenizer.BosTokenId);
        Assert.True(tokenizer.TryGetTokenId("<|start_header_id|>", out int header));
        Assert.Equal(5, ids.Count(id => id == header));
    }

    [Fact]
    public void Qwen3ChatMlWithSystemPrompt()
    {
        var format = ChatPromptFormat.FromTokenizer(Tokenizer.Load(SharedData.Require("tokenizers", "qwen3")));
        Assert.Equal(ChatPromptStyle.ChatMl, format.Style);
        Assert.False(format.IncludesBos);
        Assert.Null(format.DefaultSystemPrompt);
        Assert.Equal("<|im_end|>", format.EndOfTurnToken);
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            format.Render(Chat("system", "Be brief.", "user", "Hi")));
        Assert.Equal("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>system\nS2<|im_end|>\n<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\n",
            format.Render(Chat("system", "S", "user", "Hi", "system", "S2", "user", "Again")));
    }

    [Fact]
    public void Qwen3DropsEarlierReasoningAndKeepsTheCurrentTurnsThinkBlock()
    {
        var format = ChatPromptFormat.FromTokenizer(Tokenizer.Load(SharedData.Require("tokenizers", "qwen3")));
        // An assistant turn before the last user message loses its <think> block.
        Assert.Equal("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nTimes 3?<|im_end|>\n<|im_start|>assistant\n",
            format.Render(Chat("user", "2+2?", "assistant", "<think>\nadd\n</think>\n\n4", "user", "Times 3?")));
        // A last assistant turn after the last user message gets a (possibly empty) think block.
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello<|im_end|>\n<|im_start|>assistant\n",
            format.Render(Chat("user", "Hi", "assistant", "Hello")));
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nhmm\n</think>\n\nHello<|im_end|>\n<|im_start|>assistant\n",
            format.Render(Chat("user", "Hi", "assistant", "<think>\nhmm\n</think>\n\nHello")));
    }

    [Fact]
    public void SmolLm2InsertsItsDefaultSystemPromptOnlyWhenThereIsNone()
    {
        var format = ChatPromptFormat.Detect(SmolLm2Template, bosToken: "<|im_start|>");
        Assert.Equal(ChatPromptStyle.ChatMl, format.Style);
        Assert.Equal("You are a helpful AI assistant named SmolLM, trained by Hugging Face", format.DefaultSystemPrompt);
        Assert.Equal("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
            format.Render(Chat("user", "Hello")));
        Assert.Equal("<|im_start|>system\nTalk like a pirate.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
            format.Render(Chat("system", "Talk like a pirate.", "user", "Hello")));
    }

    [Fact]
    public void Qwen25StyleDefaultSystemPromptIsFoundInTheElseBranch()
    {
        // Qwen2.5-Instruct's system section as published, then plain ChatML turns (its tool branches left out).
        const string template =
            "{%- if messages[0]['role'] == 'system' %}\n    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n" +
            "{%- else %}\n    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n{%- endif %}\n" +
            "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}" +
            "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";
        var format = ChatPromptFormat.Detect(template, null);
        Assert.Equal("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.", format.DefaultSystemPrompt);
        Assert.Equal("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            format.Render(Chat("user", "Hi")));
    }

    [Fact]
    public void NoTemplateGivesThePlainFormat()
    {
        var format = ChatPromptFormat.FromTokenizer(Tokenizer.Load(SharedData.Require("models", "stories260K")));
        Assert.Equal(ChatPromptStyle.Plain, format.Style);
        Assert.Contains("no chat_template", format.Description);
        Assert.Null(format.EndOfTurnToken);
        Assert.False(format.IncludesBos);
        Assert.Equal("System: Be kind.\nUser: Hi\nAssistant: Yo\nUser: More\nAssistant:",
            format.Render(Chat("system", "Be kind.", "user", "Hi", "assistant", "Yo", "user", "More")));
    }

    [Fact]
    public void UnrecognisedTemplatesFallBackToPlainAndSaySo()
    {
        var dated = ChatPromptFormat.Detect("{{- bos_token }}{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{{- \"Cutting Knowledge Date: December 2023\\n\" }}<|eot_id|>", "<|begin_of_text|>");
        Assert.Equal(ChatPromptStyle.Plain, dated.Style);
        Assert.Contains("Llama-3.1", dated.Description);
        var gemma = ChatPromptFormat.Detect("{% for message in messages %}<start_of_turn>{{ message['role'] }}\n{{ message['content'] }}<end_of_turn>\n{% endfor %}", "<bos>");
        Assert.Equal(ChatPromptStyle.Plain, gemma.Style);
        Assert.Contains("unrecognised", gemma.Description);
    }

    [Fact]
    public void RejectsUnknownRolesAndEmptyChats()
    {
        var format = ChatPromptFormat.Detect(null, null);
        var e = Assert.Throws<ArgumentException>(() => format.Render(Chat("user", "Hi", "tool", "42")));
        Assert.Contains("messages[1].role", e.Message);
        Assert.Throws<ArgumentException>(() => format.Render([]));
    }
}
