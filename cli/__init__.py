"""``krowoc-admin``: the command line, one small module per command group."""
