"""Running the server: in the foreground, in the background, stopping it, its status.

The `levered server start|stop|status` commands wrap `start_background`, `stop` and
`status`; the state file `<data_dir>/server.json` says where a running server listens. The
serving process holds `<data_dir>/server.lock` (`datadir_lock.py`) from before it writes
server.json until it exits, so a second server on the same data dir refuses to start. With
`--workers N` (PostgreSQL only) that process is the parent of N workers (`workers.py`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from levered_server import __version__, datadir_lock, limits, workers
from levered_server.settings import Settings

STATE_FILE = "server.json"
LOG_FILE = "server.log"


def state_path(data_dir: Path) -> Path:
    """Where a running server records its pid, URL and database."""
    return Path(data_dir) / STATE_FILE


def _describe_db(settings: Settings) -> str:
    url = settings.sqlalchemy_url
    if "@" in url:  # never show a password
        scheme, _, rest = url.partition("://")
        url = f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url


def _describe_warehouse(settings: Settings) -> str:
    if not settings.embedded_warehouse:
        return "none by default"
    if settings.managed_engine == "postgres":
        return "postgres (managed, a database per organization)"
    return f"duckdb (embedded, {settings.warehouse_dir})"


def preflight(settings: Settings) -> None:
    """Refuse now what would not start: workers the layout does not allow, the data dir in
    use, a missing or wrong secret key.

    :raises StartRefused: with a one-line reason (`WorkersRefused`, `DataDirInUse`, ...).
    """
    workers.check(settings)
    datadir_lock.check_free(settings.data_dir)
    check_secret_key(settings)
    check_managed_warehouse(settings)


def check_managed_warehouse(settings: Settings) -> None:
    """On PostgreSQL, check the server's user may create the managed warehouses.

    :raises StartRefused: it may not (the message names what it lacks), or a bad setting.
    """
    from levered_server.warehouse.manager import check_managed_warehouse as check

    check(settings)


def check_secret_key(settings: Settings) -> None:
    """Check the configured secret key against the state database (migrating it first).

    :raises StartRefused: no usable key, or not the key of the stored credentials.
    """
    from levered_server.keycheck import verify_secret_key
    from levered_server.secretbox import SecretBox
    from levered_server.store import open_store

    box = SecretBox.from_settings(settings)
    store = open_store(settings.sqlalchemy_url)
    try:
        verify_secret_key(store, box)
    finally:
        store.dispose()


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM, in this process or its `settings.workers` workers; this
    process holds the data dir's lock meanwhile.

    :raises StartRefused: more workers than the layout allows, another process holds the data
        dir, or the secret key is wrong (then nothing of the running server, server.json or
        its log, was touched); or a worker could not start (`WorkerFailed`).
    """
    workers.check(settings)
    lock = datadir_lock.acquire(settings.data_dir)
    try:
        _serve(settings)
    finally:
        lock.release()


def configure_logging(settings: Settings) -> None:
    """The server's log format and level (the parent's, and each worker's); what uvicorn and
    asyncio log per connection is throttled to a line per kind per interval."""
    from levered_server.limits import throttle_logs

    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    throttle_logs()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options: the guarded protocol (`protocol.py`) and the settings' timeouts."""
    from levered_server.protocol import GuardedProtocol

    return {"access_log": False, "server_header": False, "http": GuardedProtocol, "ws": "none",
            "log_level": settings.log_level,
            # Longer than any client's idle gap (device polls, dashboards) by default, so the
            # server does not close a kept-alive connection just as the client reuses it.
            "timeout_keep_alive": settings.keep_alive_seconds,
            # Requests still running then are cancelled, so a stuck client cannot hold a stop.
            "timeout_graceful_shutdown": settings.shutdown_timeout_seconds}


def _serve(settings: Settings) -> None:
    import uvicorn

    configure_logging(settings)
    limits.configure(settings)  # the file limit too: the workers inherit it
    # Here rather than in the app's lifespan, where uvicorn would log a traceback; and here,
    # once, rather than in each of several workers.
    check_secret_key(settings)
    check_managed_warehouse(settings)
    app: Any = None
    if settings.workers == 1:
        from levered_server.app import create_app

        app = create_app(settings)
    else:
        workers.initialize(settings)
    path = state_path(settings.data_dir)
    state = {"pid": os.getpid(), "host": settings.host, "port": settings.port,
             "url": url_of(settings),
             "version": __version__, "database": _describe_db(settings),
             "warehouse": _describe_warehouse(settings), "workers": settings.workers,
             "data_dir": str(settings.data_dir), "started_at": time.time()}
    path.write_text(json.dumps(state, indent=2))
    try:
        with _stopped_by_signal_exits_zero():
            if app is not None:
                uvicorn.run(app, host=settings.host, port=settings.port, **uvicorn_options(settings))
            else:
                workers.serve(settings, **uvicorn_options(settings))
    finally:
        with contextlib.suppress(FileNotFoundError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()


@contextlib.contextmanager
def _stopped_by_signal_exits_zero() -> Iterator[None]:
    """After its graceful stop uvicorn raises the SIGTERM/SIGINT it caught again, for the
    handler it found: let that be a no-op, so a stop asked for is a clean exit (status 0)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def url_of(settings: Settings) -> str:
    """The URL this machine reaches the server of `settings` at."""
    return f"http://{_url_host(settings.host)}:{settings.port}"


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _healthy(url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout) as resp:
            body: dict[str, Any] = json.loads(resp.read())
            return body
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(data_dir: Path) -> dict[str, Any]:
    """Whether a server of this data dir is up: `{"running", "url", "pid", "version", ...}`."""
    path = state_path(data_dir)
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {"running": False, "url": None, "pid": None, "version": None,
                "database": None, "warehouse": None, "workers": None, "data_dir": str(data_dir)}
    alive = _alive(int(state["pid"]))
    health = _healthy(state["url"]) if alive else None
    state.setdefault("workers", 1)  # written by a server from before workers
    if state["workers"] > 1:
        state["worker_pids"] = workers.worker_pids(int(state["pid"])) if alive else []
    return {**state, "running": health is not None and health.get("status") == "ok",
            "health": health}


def start_background(settings: Settings, *, wait: float = 30.0,
                     env: dict[str, str] | None = None) -> dict[str, Any]:
    """Start `python -m levered_server` detached, logging to `<data_dir>/server.log`.

    :returns: the `status()` once `/healthz` answers.
    :raises RuntimeError: it is already running (`DataDirInUse` when a process holds the data
        dir: checked before the log is opened), or did not come up within `wait` seconds.
    """
    datadir_lock.check_free(settings.data_dir)
    current = status(settings.data_dir)
    if current["running"]:
        raise RuntimeError(f"already running at {current['url']} (pid {current['pid']})")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "levered_server", "--host", settings.host,
            "--port", str(settings.port), "--data-dir", str(settings.data_dir),
            "--workers", str(settings.workers)]
    if settings.database_url:
        argv += ["--database-url", settings.database_url]
    # Multithreaded BLAS is ~5x slower for the engine's small matrices on 2-core machines.
    child_env = {"OPENBLAS_NUM_THREADS": "1", **(os.environ if env is None else env)}
    log = open(settings.data_dir / LOG_FILE, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=child_env)
    log.close()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}; "
                               f"see {settings.data_dir / LOG_FILE}")
        current = status(settings.data_dir)
        if current["running"] and current.get("pid") == proc.pid:
            return current
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"server did not answer within {wait:g} s; "
                       f"see {settings.data_dir / LOG_FILE}")


def stop(data_dir: Path, *, wait: float = 15.0) -> bool:
    """Stop the server of this data dir (SIGTERM, then SIGKILL). Returns False if none ran.

    With several workers the SIGTERM goes to their parent, which passes it on and waits for
    each worker to commit its queued writes.
    """
    path = state_path(data_dir)
    try:
        pid = int(json.loads(path.read_text())["pid"])
    except (FileNotFoundError, ValueError, KeyError):
        return False
    if not _alive(pid):
        path.unlink(missing_ok=True)
        return False
    children = workers.worker_pids(pid)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    if _alive(pid):
        for child in [pid, *children]:  # workers outliving a killed parent would keep the port
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return True
