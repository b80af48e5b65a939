"""The command line: argument parsing, output and exit codes; one module per command group."""
