namespace LlmPress.Tests;

/// <summary>
/// Locates ../shared (ground-truth models, tokenizers and text beside the repository). Tests that need it call
/// <see cref="Require"/> and are skipped with a message when it is absent (a user's fresh clone).
/// </summary>
internal static class SharedData
{
    private static readonly Lazy<string?> s_root = new(FindRoot);

    /// <summary>Absolute path of the shared folder, or null when it does not exist.</summary>
    public static string? Root => s_root.Value;

    /// <summary>Path below shared/, or a skip of the calling test when shared/ is missing.</summary>
    public static string Require(params string[] relative)
    {
        if (Root is null)
            Assert.Skip("../shared is not present (fresh clone without the ground-truth data); skipping.");
        string path = Path.Combine([Root!, .. relative]);
        if (!File.Exists(path) && !Directory.Exists(path))
            Assert.Skip($"{path} is not present in this copy of shared/; skipping.");
        return path;
    }

    private static string? FindRoot()
    {
        var env = Environment.GetEnvironmentVariable("LLMPRESS_SHARED");
        if (!string.IsNullOrEmpty(env) && Directory.Exists(env)) return Path.GetFullPath(env);
        // Walk up from the test binary until a folder holds the repository (LlmPress.slnx); shared/ sits beside it.
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LlmPress.slnx")))
            {
                var candidate = Path.Combine(dir.Parent?.FullName ?? dir.FullName, "shared");
                return Directory.Exists(candidate) ? candidate : null;
            }
        }
        return null;
    }
}
