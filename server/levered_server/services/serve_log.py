"""What a serve writes, committed before it is acknowledged: its sticky lock and exposure.

Every serve that assigns a user for the first time writes a sticky lock, and every recorded
serve an exposure. The serves of one event-loop turn are committed together
(`loop_group.LoopGroup`): the locks and the exposures, the latter into the exposure outbox
that `services/outbox.py` moves to the warehouse behind. On SQLite the event loop commits
them itself (`ServeLog.commit_now`, a fraction of a millisecond of C calls); on PostgreSQL it
commits them on an asyncio connection (`ServeLog.commit_async`), the next batch gathering
while one commit is in flight. When SQLite's write lock stays busy, and in write-behind mode,
a single writer thread commits whatever has queued since its last commit, then wakes the
requests it holds. So a 2xx means the lock and the exposure are on disk, `kill -9` loses
nothing acknowledged, and a serve waits for one commit, never for the warehouse.

The lock is inserted with `ON CONFLICT DO NOTHING` and read back (on PostgreSQL's loop by the
same statement): when another replica (or a concurrent request here) locked the user first,
the stored lock wins, and the exposure and the response carry the stored variant and its
propensity. Replicas on the same model version already agree on a user's first variant (the
draw is a function of optimization, user and version, `serving.assignment_rng`), so this only
decides between versions.

`write_behind_seconds > 0` restores the old trade: answer at once and commit every that many
seconds; a crash then loses what was answered in the last interval (the documented bound).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from levered_server.services import outbox
from levered_server.store.locks import Key, LockStore, WriteBusy

log = logging.getLogger("levered_server.exposures")
MAX_PENDING = 100_000  # write-behind only: beyond this a failing warehouse drops exposures


@dataclasses.dataclass
class ServeWrite:
    """One serve's writes: a new lock (or None), and how to build its exposure row from the
    lock that holds (or None when nothing is recorded)."""

    organization_id: str
    key: Key
    lock: dict[str, Any] | None
    assigned: tuple[int, float]
    exposure: Callable[[int, float], dict[str, Any]] | None
    future: concurrent.futures.Future[tuple[int, float]] = dataclasses.field(
        default_factory=concurrent.futures.Future)


class ServeLog:
    """The group-commit writer of serve locks and exposures."""

    def __init__(self, locks: LockStore, mover: outbox.OutboxMover | None = None, *,
                 write_behind_seconds: float = 0.0) -> None:
        self.locks = locks
        self.outbox = mover
        self.write_behind = write_behind_seconds
        self._queue: list[ServeWrite] = []
        self._pending: dict[Key, ServeWrite] = {}
        self._cond = threading.Condition()
        self._commit_lock = threading.Lock()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.committed = 0
        self._async: Any = None  # PostgreSQL: the event loop's committer (`commit_async`)
        self.slow_seconds = 0.0  # log slower commits (`stalls.py`); 0: off

    # -- the serve path ------------------------------------------------------------------

    def held(self, optimization_id: str, anonymous_id: str) -> tuple[int, float] | None:
        """The user's lock: queued here first, then the state store."""
        w = self._pending.get((optimization_id, anonymous_id))
        if w is not None:
            return w.assigned
        return self.locks.get(optimization_id, anonymous_id)

    def submit(self, write: ServeWrite) -> concurrent.futures.Future[tuple[int, float]]:
        """Queue a serve's writes; the future resolves to the (variant, propensity) that holds
        once they are committed (at once in write-behind mode)."""
        self.submit_all([write])
        return write.future

    def submit_all(self, writes: list[ServeWrite]) -> None:
        """Queue several serves' writes at once: they are committed in the same transaction,
        and their futures resolved in order (see `submit`)."""
        with self._cond:
            for write in writes:
                if self.write_behind and len(self._queue) >= MAX_PENDING:
                    log.error("exposure queue full; dropping exposure for %s", write.key)
                    write.future.set_result(write.assigned)
                    continue
                self._queue.append(write)
                if write.lock is not None:
                    self._pending.setdefault(write.key, write)
                if self.write_behind:
                    write.future.set_result(write.assigned)
            if not self.write_behind:
                self._cond.notify()

    # -- committing ----------------------------------------------------------------------

    def flush(self, org_id: str | None = None) -> None:
        """Commit everything queued so far, then move the organization's (or every) committed
        exposure into its warehouse: readers call this so what was answered is visible."""
        with self._cond:
            batch, self._queue = self._queue, []
        self._commit(batch)
        if self.outbox is not None:
            self.outbox.flush(org_id)

    def _commit(self, batch: list[ServeWrite]) -> None:
        with self._commit_lock:
            if batch:
                self._commit_batch(batch)

    @property
    def commits_inline(self) -> bool:
        """Whether the event loop commits its serves itself (`commit_now`): on SQLite,
        acknowledging only what is committed."""
        return not self.locks.postgres and not self.write_behind

    def commit_now(self, batch: list[ServeWrite]) -> bool:
        """Commit the batch on this thread (the event loop) if SQLite's write lock is free at
        once; False, with nothing done, when it is not (`LoopGroup` then retries).

        On SQLite a commit is ~0.1 ms of C calls with the GIL released; handed to the writer
        thread, it needed the GIL back after every call, from an event loop busy with other
        requests, up to the 5 ms switch interval each time, and that wait was most of the
        serve tail at 1,000 serves/s (docs/benchmarks.md). So the loop commits itself and
        never waits for another writer (the outbox mover's delete, an API write).
        """
        if not self.commits_inline or not batch or not self._commit_lock.acquire(blocking=False):
            return False
        try:
            return self._commit_batch(batch, wait=False)
        finally:
            self._commit_lock.release()

    @property
    def commits_async(self) -> bool:
        """Whether the event loop commits its serves on an asyncio connection
        (`commit_async`): on PostgreSQL, acknowledging only what is committed."""
        return self.locks.postgres and not self.write_behind

    async def commit_async(self, batch: list[ServeWrite]) -> None:
        """Commit the batch from the event loop (PostgreSQL) and resolve its futures; a
        failure is the error of every write it left uncommitted."""
        if self._async is None:
            from levered_server.store.pg_async_commit import AsyncCommitter

            self._async = AsyncCommitter(self.locks)
        finals: dict[int, tuple[int, float]] = {}

        def lost(held: dict[Key, tuple[int, float]]) -> list[tuple[str, str]]:
            # The serves whose user was locked first elsewhere: their exposures as stored.
            lost_finals, exposures = _finals([w for w in batch
                                              if w.lock is not None and w.key in held])
            rows: list[tuple[str, str]] = exposures(held)
            finals.update(lost_finals)
            return rows

        started = time.perf_counter()
        try:
            failed = await self._async.commit([w.lock for w in batch if w.lock is not None],
                                              _as_assigned(batch), lost)
        except Exception as exc:  # noqa: BLE001 - reported to every waiting request
            self._fail(batch, exc, "serves")
            return
        if failed is None:
            self._committed(batch, finals, started)
            return
        keys, error = failed  # the first statement committed the others
        self._committed([w for w in batch if w.lock is None or w.key not in keys], finals,
                        started)
        self._fail([w for w in batch if w.lock is not None and w.key in keys], error, "serves")

    def _commit_batch(self, batch: list[ServeWrite], wait: bool = True) -> bool:
        """Commit one batch (under `_commit_lock`) and resolve its futures; False when `wait`
        is false and the write lock was busy (nothing done)."""
        finals, exposures = _finals(batch)
        started = time.perf_counter()
        try:
            self.locks.commit([w.lock for w in batch if w.lock is not None], exposures,
                              wait=wait)
        except WriteBusy:
            return False
        except Exception as exc:  # noqa: BLE001 - reported to every waiting request
            self._fail(batch, exc, "serves")
            return True
        self._committed(batch, finals, started)
        return True

    def _committed(self, batch: list[ServeWrite], finals: dict[int, tuple[int, float]],
                   started: float) -> None:
        with self._cond:
            for w in batch:
                if w.lock is not None and self._pending.get(w.key) is w:
                    del self._pending[w.key]
        self.commits += 1
        self.committed += len(batch)
        took = time.perf_counter() - started
        if 0 < self.slow_seconds < took:
            log.warning("serve commit of %d took %.0f ms", len(batch), took * 1000)
        for w in batch:
            if not w.future.done():
                w.future.set_result(finals.get(id(w), w.assigned))

    def _fail(self, batch: list[ServeWrite], exc: Exception, what: str) -> None:
        if self.write_behind:
            # Acknowledged already: keep the rows and retry on the next commit.
            log.warning("writing %d %s failed (%s); will retry", len(batch), what, exc)
            with self._cond:
                self._queue[:0] = batch
            return
        log.warning("writing %d %s failed: %s", len(batch), what, exc)
        with self._cond:
            for w in batch:
                if w.lock is not None and self._pending.get(w.key) is w:
                    del self._pending[w.key]
        for w in batch:
            if not w.future.done():
                w.future.set_exception(exc)

    # -- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="levered-serve-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait(self.write_behind or None)
                if self._stop and not self._queue:
                    return
                batch, self._queue = self._queue, []
            self._commit(batch)
            if self.write_behind:
                with self._cond:
                    if not self._stop:
                        self._cond.wait(self.write_behind)

    def stop(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        deadline = time.monotonic() + 10
        while self._queue and time.monotonic() < deadline:
            self.flush()
        if self._async is not None:
            self._async.close()


def _finals(batch: list[ServeWrite]) -> tuple[dict[int, tuple[int, float]], Any]:
    """Where a batch's final (variant, propensity) per write will be, and the outbox builder
    that fills it from the locks as stored."""
    finals: dict[int, tuple[int, float]] = {}

    def exposures(held: dict[Key, tuple[int, float]]) -> list[tuple[str, str]]:
        out = []
        for w in batch:
            final = held.get(w.key, w.assigned) if w.lock is not None else w.assigned
            finals[id(w)] = final
            if w.exposure is not None:
                out.append((w.organization_id, outbox.encode(w.exposure(*final))))
        return out

    return finals, exposures


def _as_assigned(batch: list[ServeWrite]) -> list[tuple[str, str, Key | None]]:
    """The batch's outbox rows built from the locks as assigned, each with the key whose new
    lock it depends on (None for a serve that inserts no lock)."""
    return [(w.organization_id, outbox.encode(w.exposure(*w.assigned)),
             w.key if w.lock is not None else None) for w in batch if w.exposure is not None]
