"""Commits the serves of one event-loop turn together (`LoopGroup`), on the serve log.

The request side of `services/serve_log.py`: a serve awaits `LoopGroup.commit`, and the
serves that reach it in one turn share one commit (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import time

from levered_server.services.serve_log import ServeLog, ServeWrite


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

    # uvloop rounds timers to whole milliseconds, and down to "the next turn" below 1 ms: a
    # busy lock is retried each turn there (holders keep it well under a millisecond).
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
