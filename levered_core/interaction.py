"""Talking to a person on the terminal: confirmations and progress, never in pipelines."""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

from levered_core.errors import LeveredError, UsageError

SPINNER = "|/-\\"


class Cancelled(LeveredError):
    """The person answered no to a confirmation; nothing was changed."""


def confirm(question: str, assume_yes: bool, stdin: TextIO | None = None, stderr: TextIO | None = None) -> None:
    """Ask ``question [y/N]`` on a terminal; return only if the answer is yes.

    :param assume_yes: ``-y`` was given: do not ask.
    :raises UsageError: stdin is not a terminal and ``-y`` was not given (exit 2).
    :raises Cancelled: the answer was not yes.
    """
    if assume_yes:
        return
    stdin = stdin or sys.stdin
    stderr = stderr or sys.stderr
    if not stdin.isatty():
        raise UsageError(f"{question.rstrip('?')}: refusing without confirmation (stdin is not a terminal); pass -y")
    stderr.write(f"{question} [y/N] ")
    stderr.flush()
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise Cancelled("cancelled; nothing was changed")


@contextlib.contextmanager
def progress(message: str, stream: TextIO | None = None) -> Iterator[None]:
    """Show a spinner with ``message`` on stderr while the block runs, only on a terminal."""
    stream = stream or sys.stderr
    if not stream.isatty():
        yield
        return
    done = threading.Event()

    def spin() -> None:
        for frame in itertools.cycle(SPINNER):
            stream.write(f"\r{frame} {message}")
            stream.flush()
            if done.wait(0.1):
                break
        stream.write("\r" + " " * (len(message) + 2) + "\r")
        stream.flush()

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
