"""The fit worker processes: fits and policy rebuilds (`services/versions.py`) off the server.

`FitPool` (in the server) starts each worker as ``python -m levered_server.services.fit_worker``
(`main`, never run by hand) and keeps it for the next job. A worker reads
jobs from stdin and answers on the original stdout, as length-prefixed pickles: a job is
``(function, kwargs)`` (a module-level function of this package), an answer ``(True, result)`` or
``(False, exception)``. It exits when stdin closes (the server stopped or died). Anything the
job prints goes to stderr (the server's log), never into the answers.

A plain subprocess rather than `multiprocessing`: spawn-mode multiprocessing re-imports the
embedding program's ``__main__`` in the worker, which runs an unguarded script a second time.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any, TypeVar

HEADER = struct.Struct("<Q")
NICENESS = 10  # training is background work: the kernel favours the serving process
T = TypeVar("T")


def read_message(stream: IO[bytes]) -> Any:
    """One length-prefixed pickle; EOFError at the end of the stream."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        raise EOFError
    (size,) = HEADER.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        raise EOFError
    return pickle.loads(body)


def write_message(stream: IO[bytes], value: Any) -> None:
    """Send one length-prefixed pickle."""
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()


def _answer(fn: Any, kwargs: dict[str, Any]) -> tuple[bool, Any]:
    try:
        return True, fn(**kwargs)
    except Exception as exc:  # noqa: BLE001 - sent back and raised in the server
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - not picklable: keep its type name and message
            return False, RuntimeError(f"{type(exc).__name__}: {exc}")
        return False, exc


class WorkerDied(RuntimeError):
    """The fit worker process exited before answering (killed, out of memory)."""


class _Worker:
    """One `fit_worker` process and its pipes."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # The worker imports what this process can (an editable install, a bench's sys.path).
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "levered_server.services.fit_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True)

    def call(self, fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            write_message(self.proc.stdin, (fn, kwargs))
            ok, value = read_message(self.proc.stdout)
        except (EOFError, OSError) as exc:
            self.stop()
            raise WorkerDied("the fit worker process exited") from exc
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def stop(self, wait: float = 5.0) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class FitPool:
    """Worker processes (started on first use or by `prestart`, then kept) for fits and policy rebuilds.

    A fit holds the GIL for much of its ~1 s (numpy on small matrices, building the state
    JSON); in the serving process that stalls every request behind it. Here it runs in another
    process (`fit_worker`) at a lower CPU priority; callers block on the result, which only a
    training or rebuilding thread does. ``inline=True`` runs in the calling thread instead.
    """

    def __init__(self, workers: int = 2, inline: bool = False) -> None:
        self.workers = workers
        self.inline = inline
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._slots = threading.Semaphore(workers)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def started(self) -> int:
        """Worker processes alive."""
        return len(self._all)

    def run(self, fn: Callable[..., T], **kwargs: Any) -> T:
        """``fn(**kwargs)`` in a worker process; its exception is raised here."""
        if self.inline:
            return fn(**kwargs)
        with self._slots:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the fit pool is closed")
                worker = self._idle.pop() if self._idle else None
                if worker is not None and worker.proc.poll() is not None:
                    self._all.discard(worker)  # died while idle: start another
                    worker = None
            if worker is None:
                worker = _Worker()
                with self._lock:
                    self._all.add(worker)
            try:
                result = worker.call(fn, kwargs)
            except WorkerDied:
                with self._lock:
                    self._all.discard(worker)
                raise
            except BaseException:
                self._release(worker)
                raise
            self._release(worker)
            return result

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
            self._all.discard(worker)
        worker.stop()

    def prestart(self) -> None:
        """Start a worker and import the engine in it now, so the first training does not
        wait ~0.3–0.5 s for both (call it from a background thread)."""
        self.run(preload)

    def close(self) -> None:
        """Stop the idle workers now, busy ones when their job ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            for worker in idle:
                self._all.discard(worker)
        for worker in idle:
            worker.stop()


def preload() -> None:
    """A job that imports what fits and rebuilds use (`FitPool.prestart`)."""
    import levered_server.services.versions  # noqa: F401 - the import is the point


def main() -> None:
    """Serve jobs until stdin closes."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr
    try:
        os.nice(NICENESS)
    except OSError:  # pragma: no cover - not permitted: same priority as the server
        pass
    jobs = sys.stdin.buffer
    while True:
        try:
            fn, kwargs = read_message(jobs)
        except EOFError:
            return
        write_message(answers, _answer(fn, kwargs))


if __name__ == "__main__":
    main()
