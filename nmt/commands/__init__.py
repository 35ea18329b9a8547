"""Our own subcommands of ``nmt`` (argument parsing and output); the work is done by the library modules."""
