"""What a serve writes, committed before it is acknowledged: its sticky lock and exposure.

Every serve that assigns a user for the first time writes a sticky lock, and every recorded
serve an exposure. The serves of one event-loop turn are committed together in one
state-store transaction (`LoopGroup`): the locks and the exposures, the latter into the
exposure outbox that `services/outbox.py` moves to the warehouse behind. On SQLite the event
loop commits them itself (`ServeLog.commit_now`, a fraction of a millisecond of C calls); on
PostgreSQL it commits them on an asyncio connection (`ServeLog.commit_async`), the next batch
gathering while one commit is in flight. When SQLite's write lock stays busy, and in
write-behind mode, a single writer thread commits whatever has queued since its last commit,
then wakes the requests it holds. So a 2xx means the lock and the exposure are on disk,
`kill -9` loses nothing acknowledged, and a serve waits for one commit, never for the
warehouse.

The lock is inserted with `ON CONFLICT DO NOTHING` and read back: when another replica (or a
concurrent request here) locked the user first, the stored lock wins, and the exposure and the
response carry the stored variant and its propensity. Replicas on the same model version
already agree on a user's first variant (the draw is a function of optimization, user and
version, `serving.assignment_rng`), so this only decides between versions.

`write_behind_seconds > 0` restores the old trade: answer at once and commit every that many
seconds; a crash then loses what was answered in the last interval (the documented bound).
"""

from __future__ import annotations

import asyncio
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
        failure is every write's error."""
        if self._async is None:
            from levered_server.store.pg_async_commit import AsyncCommitter

            self._async = AsyncCommitter(self.locks)
        finals, exposures = _finals(batch)
        started = time.perf_counter()
        try:
            await self._async.commit([w.lock for w in batch if w.lock is not None], exposures)
        except Exception as exc:  # noqa: BLE001 - reported to every waiting request
            self._fail(batch, exc, "serves")
            return
        self._committed(batch, finals, started)

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


class LoopGroup:
    """Commits the serves that reach their commit in one event-loop turn together.

    On SQLite the loop commits them itself (`ServeLog.commit_now`). When another connection
    holds the write lock (the outbox mover's delete, an API write), the batch waits on the
    loop, retried every `RETRY` seconds with later turns' serves joining it, and goes to the
    writer thread, which waits for the lock off the loop, only after `RETRY_FOR`: handed over
    at once, its commit needed the GIL back from the busy loop after every SQLite call.
    On PostgreSQL the loop commits on an asyncio connection (`ServeLog.commit_async`), one
    batch at a time, the turns that come meanwhile gathering into the next. In write-behind
    mode batches go to the writer thread: one wake-up and one call back into the loop per
    turn instead of one each per serve (those hand-offs were a tenth of the event loop's time
    at 500 serves/s, docs/benchmarks.md).
    """

    RETRY = 0.0005
    RETRY_FOR = 0.05

    def __init__(self, serve_log: ServeLog) -> None:
        self.serve_log = serve_log
        self._batch: tuple[list[ServeWrite], asyncio.Future[None]] | None = None
        # Writes held on the loop while the write lock is busy, and the turns waiting on them.
        self._held: tuple[list[ServeWrite], list[asyncio.Future[None]], float] | None = None
        # PostgreSQL: writes gathered while a commit is in flight, and the turns waiting.
        self._next: tuple[list[ServeWrite], list[asyncio.Future[None]]] | None = None
        self._draining = False

    async def commit(self, write: ServeWrite) -> tuple[int, float]:
        """Queue `write` and wait until it is committed; return the (variant, propensity)
        that holds. Raises the store's error when the commit failed."""
        batch = self._batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._batch = ([], loop.create_future())
            loop.call_soon(self._hand_off, batch)
        batch[0].append(write)
        await asyncio.shield(batch[1])
        return write.future.result()

    def _hand_off(self, batch: tuple[list[ServeWrite], asyncio.Future[None]]) -> None:
        self._batch = None
        writes, done = batch
        if self._held is not None:  # behind writes already waiting for the lock, in order
            self._held[0].extend(writes)
            self._held[1].append(done)
        elif self.serve_log.commit_now(writes):
            done.set_result(None)
        elif self.serve_log.commits_inline:
            self._held = (list(writes), [done], time.monotonic())
            done.get_loop().call_later(self.RETRY, self._retry)
        elif self.serve_log.commits_async:
            self._gather(writes, done)
        else:
            self._to_writer(writes, [done])

    def _gather(self, writes: list[ServeWrite], done: asyncio.Future[None]) -> None:
        if self._next is None:
            self._next = ([], [])
        self._next[0].extend(writes)
        self._next[1].append(done)
        if not self._draining:
            self._draining = True
            done.get_loop().create_task(self._drain())

    async def _drain(self) -> None:
        """Commit what gathered, one batch at a time, until nothing is left."""
        writes: list[ServeWrite] = []
        dones: list[asyncio.Future[None]] = []
        try:
            while self._next is not None:
                (writes, dones), self._next = self._next, None
                await self.serve_log.commit_async(writes)
                _settle(dones)
                writes, dones = [], []
        finally:
            self._draining = False
            # Cancelled at shutdown: what is in flight or gathered is not acknowledged.
            if self._next is not None:
                writes, dones = writes + self._next[0], dones + self._next[1]
                self._next = None
            for w in writes:
                if not w.future.done():
                    w.future.set_exception(RuntimeError("the server is stopping"))
            _settle(dones)

    def _retry(self) -> None:
        if self._held is None:
            return
        writes, dones, since = self._held
        if self.serve_log.commit_now(writes):
            self._held = None
            _settle(dones)
        elif time.monotonic() - since < self.RETRY_FOR:
            dones[0].get_loop().call_later(self.RETRY, self._retry)
        else:
            self._held = None
            self._to_writer(writes, dones)

    def _to_writer(self, writes: list[ServeWrite], dones: list[asyncio.Future[None]]) -> None:
        loop = dones[0].get_loop()

        def committed(_future: object) -> None:
            # The writer resolves a batch's futures in order: the last one done means all.
            loop.call_soon_threadsafe(_settle, dones)

        try:
            self.serve_log.submit_all(writes)
        except Exception as exc:  # noqa: BLE001 - every waiting serve gets the error
            for w in writes:
                if not w.future.done():
                    w.future.set_exception(exc)
        writes[-1].future.add_done_callback(committed)


def _settle(dones: list[asyncio.Future[None]]) -> None:
    for done in dones:
        if not done.done():
            done.set_result(None)
