"""A live server for the fault tests: explicit limits, an optimization to serve, its log."""

from __future__ import annotations

import pathlib
import re

from tests.live_server import LiveServer


def launch(tmp_path: pathlib.Path, **env: str) -> tuple[LiveServer, str]:
    """A server with `env` (settings) and a live optimization; returns it and the id."""
    server = LiveServer.launch(tmp_path, env=env)
    return server, server.live_optimization("faults", ["a", "b"])


def log_of(server: LiveServer) -> str:
    """The server's log so far."""
    return (server.data_dir / "server.log").read_text(errors="replace")


REQUEST_LINE = re.compile(r" levered_server\.request ")


def problem_lines(text: str) -> list[str]:
    """The log's lines that are not the per-request access log."""
    return [line for line in text.splitlines() if not REQUEST_LINE.search(line)]
