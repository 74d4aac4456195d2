"""A real ``levered-server`` on a free loopback port, shared by the end-to-end and dashboard tests."""

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
from typing import Any

#: Test servers: no rate limits (tests make many calls from one IP), a short burn-in.
TEST_ENV = {"LEVERED_RATE_LIMIT_PER_MINUTE": "0", "LEVERED_SERVE_RATE_LIMIT_PER_MINUTE": "0",
            "LEVERED_MIN_TRAIN_OBSERVATIONS": "10", "OPENBLAS_NUM_THREADS": "1"}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class LiveServer:
    """A ``levered-server`` process with SQLite and DuckDB in ``data_dir``, and an API key."""

    url: str
    port: int
    data_dir: pathlib.Path
    api_key: str = ""
    process: subprocess.Popen[bytes] | None = None
    #: More environment of the server process (settings the test needs), over `TEST_ENV`.
    env: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def launch(cls, data_dir: pathlib.Path, env: dict[str, str] | None = None) -> LiveServer:
        """Start a fresh server on a free port and create an API key of its default organization."""
        port = free_port()
        server = cls(f"http://127.0.0.1:{port}", port, data_dir, env=dict(env or {}))
        server.start()
        from levered_server.bootstrap import create_api_key

        server.api_key = create_api_key(data_dir=data_dir / "data")["secret"]
        return server

    def start(self) -> None:
        """Start (or restart) the process on its port and wait for ``/healthz``."""
        executable = pathlib.Path(sys.executable).with_name("levered-server")
        env = {"PATH": "/usr/bin:/bin", "LEVERED_HOME": str(self.data_dir / "home"), **TEST_ENV, **self.env}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "server.log", "ab") as log:
            self.process = subprocess.Popen([str(executable), "--port", str(self.port), "--data-dir",
                                             str(self.data_dir / "data")], stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((self.data_dir / "server.log").read_text()) from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop the process (SIGTERM lets it flush its queued writes)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

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

    def live_optimization(self, name: str, levels: list[str]) -> str:
        """A live `mab` optimization of one factor with `levels`, no holdout, rewarded by the
        managed warehouse's rewards; its id."""
        status, metric = self.api("POST", "/api/v2/warehouse/metrics", {
            "name": "m", "sql": "SELECT anonymous_id, timestamp_utc FROM managed_dw.rewards",
            "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc"}})
        assert status == 201, metric
        status, opt = self.api("POST", "/api/v2/optimizations", {
            "name": name, "model_type": "mab", "reward_metric_id": metric["id"],
            "holdout_percentage": 0, "training_data_config": {
                "reward": {"name": "r", "type": "bool"},
                "design_factors": [{"name": "h", "levels": levels}]}})
        assert status == 201, opt
        return str(opt["id"])

    def state(self) -> dict[str, Any]:
        """Everything a failed command must leave unchanged."""
        bodies = {"optimizations": self.api("GET", "/api/v2/optimizations?include_archived=true&limit=100")[1],
                  "metrics": self.api("GET", "/api/v2/warehouse/metrics")[1],
                  "models": self.api("GET", "/api/v2/models?include_archived=true&limit=100")[1]}
        return {key: sorted(json.dumps(o, sort_keys=True) for o in body[key]) for key, body in bodies.items()}
