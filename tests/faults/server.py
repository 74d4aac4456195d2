"""A live server for the fault tests: explicit limits, an optimization to serve, its log."""

from __future__ import annotations

import pathlib
import re

from tests.live_server import LiveServer


def launch(tmp_path: pathlib.Path, **env: str) -> tuple[LiveServer, str]:
    """A server with `env` (settings) and a live optimization; returns it and the id."""
    server = LiveServer.launch(tmp_path, env=env)
    status, metric = server.api("POST", "/api/v2/warehouse/metrics", {
        "name": "m", "sql": "SELECT anonymous_id, timestamp_utc FROM managed_dw.rewards",
        "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc"}})
    assert status == 201, metric
    status, opt = server.api("POST", "/api/v2/optimizations", {
        "name": "faults", "model_type": "mab", "reward_metric_id": metric["id"],
        "holdout_percentage": 0, "training_data_config": {
            "reward": {"name": "r", "type": "bool"},
            "design_factors": [{"name": "h", "levels": ["a", "b"]}]}})
    assert status == 201, opt
    return server, opt["id"]


def log_of(server: LiveServer) -> str:
    """The server's log so far."""
    return (server.data_dir / "server.log").read_text(errors="replace")


REQUEST_LINE = re.compile(r" levered_server\.request ")


def problem_lines(text: str) -> list[str]:
    """The log's lines that are not the per-request access log."""
    return [line for line in text.splitlines() if not REQUEST_LINE.search(line)]
