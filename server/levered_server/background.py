"""Background work at a lower CPU priority than serving.

Training (the warehouse query, the publish) runs on threads of the serving process. On a
busy box the kernel shares the cores between them and the event loop, and every request that
waits behind a training thread's time slice shows in the serve latency tail. Linux keeps a nice
value per thread, and threads inherit it from the thread that starts them: DuckDB's worker
threads for a training query are started when its connection opens, on the niced thread.
"""

from __future__ import annotations

import os
import sys
import threading
import time

NICENESS = 10  # CFS weight 110 against 1024 at 0: ~10 % of a contended core


def lower_thread_priority(niceness: int = NICENESS) -> bool:
    """Run the calling thread (and the threads it starts) `niceness` steps lower.

    Linux only: elsewhere `setpriority` takes a process id, not a thread's. Irreversible
    without privileges, so only call it on a thread that does background work for good.
    Returns whether the priority was lowered.
    """
    if not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(current + niceness, 19))
    except OSError:  # a sandbox may forbid it: run at the same priority
        return False
    return True


PAUSE = 0.0002


class Pacer:
    """Lets the event loop in, now and then, while a worker thread runs long pure-Python work.

    A thread that wants the GIL gets it only after the holder ran a whole switch interval
    (5 ms), and a serve takes the GIL at several points on its way (the request, the commit
    hand-off, the answer): behind a thread validating a 4.8 MB ingest batch, each of those
    waited the full interval. Call the pacer once per item of such work: about every
    millisecond of work it sleeps 0.2 ms, which releases the GIL to the waiting loop at once.
    (500 events of a batch: ~10 such pauses, ~2 ms; serving p99 during a flood of such batches
    went from 52-65 to 23-26 ms, docs/benchmarks.md.) A no-op on the main thread, which runs
    the event loop.
    """

    CHECK_EVERY = 16

    def __init__(self, slice_seconds: float = 0.001) -> None:
        self.slice = slice_seconds
        self.off = threading.current_thread() is threading.main_thread()
        self._n = 0
        self._since = time.perf_counter()

    def __call__(self) -> None:
        if self.off:
            return
        self._n += 1
        if self._n % self.CHECK_EVERY:
            return
        now = time.perf_counter()
        if now - self._since >= self.slice:
            time.sleep(PAUSE)
            self._since = time.perf_counter()
