"""The `lotedge` command line: one module per command group (`main` assembles them)."""
