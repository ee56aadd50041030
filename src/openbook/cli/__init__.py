"""The `openbook` command: thin subcommands over the library (one module each)."""
