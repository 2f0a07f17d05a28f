using System.Text.RegularExpressions;

namespace LlmPress.Tokenization;

/// <summary>tokenizers' <c>Replace</c> normalizer: replaces every match of a literal or a regex pattern.</summary>
internal sealed class ReplaceNormalizer : Normalizer
{
    private readonly string? _literal;
    private readonly Regex? _regex;
    private readonly string _content;

    private ReplaceNormalizer(string? literal, Regex? regex, string content)
    {
        _literal = literal;
        _regex = regex;
        _content = content;
    }

    public static ReplaceNormalizer ForLiteral(string literal, string content) => new(literal, null, content);

    public static ReplaceNormalizer ForRegex(string pattern, string content) =>
        new(null, new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant), content);

    public override string Normalize(string text)
    {
        if (_literal is not null)
            return _literal.Length == 0 ? text : text.Replace(_literal, _content, StringComparison.Ordinal);
        // The replacement is literal text in tokenizers, never a substitution pattern like "$1".
        return _regex!.Replace(text, _ => _content);
    }
}
