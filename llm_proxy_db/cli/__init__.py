"""The command line: the Typer application, its renderers and the fast path at head."""
