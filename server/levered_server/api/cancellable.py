"""Run a blocking warehouse call in a thread, and stop it when the client goes away.

A user's query (warehouse query, table and metric previews) would otherwise run to its time
limit after the CLI was interrupted or timed out: the call gets a
:class:`~levered_server.warehouse.driver_api.Cancel`, cancelled as soon as the ASGI server
reports the disconnect (or this request's task is itself cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from levered_server.warehouse.driver_api import Cancel

T = TypeVar("T")


async def _disconnected(request: Request) -> None:
    # The body has been read (or there is none): the next message is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def run_cancellable(request: Request, call: Callable[[Cancel], T]) -> T:
    """`call(cancel)` in the thread pool; `cancel` is cancelled if the client disconnects
    before it returns (the call then fails fast with the driver's cancelled failure)."""
    cancel = Cancel()
    work = asyncio.ensure_future(run_in_threadpool(call, cancel))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not work.done():
            cancel.cancel()
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await gone
    return await work
