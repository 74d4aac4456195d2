"""A real Levered server with seeded optimizations, and helpers to drive the dashboard headless.

The server fixture follows ``tests/e2e/conftest.py``: ``levered-server`` on a free loopback
port with SQLite and DuckDB in a fresh data dir, and an API key from
``levered_server.bootstrap.create_api_key``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import pathlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from levered_core.testing import CliRun, run_cli
from tests.live_server import LiveServer

SQL = "SELECT anonymous_id, timestamp_utc FROM rewards WHERE name = 'signup' AND timestamp_utc >= @start_date"
HERO = {"name": "Landing page hero", "model_type": "cmab", "holdout_percentage": 10, "training_data_config": {
    "design_factors": [{"name": "headline", "levels": ["Ship faster", "Build better"]},
                       {"name": "cta_text", "levels": ["Get started", "Try it free"]}],
    "context_factors": [{"name": "country", "levels": ["US", "DE"]}]}}
PRICING = {"name": "Pricing page CTA", "model_type": "mab", "holdout_percentage": 10, "training_data_config": {
    "design_factors": [{"name": "cta_text", "levels": ["Start free trial", "See plans"]}]}}


@dataclasses.dataclass
class Server(LiveServer):
    """A running ``levered-server``, an API key, and the IDs of the seeded optimizations."""

    ids: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def serve(self, optimization: str, visitors: range, convert_every: int = 4, **body: Any) -> int:
        """Serve ``visitors`` and ingest a sign-up for every ``convert_every``-th; return exposures."""
        opt_id = self.ids[optimization]["id"]
        served = []
        for i in visitors:
            status, answer = self.api("POST", f"/api/v2/optimizations/{opt_id}/serve",
                                      {"anonymous_id": f"{optimization[:4]}-{i}", **body})
            assert status == 200, answer
            served.append(answer)
        # Conversions come after their exposures (last-touch attribution): stamp to the microsecond.
        now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        events = [{"anonymous_id": s["anonymous_id"], "name": "signup", "timestamp": now}
                  for s in served[::convert_every]]
        status, answer = self.api("POST", "/api/v2/ingest/rewards", {"events": events})
        assert status in (200, 207), answer
        return len(served)


def start_server(data_dir: pathlib.Path) -> Server:
    """Start a fresh server in ``data_dir`` and seed two optimizations with traffic."""
    server = Server.launch(data_dir)
    status, metric = server.api("POST", "/api/v2/warehouse/metrics", {
        "name": "Sign-ups", "sql": SQL,
        "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc"}})
    assert status == 201, metric
    for spec in (PRICING, HERO):
        status, created = server.api("POST", "/api/v2/optimizations", {**spec, "reward_metric_id": metric["id"]})
        assert status == 201, created
        server.ids[spec["name"]] = created
    server.serve("Pricing page CTA", range(40))
    server.serve("Landing page hero", range(30), context={"country": "US"})
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A seeded server shared by a module's tests (read-only tests only)."""
    running = start_server(tmp_path_factory.mktemp("dashboard-server"))
    yield running
    running.stop()


@pytest.fixture
def own_server(tmp_path: pathlib.Path) -> Iterator[Server]:
    """A seeded server of the test's own, which the test may change or stop."""
    running = start_server(tmp_path / "server")
    yield running
    running.stop()


@pytest.fixture
def levered(server: Server, tmp_path: pathlib.Path) -> Callable[..., CliRun]:
    """Run the installed ``levered`` against the shared server with its API key."""

    def run(*args: str, env: dict[str, str] | None = None) -> CliRun:
        base = {"LEVERED_API_URL": server.url, "LEVERED_API_KEY": server.api_key,
                "LEVERED_SITE_CONFIG": str(tmp_path / "no-site.json"), "COLUMNS": "100"}
        return run_cli(*args, home=tmp_path / "home", env={**base, **(env or {})})

    return run


def client_for(server: Server, key: str | None = None) -> Any:
    """The core's API client for ``server``."""
    from levered_core.client import LeveredClient

    return LeveredClient(server.url, key or server.api_key, timeout=10)


def drive(app: Any, script: Callable[[Any], Awaitable[None]], size: tuple[int, int] = (80, 24)) -> None:
    """Run ``app`` headless at ``size`` and ``await script(pilot)``."""

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await script(pilot)

    asyncio.run(main())


async def wait_for(pilot: Any, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; screen:\n{screen_text(pilot.app)}")
        await pilot.pause(0.05)


def screen_text(app: Any) -> str:
    """Everything the current screen shows, as plain text (one line per row)."""
    from rich.console import Console

    console = Console(width=app.size.width, height=app.size.height, record=True, force_terminal=False,
                      file=io.StringIO())
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


def cells(app: Any) -> dict[str, list[str]]:
    """The list table as {full optimization name: row cells}."""
    from textual.widgets import DataTable

    table = app.screen_stack[1].query_one(DataTable)
    return {item.optimization["name"]: [str(cell) for cell in table.get_row(item.id)] for item in app.snapshot.items}

