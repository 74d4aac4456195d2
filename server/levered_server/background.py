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
