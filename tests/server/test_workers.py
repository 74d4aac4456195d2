"""`--workers N`: N uvicorn workers on one port on PostgreSQL, one process on the embedded default."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from levered_server import control, workers
from levered_server.settings import Settings
from tests.live_server import TEST_ENV, free_port
from tests.pg import PG_URL, SKIP_REASON

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVER = str(pathlib.Path(sys.executable).with_name("levered-server"))
SECRET = "levered-workers-test-secret-key-0123456789"


def _env(tmp_path: pathlib.Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, **TEST_ENV, "LEVERED_HOME": str(tmp_path / "home"),
           "LEVERED_SITE_CONFIG": str(tmp_path / "no-site.json"), "LEVERED_ACCESS_LOG": "false",
           "LEVERED_PASSWORD_HASH_COST": "10", **extra}
    for name in ("LEVERED_DATABASE_URL", "LEVERED_DATA_DIR", "LEVERED_WORKERS"):
        env.pop(name, None)
    return env


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_settings_reach_the_workers_unchanged(tmp_path):
    settings = Settings(data_dir=tmp_path, port=4000, workers=3, trusted_proxies=("10.0.0.0/8",),
                        secret_key_file=tmp_path / "key", secret_key_previous=("a", "b"),
                        database_url="postgresql+psycopg://u:p@h/db", thompson_scale=0.5)
    assert workers.decode(workers.encode(settings)) == settings
    assert workers.decode(workers.encode(Settings())) == Settings()


def test_more_than_one_worker_needs_postgres_state_and_warehouse(tmp_path):
    workers.check(Settings(data_dir=tmp_path))  # one worker: any layout
    with pytest.raises(workers.WorkersRefused, match=r"^--workers 2 needs PostgreSQL: .*SQLite") as exc:
        workers.check(Settings(data_dir=tmp_path, workers=2))
    assert "\n" not in str(exc.value) and "--database-url" in str(exc.value)
    pg = "postgresql+psycopg://u@h/db"
    workers.check(Settings(data_dir=tmp_path, workers=2, database_url=pg))
    with pytest.raises(workers.WorkersRefused, match="managed warehouse on PostgreSQL"):
        workers.check(Settings(data_dir=tmp_path, workers=2, database_url=pg,
                               managed_warehouse="duckdb"))


def test_workers_on_sqlite_are_refused_in_one_line(tmp_path):
    from levered_core.testing import run_cli

    data_dir = tmp_path / "d"
    proc = subprocess.run([SERVER, "--workers", "2", "--data-dir", str(data_dir)],
                          env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("levered-server: --workers 2 needs PostgreSQL")
    assert proc.stderr.count("\n") == 1 and not data_dir.exists()  # nothing was touched
    # The variable, through `levered server start`.
    cli = run_cli("server", "start", "--data-dir", str(data_dir), home=tmp_path / "home",
                  env={"LEVERED_SITE_CONFIG": str(tmp_path / "none.json"), "LEVERED_WORKERS": "2"})
    assert cli.exit_code != 0 and cli.stderr.count("\n") == 1, cli.stderr
    assert "cannot start the server: --workers 2 needs PostgreSQL" in cli.stderr
    assert not data_dir.exists()


def build_failing_app(settings: Settings) -> Any:
    """An app whose start fails like a lost database would (for the test below)."""
    from fastapi import FastAPI

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        raise ConnectionError("the state database went away\nsecond line")
        yield

    return FastAPI(lifespan=lifespan)


def failing_lifespan_app() -> Any:
    """A worker factory (uvicorn imports it by name) whose app cannot start."""
    return workers.create_worker_app(build=build_failing_app)


def failing_factory_app() -> Any:
    """A worker factory that fails before there is an app."""
    return workers.create_worker_app(build=lambda settings: 1 / 0)


@pytest.mark.parametrize(("factory", "reason"), [
    ("failing_lifespan_app", "ConnectionError: the state database went away"),
    ("failing_factory_app", "ZeroDivisionError: division by zero")])
def test_a_worker_that_cannot_start_stops_the_server_with_its_reason(tmp_path, factory, reason):
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from levered_server import workers
        from levered_server.settings import Settings
        settings = Settings(data_dir=Path({str(tmp_path)!r}), port={free_port()}, workers=2)
        try:
            workers.serve(settings, app="tests.server.test_workers:{factory}")
        except workers.WorkerFailed as exc:
            sys.exit(f"levered-server: {{exc}}")
        """)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err[-3000:]
        assert err.strip().splitlines()[-1] == (
            f"levered-server: a worker could not start, so the server stopped: {reason}")
        assert err.count("Started server process") <= 3, "workers were restarted in a loop"
        assert time.monotonic() - started < 30
        assert _group_ends(proc.pid, 10), "a process of the server outlived it"
        assert not (tmp_path / workers.FAILURE_FILE).exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _group_ends(pgid: int, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def _state_schema(pg_url: str) -> Iterator[str]:
    """A fresh state schema of `pg_url` (tests/cluster.py's way); its organizations' managed
    warehouse databases and roles are dropped after."""
    from tests.cluster import fresh_schema

    with fresh_schema(pg_url, "lvworkers_") as url:
        yield url


def _call(url: str, method: str = "GET", body: Any = None,
          key: str | None = None) -> tuple[int, Any, str]:
    """One request on a new connection: status, JSON body, the replica that answered."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read()), resp.headers["X-Levered-Replica"]
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), exc.headers["X-Levered-Replica"]


@pytest.mark.skipif(PG_URL is None, reason=SKIP_REASON)
def test_two_workers_share_one_port_and_stop_together(tmp_path):
    from levered_server.bootstrap import create_api_key
    from tests.cluster import wait_healthy
    from tests.server.factories import HERO, SIGNUP_SQL

    assert PG_URL is not None
    port, data_dir = free_port(), tmp_path / "d"
    base = f"http://127.0.0.1:{port}"
    with _state_schema(PG_URL) as url, open(tmp_path / "server.log", "ab") as log:
        proc = subprocess.Popen([SERVER, "--workers", "2", "--port", str(port), "--data-dir",
                                 str(data_dir), "--database-url", url],
                                env=_env(tmp_path, LEVERED_SECRET_KEY=SECRET,
                                         LEVERED_REPLICA_ID="web-1"),
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(base, proc, tmp_path / "server.log")
            key = create_api_key(settings=Settings(data_dir=tmp_path / "admin", database_url=url,
                                                   secret_key=SECRET))["secret"]
            _, metric, _ = _call(base + "/api/v2/warehouse/metrics", "POST", {
                "name": "m", "sql": SIGNUP_SQL, "column_mapping": {
                    "anonymous_id": "anonymous_id", "timestamp": "timestamp_utc"}}, key)
            status, opt, _ = _call(base + "/api/v2/optimizations", "POST",
                                   {**HERO, "reward_metric_id": metric["id"]}, key)
            assert status == 201, opt
            serve = f"{base}/api/v2/optimizations/{opt['id']}/serve"
            body = {"anonymous_id": "ada", "context": {"country": "US", "device_type": "mobile"}}
            shown: dict[str, list[int]] = {}  # variants shown, by the worker that answered
            deadline = time.monotonic() + 60
            while len(shown) < 2 or min(map(len, shown.values())) < 2:
                assert time.monotonic() < deadline, f"only these workers answered: {shown}"
                status, answer, replica = _call(serve, "POST", body)
                assert status == 200, answer
                shown.setdefault(replica, []).append(answer["variant_number"])
            # One port, two workers, each named after the replica and its own pid.
            pids = sorted(int(r.rpartition("/w")[2]) for r in shown)
            assert all(r.startswith("web-1/w") for r in shown) and proc.pid not in pids
            # The user's variant is the same whichever worker answered.
            assert len({v for variants in shown.values() for v in variants}) == 1, shown
            state = control.status(data_dir)
            assert state["running"] and state["pid"] == proc.pid and state["workers"] == 2
            assert state["worker_pids"] == pids
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
        deadline = time.monotonic() + 10
        while not all(map(_gone, pids)) and time.monotonic() < deadline:
            time.sleep(0.1)
        text = (tmp_path / "server.log").read_text()
        assert code == 0 and all(map(_gone, pids)), text[-3000:]
        assert text.count("Application shutdown complete") == 2 and "Traceback" not in text
        assert not control.state_path(data_dir).exists()
