"""One server per data directory: an exclusive `flock` on `<data_dir>/server.lock`.

The serving process holds the lock for its whole life and writes its PID into the file, so a
second server on the same directory can say who holds it. The kernel drops the lock when the
process ends, however it ends (`kill -9` included): a restart after a crash just works, and
there is no stale lock file to clean up. The file itself is never deleted (a deleted lock file
lets a newcomer lock a new inode while the holder still has the old one).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from levered_server.errors import StartRefused

LOCK_FILE = "server.lock"


class DataDirInUse(StartRefused):
    """Another process holds the data directory."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        who = f"the server with PID {pid}" if pid else "another process"
        super().__init__(f"already running: data dir {data_dir} is in use by {who}")
        self.data_dir = data_dir
        self.pid = pid


class DataDirLock:
    """The held lock; `release` (or process exit) gives it up."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def release(self) -> None:
        """Forget the PID and unlock (closing the descriptor unlocks)."""
        if self.fd < 0:
            return
        try:
            os.ftruncate(self.fd, 0)
        finally:
            os.close(self.fd)
            self.fd = -1


def _open(data_dir: Path) -> tuple[int, Path]:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    # O_CLOEXEC: the fit workers and other children must not inherit (and so extend) the lock.
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644), path


def _pid_in(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def acquire(data_dir: Path, *, wait: float = 0.5) -> DataDirLock:
    """Lock `data_dir` for this process and write its PID.

    :param wait: how long to retry; covers a `holder()` probe that holds it for a moment.
    :raises DataDirInUse: another process holds it.
    """
    fd, path = _open(Path(data_dir))
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                pid = _pid_in(fd)
                os.close(fd)
                raise DataDirInUse(Path(data_dir), pid) from None
            time.sleep(0.05)
    # Truncate only once locked: before, it would erase the holder's PID.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return DataDirLock(fd, path)


def check_free(data_dir: Path) -> None:
    """Raise :class:`DataDirInUse` when a process holds `data_dir` (a probe: keeps nothing).

    It takes a shared lock for a moment: two probes do not disturb each other, and a server
    starting meanwhile retries (`acquire`'s `wait`).
    """
    if not (Path(data_dir) / LOCK_FILE).exists():
        return
    fd, _path = _open(Path(data_dir))
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise DataDirInUse(Path(data_dir), _pid_in(fd)) from None
    finally:
        os.close(fd)
