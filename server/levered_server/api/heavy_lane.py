"""The heavy lane: CPU-heavy request work, one job at a time, on a thread of its own.

Parsing a large JSON body and validating a large ingest batch hold the GIL for tens of
milliseconds. On the event loop, that blocks every request meanwhile (`json.loads` of a
4.8 MB body is one ~10 ms call); on the shared worker threads, a dozen batches handled side by
side each made the loop wait a switch interval (5 ms) in turn, every time a serve needed the
GIL: serving p99 was ~100 ms during a flood of such batches (issue 15). In the lane they run
one after another (the others wait on the loop, unread bodies held by the body budget), on a
thread started at a lower CPU priority (`background.lower_thread_priority`), and their loops
pace themselves (`background.Pacer`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from levered_server.background import lower_thread_priority

T = TypeVar("T")
_QUEUES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary())
_THREAD: list[concurrent.futures.ThreadPoolExecutor] = []


async def run_heavy(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` in the lane, once the jobs queued before it are done."""
    loop = asyncio.get_running_loop()
    queue = _QUEUES.get(loop)
    if queue is None:  # an asyncio lock belongs to one loop
        queue = _QUEUES[loop] = asyncio.Lock()
    if not _THREAD:
        _THREAD.append(concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="levered-heavy", initializer=lower_thread_priority))
    async with queue:
        return await loop.run_in_executor(_THREAD[0], functools.partial(fn, *args, **kwargs))
