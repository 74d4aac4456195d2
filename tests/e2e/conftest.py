"""A real Levered server on a free loopback port, and the real ``levered`` pointed at it."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import pytest

from levered_core.testing import CliRun, run_cli
from tests.live_server import LiveServer, free_port

__all__ = ["LiveServer", "Server", "free_port"]


Server = LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Start ``levered-server`` with SQLite and DuckDB in a fresh data dir."""
    running = LiveServer.launch(tmp_path_factory.mktemp("server"))
    yield running
    running.stop()


@pytest.fixture
def levered(server: LiveServer, tmp_path: pathlib.Path) -> Callable[..., CliRun]:
    """Run the installed ``levered`` against the test server with its API key."""

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> CliRun:
        base = {"LEVERED_API_URL": server.url, "LEVERED_API_KEY": server.api_key,
                "LEVERED_SITE_CONFIG": str(tmp_path / "no-site.json")}
        return run_cli(*args, home=tmp_path / "home", env={**base, **(env or {})}, input=input)

    return run
