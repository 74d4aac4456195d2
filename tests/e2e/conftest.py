"""A real Levered server on a free loopback port, and the real ``levered`` pointed at it."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from levered_core.testing import CliRun, run_cli


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class Server:
    """A running ``levered-server`` and an API key of its default organization."""

    url: str
    data_dir: pathlib.Path
    api_key: str
    process: subprocess.Popen[bytes]

    def api(self, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
        """Call the API directly (to set up data and to check server state)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {key or self.api_key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def state(self) -> dict[str, Any]:
        """Everything a failed command must leave unchanged."""
        optimizations = self.api("GET", "/api/v2/optimizations?include_archived=true&limit=100")[1]
        metrics = self.api("GET", "/api/v2/warehouse/metrics")[1]
        models = self.api("GET", "/api/v2/models?include_archived=true&limit=100")[1]
        strip = lambda body, key: sorted(json.dumps(o, sort_keys=True) for o in body[key])  # noqa: E731
        return {"optimizations": strip(optimizations, "optimizations"), "metrics": strip(metrics, "metrics"),
                "models": strip(models, "models")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Start ``levered-server`` with SQLite and DuckDB in a fresh data dir."""
    data_dir = tmp_path_factory.mktemp("server")
    port = free_port()
    executable = pathlib.Path(sys.executable).with_name("levered-server")
    env = {"PATH": "/usr/bin:/bin", "LEVERED_HOME": str(data_dir / "home"),
           "LEVERED_RATE_LIMIT_PER_MINUTE": "0", "LEVERED_SERVE_RATE_LIMIT_PER_MINUTE": "0",
           "LEVERED_MIN_TRAIN_OBSERVATIONS": "10"}
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - the child writes to it
    process = subprocess.Popen([str(executable), "--port", str(port), "--data-dir", str(data_dir / "data")],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((data_dir / "server.log").read_text()) from None
            time.sleep(0.1)
    from levered_server.bootstrap import create_api_key

    key = create_api_key(data_dir=data_dir / "data")["secret"]
    yield Server(url, data_dir, key, process)
    process.terminate()
    process.wait(timeout=30)
    log.close()


@pytest.fixture
def levered(server: Server, tmp_path: pathlib.Path) -> Callable[..., CliRun]:
    """Run the installed ``levered`` against the test server with its API key."""

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> CliRun:
        base = {"LEVERED_API_URL": server.url, "LEVERED_API_KEY": server.api_key,
                "LEVERED_SITE_CONFIG": str(tmp_path / "no-site.json")}
        return run_cli(*args, home=tmp_path / "home", env={**base, **(env or {})}, input=input)

    return run
