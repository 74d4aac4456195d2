"""The bare reference of the serve contract: what FastAPI + Pydantic alone cost (bench only).

`POST /api/v2/optimizations/{id}/serve` with the same body and answer shape as Levered's:
holdout by the contract's hash, an in-memory sticky lock, a draw from a fixed in-memory
allocation, the propensity, and the exposure batched into SQLite every 0.2 s by a thread (not
durable before the answer, unlike Levered). The handler is `async def`, as a FastAPI service
written for speed has it: declared with `def`, FastAPI runs it in its thread pool, and the
reference was 2-3× slower than the issue's. `bench/serve/open_model.py` runs it beside the
real server so the gap is measured on the same machine in the same run.

    python bench/serve/bare_app.py --port 3999
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sqlite3
import tempfile
import threading
import time
import uuid
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
        digest = hashlib.sha256(f"{optimization_id}:{anon}".encode()).digest()
        holdout = int.from_bytes(digest[:8], "big") % 10000 < 1000
        if holdout:
            number, p = 1, 1.0
        else:
            found = locks.get((optimization_id, anon))
            if found is None:
                i = rng.choices(range(len(VARIANTS)), weights=ALLOCATION)[0]
                found = locks[(optimization_id, anon)] = (i + 1, ALLOCATION[i])
            number, p = found
        variant = VARIANTS[number - 1]
        exposure_id = str(uuid.uuid4())
        with lock:
            pending.append((exposure_id, anon, optimization_id, number, p, time.time()))
        return {"optimization_id": optimization_id, "anonymous_id": anon, "variant": variant,
                "variant_number": number,
                "variant_key": json.dumps(variant, sort_keys=True, separators=(",", ":")),
                "in_holdout": holdout, "propensity": p, "model_version": 0,
                "exposure_id": exposure_id, "meta": {"request_id": str(uuid.uuid4()),
                                                     "organization_id": None}}

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=3999)
    args = p.parse_args()
    db = tempfile.mktemp(suffix=".sqlite3")
    uvicorn.run(create_app(db), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
