"""The bare reference of the serve contract: what FastAPI + Pydantic alone cost (bench only).

`POST /api/v2/optimizations/{id}/serve` with the same body and answer shape as Levered's:
holdout by the contract's hash, an in-memory sticky lock, a draw from a fixed in-memory
allocation, the propensity, and the exposure batched into SQLite every 0.2 s by a thread (not
durable before the answer, unlike Levered). The handler is `async def`, as a FastAPI service
written for speed has it: declared with `def`, FastAPI runs it in its thread pool, and the
reference was 2-3× slower than the issue's. `bench/serve/open_model.py` runs it beside the
real server so the gap is measured on the same machine in the same run.

With `--database-url` it is the *durable* bare reference for Levered on PostgreSQL: each
serve's lock and exposure are committed to PostgreSQL before the answer, in one autocommitted
statement per group of serves (the serves that arrive while the previous group commits wait for
the next: group commit on one connection per worker), and `--workers N` runs N uvicorn worker
processes. That is the least the scale-out contract costs on this stack (FastAPI, uvicorn,
psycopg, PostgreSQL), with none of Levered's own work: no read-back of a lock another replica
stored, no outbox and no copy to a warehouse, no request ids, rate limits or body guards.
`--durable-sqlite` is the same for the embedded default: the serves of each event-loop turn
committed to a SQLite file (WAL, `synchronous=NORMAL`, as Levered's state) by the loop itself,
before their answers.

    python bench/serve/bare_app.py --port 3999 [--database-url postgresql://… --workers 2]
        [--durable-sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

VARIANTS = [{"headline": h, "cta_text": c} for h in ("Ship faster", "Build better", "Scale up")
            for c in ("Get started", "Try it free")]
ALLOCATION = [1 / len(VARIANTS)] * len(VARIANTS)


class ServeBody(BaseModel):
    anonymous_id: str | None = None
    context: dict[str, Any] = {}
    dry_run: bool = False


def choose(locks: dict[tuple[str, str], tuple[int, float]], rng: random.Random,
           optimization_id: str, anon: str) -> tuple[int, float, bool]:
    """Holdout by the contract's hash, else the user's sticky lock or a new draw."""
    digest = hashlib.sha256(f"{optimization_id}:{anon}".encode()).digest()
    if int.from_bytes(digest[:8], "big") % 10000 < 1000:
        return 1, 1.0, True
    found = locks.get((optimization_id, anon))
    if found is None:
        i = rng.choices(range(len(VARIANTS)), weights=ALLOCATION)[0]
        found = locks[(optimization_id, anon)] = (i + 1, ALLOCATION[i])
    return found[0], found[1], False


def answer(optimization_id: str, anon: str, number: int, p: float, holdout: bool,
           exposure_id: str) -> dict[str, Any]:
    """The serve contract's answer."""
    variant = VARIANTS[number - 1]
    return {"optimization_id": optimization_id, "anonymous_id": anon, "variant": variant,
            "variant_number": number,
            "variant_key": json.dumps(variant, sort_keys=True, separators=(",", ":")),
            "in_holdout": holdout, "propensity": p, "model_version": 0,
            "exposure_id": exposure_id, "meta": {"request_id": str(uuid.uuid4()),
                                                 "organization_id": None}}


def create_app(db_path: str) -> FastAPI:
    """The app, with its exposure flusher writing into `db_path`."""
    app = FastAPI()
    locks: dict[tuple[str, str], tuple[int, float]] = {}
    pending: list[tuple[Any, ...]] = []
    lock = threading.Lock()
    rng = random.Random()

    def flusher() -> None:
        db = sqlite3.connect(db_path, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS exposures (exposure_id TEXT, anonymous_id TEXT, "
                   "optimization_id TEXT, variant_number INTEGER, propensity REAL, ts REAL)")
        while True:
            time.sleep(0.2)
            with lock:
                batch = pending[:]
                pending.clear()
            if batch:
                db.executemany("INSERT INTO exposures VALUES (?, ?, ?, ?, ?, ?)", batch)
                db.commit()

    threading.Thread(target=flusher, daemon=True).start()

    @app.post("/api/v2/optimizations/{optimization_id}/serve")
    async def serve(optimization_id: str, body: ServeBody) -> dict[str, Any]:
        anon = body.anonymous_id or str(uuid.uuid4())
        number, p, holdout = choose(locks, rng, optimization_id, anon)
        exposure_id = str(uuid.uuid4())
        with lock:
            pending.append((exposure_id, anon, optimization_id, number, p, time.time()))
        return answer(optimization_id, anon, number, p, holdout, exposure_id)

    return app


SCHEMA = ("CREATE TABLE IF NOT EXISTS bare_locks (optimization_id text, anonymous_id text, "
          "variant_number int, propensity float8, PRIMARY KEY (optimization_id, anonymous_id));"
          "CREATE TABLE IF NOT EXISTS bare_exposures (exposure_id text PRIMARY KEY, "
          "anonymous_id text, optimization_id text, variant_number int, propensity float8, "
          "ts timestamptz)")
# One statement per group: the new locks (a lock stored already stays) and the exposures.
COMMIT = """WITH r AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS x(
    exposure_id text, anonymous_id text, optimization_id text, variant_number int,
    propensity float8, holdout boolean)),
  l AS (INSERT INTO bare_locks SELECT optimization_id, anonymous_id, variant_number, propensity
        FROM r WHERE NOT holdout ON CONFLICT DO NOTHING)
INSERT INTO bare_exposures SELECT exposure_id, anonymous_id, optimization_id, variant_number,
  propensity, now() FROM r"""


def settle(batch: list[tuple[Any, asyncio.Future[None]]], error: Exception | None = None
           ) -> None:
    """Answer the serves waiting on a group's commit: done, or failed with `error`."""
    for _, fut in batch:
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)


Enqueue = Callable[[dict[str, Any]], Awaitable[None]]


def durable_app(enqueue: Enqueue, **fastapi: Any) -> FastAPI:
    """The bare app answering each serve once `enqueue(row)` committed its lock and exposure
    (the row: exposure and anonymous id, optimization, variant number, propensity, holdout)."""
    app = FastAPI(**fastapi)
    locks: dict[tuple[str, str], tuple[int, float]] = {}
    rng = random.Random()

    @app.post("/api/v2/optimizations/{optimization_id}/serve")
    async def serve(optimization_id: str, body: ServeBody) -> dict[str, Any]:
        anon = body.anonymous_id or str(uuid.uuid4())
        number, p, holdout = choose(locks, rng, optimization_id, anon)
        exposure_id = str(uuid.uuid4())
        await enqueue({"exposure_id": exposure_id, "anonymous_id": anon,
                       "optimization_id": optimization_id, "variant_number": number,
                       "propensity": p, "holdout": holdout})
        return answer(optimization_id, anon, number, p, holdout, exposure_id)

    return app


def create_durable_sqlite_app(db_path: str) -> FastAPI:
    """The app with the serves of each event-loop turn committed to SQLite before their
    answers, by the loop (as Levered commits on the embedded default)."""
    db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    for statement in SCHEMA.split(";"):  # SQLite takes PostgreSQL's type names
        db.execute(statement)
    pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []

    def commit_turn() -> None:
        batch = pending[:]
        pending.clear()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR IGNORE INTO bare_locks VALUES (?, ?, ?, ?)",
                           [(r["optimization_id"], r["anonymous_id"], r["variant_number"],
                             r["propensity"]) for r, _ in batch if not r["holdout"]])
            db.executemany("INSERT INTO bare_exposures VALUES (?, ?, ?, ?, ?, ?)",
                           [(r["exposure_id"], r["anonymous_id"], r["optimization_id"],
                             r["variant_number"], r["propensity"], time.time())
                            for r, _ in batch])
            db.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - every waiting serve fails with it
            if db.in_transaction:
                db.execute("ROLLBACK")
            settle(batch, exc)
        else:
            settle(batch)

    def enqueue(row: dict[str, Any]) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        if not pending:
            loop.call_soon(commit_turn)
        fut: asyncio.Future[None] = loop.create_future()
        pending.append((row, fut))
        return fut

    return durable_app(enqueue)


def create_durable_app() -> FastAPI:
    """The app with every serve committed to PostgreSQL (`BARE_DATABASE_URL`) before its
    answer (uvicorn's factory, so that each worker process makes its own)."""
    import psycopg

    url = os.environ["BARE_DATABASE_URL"]
    conn: dict[str, psycopg.AsyncConnection[Any]] = {}
    pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
    flushing: list[asyncio.Task[None]] = []

    async def flush() -> None:
        while pending:
            batch = pending[:]
            pending.clear()
            try:
                await conn["pg"].execute(COMMIT, (json.dumps([r for r, _ in batch]),),
                                         prepare=True)
            except Exception as exc:  # noqa: BLE001 - every waiting serve fails with it
                settle(batch, exc)
            else:
                settle(batch)
        flushing.clear()

    def enqueue(row: dict[str, Any]) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending.append((row, fut))
        if not flushing:
            flushing.append(asyncio.create_task(flush()))
        return fut

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        conn["pg"] = await psycopg.AsyncConnection.connect(url, autocommit=True)
        for statement in SCHEMA.split(";"):
            await conn["pg"].execute(statement)
        yield
        await conn["pg"].close()

    return durable_app(enqueue, lifespan=lifespan)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=3999)
    p.add_argument("--database-url", help="commit every serve to this PostgreSQL (libpq URL)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (with --database-url)")
    p.add_argument("--durable-sqlite", action="store_true",
                   help="commit every serve to a SQLite file before its answer")
    args = p.parse_args()
    if args.database_url:
        os.environ["BARE_DATABASE_URL"] = args.database_url
        uvicorn.run("bare_app:create_durable_app", factory=True, host="127.0.0.1",
                    port=args.port, workers=args.workers, log_level="warning",
                    access_log=False, app_dir=os.path.dirname(os.path.abspath(__file__)))
        return
    db = tempfile.mktemp(suffix=".sqlite3")
    app = create_durable_sqlite_app(db) if args.durable_sqlite else create_app(db)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
