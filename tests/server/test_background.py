"""Background threads run at a lower CPU priority than serving (Linux keeps it per thread)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from levered_server.background import NICENESS, lower_thread_priority

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="per-thread nice values are a Linux feature")


def _priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_only_the_calling_thread_and_its_children_are_lowered():
    main_before = _priority()
    seen: dict[str, int] = {}

    def child() -> None:
        seen["child"] = _priority()

    def background() -> None:
        seen["before"] = _priority()
        seen["lowered"] = lower_thread_priority()
        seen["after"] = _priority()
        t = threading.Thread(target=child)
        t.start()
        t.join()

    t = threading.Thread(target=background)
    t.start()
    t.join()
    assert seen["lowered"] is True
    assert seen["after"] == min(seen["before"] + NICENESS, 19)
    assert seen["child"] == seen["after"]  # DuckDB's workers start on the training thread
    assert _priority() == main_before


def test_the_trainer_thread_runs_lowered(server):
    trainer = server.runtime.trainer._thread
    assert trainer is not None and trainer.is_alive()
    assert os.getpriority(os.PRIO_PROCESS, trainer.native_id) > os.getpriority(
        os.PRIO_PROCESS, threading.get_native_id())
