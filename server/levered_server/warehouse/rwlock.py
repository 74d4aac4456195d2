"""A readers–writer lock: DuckDB allows one open configuration per file per process."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class RWLock:
    """Many readers or one writer; a waiting writer blocks new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextlib.contextmanager
    def read(self, timeout: float | None = None) -> Iterator[None]:
        with self._cond:
            if not self._cond.wait_for(
                    lambda: not self._writer and not self._waiting_writers, timeout):
                raise TimeoutError("warehouse busy")
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def write(self, timeout: float | None = None) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            try:
                if not self._cond.wait_for(lambda: not self._writer and not self._readers,
                                           timeout):
                    raise TimeoutError("warehouse busy")
            finally:
                self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
