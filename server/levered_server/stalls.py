"""Stall tracing: say when the event loop stalls, and what every thread was doing.

Off by default (`LEVERED_STALL_TRACE_MS` = 0). With a threshold, a ticker task on the event
loop stamps every turn, and a watchdog thread that notices a turn overrunning the threshold
logs one line per stall with the innermost frames of every thread at that moment: the loop's
own (a call that blocks it) and the others (one holding the GIL, or a write the loop waits for).
The serve log also logs commits slower than the threshold (`services/serve_log.py`). This is
how the serve tail was taken apart (docs/benchmarks.md); the cost when on is one loop wake-up
per 2 ms and a thread polling every 3 ms.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback

log = logging.getLogger("levered_server.stalls")
TICK = 0.002
POLL = 0.003
FRAMES = 6


class StallWatch:
    """The ticker and the watchdog of one event loop."""

    def __init__(self, threshold_ms: float) -> None:
        self.threshold = threshold_ms / 1000
        self._tick = time.perf_counter()
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self.stalls = 0

    def start(self) -> None:
        """Start ticking on the running loop and watching from a thread."""
        self._task = asyncio.get_running_loop().create_task(self._ticker())
        threading.Thread(target=self._watch, name="levered-stall-watch", daemon=True).start()

    def stop(self) -> None:
        """Stop both."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()

    async def _ticker(self) -> None:
        while True:
            self._tick = time.perf_counter()
            await asyncio.sleep(TICK)

    def _watch(self) -> None:
        reported = 0.0
        while not self._stop.wait(POLL):
            tick = self._tick
            lag = time.perf_counter() - tick
            if lag > self.threshold + TICK and tick != reported:
                reported = tick
                self.stalls += 1
                log.warning("event loop stalled %.0f ms; threads: %s", lag * 1000, where())


def where() -> str:
    """The innermost frames of every other thread, one `[name] a <- b <- …` each."""
    names = {t.ident: t.name for t in threading.enumerate()}
    me = threading.get_ident()
    out = []
    for ident, frame in sys._current_frames().items():
        if ident == me:
            continue
        stack = traceback.extract_stack(frame)[-FRAMES:]
        out.append(f"[{names.get(ident, ident)}] " + " <- ".join(
            f"{os.path.basename(f.filename)}:{f.lineno}:{f.name}" for f in reversed(stack)))
    return " | ".join(out)
