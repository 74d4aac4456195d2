"""Several uvicorn worker processes on one port, on PostgreSQL: each worker is one more replica.

`control.run` stays the parent, uvicorn's supervisor: it holds the data dir, runs the start-up
checks (secret key, managed warehouse privileges, migrations, first start) once, writes
server.json, forwards SIGTERM to the workers and waits for them. Each worker is a spawned
interpreter that builds its app (`create_worker_app`) from the parent's resolved settings,
handed down as JSON in `ENV`, under its own replica id `<replica id>/w<pid>`. What workers
share already lives in PostgreSQL (sticky locks, deterministic first assignments, the training
lease, exposures in the managed warehouse), so N workers behave like N replicas behind a
balancer, the kernel being the balancer.

The embedded default runs one: SQLite takes one writer at a time, an embedded DuckDB file one
writer process, and the data dir belongs to one process (`datadir_lock.py`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from levered_server.errors import StartRefused
from levered_server.settings import Settings, is_postgres_url

if TYPE_CHECKING:
    from fastapi import FastAPI

ENV = "LEVERED_WORKER_SETTINGS"
APP = "levered_server.workers:create_worker_app"
FAILURE_FILE = "worker-failure"  # in the data dir: why a worker could not start
STARTUP_FAILURE = 3  # uvicorn's exit status for "could not start" (not restarted)
log = logging.getLogger("levered_server")


class WorkersRefused(StartRefused):
    """More than one worker on a layout that allows one process."""


class WorkerFailed(StartRefused):
    """A worker could not start, so the server stopped."""


def check(settings: Settings) -> None:
    """Allow `workers > 1` only with the state and the managed warehouse on PostgreSQL.

    :raises WorkersRefused: one line saying why and what to do instead.
    """
    n = settings.workers
    if n == 1:
        return
    if not is_postgres_url(settings.sqlalchemy_url):
        raise WorkersRefused(
            f"--workers {n} needs PostgreSQL: on the embedded default SQLite takes one writer at a "
            "time, a DuckDB file one writer process and the data dir one server process; pass "
            "--database-url postgresql+psycopg://… (LEVERED_DATABASE_URL), or run one worker")
    if settings.managed_engine == "duckdb":
        raise WorkersRefused(
            f"--workers {n} needs the managed warehouse on PostgreSQL: with "
            "LEVERED_MANAGED_WAREHOUSE=duckdb it is a DuckDB file per organization, which one "
            "process writes; unset LEVERED_MANAGED_WAREHOUSE, or run one worker")


def encode(settings: Settings) -> str:
    """All of `settings` as JSON, for the workers' environment."""
    return json.dumps(dataclasses.asdict(settings), default=str)


def decode(text: str) -> Settings:
    """The inverse of `encode`: paths and tuples come back as such."""
    values = json.loads(text)
    for field in dataclasses.fields(Settings):
        value = values.get(field.name)
        if isinstance(value, list):
            values[field.name] = tuple(value)
        elif value is not None and "Path" in str(field.type):
            values[field.name] = Path(value)
    return Settings(**values)


def initialize(settings: Settings) -> None:
    """Create the first organization here, once: workers starting together would each find
    none and each create one."""
    from levered_server.bootstrap import ensure_initialized
    from levered_server.store import open_store

    store = open_store(settings.sqlalchemy_url)
    try:
        first = ensure_initialized(store=store, settings=settings)
    finally:
        store.dispose()
    if first:
        log.warning("first start: created organization %r and admin user %s (one-time password: "
                    "%s). Log in with `levered login --api-url %s`, or create an API key with "
                    "`levered server api-key create --database-url <this server's URL>`.",
                    first["name"], first["admin_email"], first["admin_password"],
                    settings.public_url)


def serve(settings: Settings, *, app: str = APP, **options: Any) -> None:
    """Supervise `settings.workers` workers on one socket until SIGTERM or SIGINT.

    :param app: the workers' app factory as an import string (tests pass another).
    :param options: uvicorn's (host and port come from `settings`).
    :raises WorkerFailed: a worker could not start (the others were stopped), with its reason.
    """
    import uvicorn

    failure = settings.data_dir / FAILURE_FILE
    failure.unlink(missing_ok=True)
    # Spawned workers inherit the environment: the settings as this process resolved them
    # (flags included), not as the workers would re-read them.
    os.environ[ENV] = encode(settings)
    try:
        uvicorn.run(app, factory=True, workers=settings.workers, host=settings.host,
                    port=settings.port, **options)
    finally:
        os.environ.pop(ENV, None)
    with contextlib.suppress(FileNotFoundError):
        reason = failure.read_text().strip()
        failure.unlink()
        raise WorkerFailed(f"a worker could not start, so the server stopped: {reason}")


def create_worker_app(build: Callable[[Settings], FastAPI] | None = None) -> FastAPI:
    """Build one worker's app (uvicorn's factory): the parent's settings, its own replica id.

    :param build: makes the app of the settings (default `app.create_app`; tests pass another).
    """
    from levered_server.control import configure_logging
    from levered_server.limits import configure as configure_limits
    from levered_server.replica import replica_id

    parent = os.getppid()
    failure: Path | None = None
    try:
        settings = decode(os.environ[ENV])
        failure = settings.data_dir / FAILURE_FILE
        settings = settings.replace(replica_id=f"{replica_id(settings)}/w{os.getpid()}")
        configure_logging(settings)
        configure_limits(settings)
        _exit_with(parent)
        if build is None:
            from levered_server.app import create_app

            build = create_app
        app = build(settings)
    except Exception as exc:
        log.exception("worker %s could not build its app", os.getpid())
        _tell(failure, parent, exc)
        sys.exit(STARTUP_FAILURE)
    _report_startup_failure(app, settings.data_dir / FAILURE_FILE, parent)
    return app


def _report_startup_failure(app: FastAPI, failure: Path, parent: int) -> None:
    """Wrap the app's lifespan so that a failed start stops the whole server with its reason."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        started = False
        try:
            async with inner(a) as state:
                started = True
                yield state
        except Exception as exc:
            if not started:
                _tell(failure, parent, exc)
            raise

    app.router.lifespan_context = lifespan


def _tell(failure: Path | None, parent: int, exc: BaseException) -> None:
    """Leave the reason for the parent and ask it to stop (SIGTERM, as an operator would).

    Whether uvicorn restarts a worker that failed to start depends on its version; a worker
    failing to start fails the same way again, so the server stops instead of looping.
    """
    text = str(exc).strip().splitlines()
    reason = text[0] if isinstance(exc, StartRefused) and text else (
        f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__)
    if failure is not None:
        with contextlib.suppress(OSError):
            failure.write_text(reason + "\n")
    with contextlib.suppress(OSError):
        os.kill(parent, signal.SIGTERM)


def _exit_with(parent: int) -> None:
    """Stop this worker gracefully once its parent is gone (`kill -9`): an orphan would keep
    the port and serve outside the data dir's lock."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="levered-parent-watch", daemon=True).start()


def worker_pids(parent: int) -> list[int]:
    """The live worker processes of the server `parent` (Linux `/proc`; else none)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == parent and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
    return sorted(pids)
