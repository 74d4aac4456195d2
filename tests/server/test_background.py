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


def test_a_pacer_pauses_worker_threads_about_every_slice_and_never_the_loop(monkeypatch):
    import time

    from levered_server import background

    pauses: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(background.time, "sleep", lambda s: (pauses.append(s), real_sleep(s)))

    def busy(pace: background.Pacer, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pace()

    worker: dict[str, int] = {}

    def on_worker() -> None:
        busy(background.Pacer(slice_seconds=0.001), 0.05)
        worker["pauses"] = len(pauses)

    t = threading.Thread(target=on_worker)
    t.start()
    t.join()
    # ~50 slices of work in 50 ms, each followed by a pause (fewer on a busy machine, where a
    # pause may sleep longer than asked or the thread wait for a core)
    assert 5 <= worker["pauses"] <= 60 and set(pauses) == {background.PAUSE}
    pauses.clear()
    busy(background.Pacer(slice_seconds=0.001), 0.02)  # the main thread runs the event loop
    assert pauses == []


def test_the_heavy_lane_runs_one_job_at_a_time_on_a_lowered_thread():
    import asyncio
    import time

    from levered_server.api.heavy_lane import run_heavy

    running, most, seen = [0], [0], set()

    def job(n: int) -> int:
        running[0] += 1
        most[0] = max(most[0], running[0])
        seen.add((threading.get_native_id(), _priority()))
        time.sleep(0.02)
        running[0] -= 1
        return n * 2

    async def main() -> list[int]:
        return list(await asyncio.gather(*(run_heavy(job, n) for n in range(5))))

    assert asyncio.run(main()) == [0, 2, 4, 6, 8]
    assert most[0] == 1
    [(thread, priority)] = seen  # one thread for every job
    assert thread != threading.get_native_id() and priority > _priority()


def test_duckdb_starts_its_worker_threads_lowered_whoever_opens_the_file(tmp_path):
    from levered_server.warehouse.duckdb_files import database_of, discard

    def tasks() -> set[str]:
        return set(os.listdir("/proc/self/task"))

    before = tasks()
    database = database_of(tmp_path / "org.duckdb", {"threads": 3})  # from this thread, at 0
    try:
        started = []
        for task in tasks() - before:
            try:
                started.append(os.getpriority(os.PRIO_PROCESS, int(task)))
            except ProcessLookupError:  # the opener thread, gone
                continue
        assert len(started) >= 2  # DuckDB's workers (threads - 1)
        assert min(started) > _priority()
    finally:
        discard(str(tmp_path / "org.duckdb"), database)
