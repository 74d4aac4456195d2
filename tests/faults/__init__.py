"""Fault tests: the server and the CLI under slow clients, lost connections, floods and kills."""
