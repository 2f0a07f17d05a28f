namespace LlmPress.Tokenization;

/// <summary>tokenizers' <c>SplitDelimiterBehavior</c>: what happens to the matched delimiters.</summary>
internal enum SplitBehavior
{
    /// <summary>Delimiters are dropped.</summary>
    Removed,

    /// <summary>Delimiters become pieces of their own.</summary>
    Isolated,

    /// <summary>A delimiter is appended to the piece before it.</summary>
    MergedWithPrevious,

    /// <summary>A delimiter is prepended to the piece after it.</summary>
    MergedWithNext,

    /// <summary>Consecutive delimiters (and consecutive non-delimiters) form one piece.</summary>
    Contiguous,
}
