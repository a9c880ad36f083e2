"""The typer command-line interface: argument parsing and exit codes only."""
