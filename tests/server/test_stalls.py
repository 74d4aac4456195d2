"""Stall tracing (`LEVERED_STALL_TRACE_MS`): a blocked event loop is reported with the call
that blocked it."""

from __future__ import annotations

import asyncio
import logging
import time

from levered_server.settings import settings_from_env
from levered_server.stalls import StallWatch


def _block_the_loop_for_a_while() -> None:
    time.sleep(0.3)


def test_a_blocked_loop_is_logged_with_the_call_that_blocked_it(caplog):
    async def main() -> StallWatch:
        watch = StallWatch(100)
        watch.start()
        await asyncio.sleep(0.05)
        _block_the_loop_for_a_while()
        await asyncio.sleep(0.05)
        watch.stop()
        return watch

    with caplog.at_level(logging.WARNING, logger="levered_server.stalls"):
        watch = asyncio.run(main())
    # (A loaded machine may add a stall of its own; the blocking call is reported once.)
    blocked = [r.getMessage() for r in caplog.records
               if "_block_the_loop_for_a_while" in r.getMessage()]
    assert len(blocked) == 1 and watch.stalls >= 1
    assert blocked[0].startswith("event loop stalled")
    assert "[MainThread] test_stalls.py" in blocked[0]


def test_the_setting_is_off_by_default_and_bounded():
    assert settings_from_env({}).stall_trace_ms == 0
    assert settings_from_env({"LEVERED_STALL_TRACE_MS": "15"}).stall_trace_ms == 15
    try:
        settings_from_env({"LEVERED_STALL_TRACE_MS": "-1"})
    except ValueError as exc:
        assert "LEVERED_STALL_TRACE_MS" in str(exc) or "expected" in str(exc)
    else:
        raise AssertionError("a negative threshold was accepted")
