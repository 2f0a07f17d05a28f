return LlmPress.Cli.CliApp.Run(args);
