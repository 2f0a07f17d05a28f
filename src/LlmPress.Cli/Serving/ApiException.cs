namespace LlmPress.Cli.Serving;

/// <summary>
/// A request the server refuses, answered as OpenAI does: the HTTP <see cref="Status"/> and a body
/// {"error": {"message", "type", "param", "code"}}.
/// </summary>
internal sealed class ApiException(int status, string message, string? param = null, string? code = null,
    string type = "invalid_request_error") : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    public static ApiException BadRequest(string message, string? param = null, string? code = null) => new(400, message, param, code);
}
