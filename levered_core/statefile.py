"""Private JSON files under ``$LEVERED_HOME``: atomic writes, mode 0600, clear errors.

A file is written to a temporary file in the same directory, flushed to disk and renamed
over the old one, so a crash never leaves half a file; it is created 0600 from the start,
so a token is never readable by others, not even for an instant.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import Any

from levered_core.errors import ConfigError

FILE_MODE = 0o600
DIR_MODE = 0o700


def read_json(path: pathlib.Path) -> Any:
    """Return the decoded content of ``path``, or ``None`` if it does not exist.

    :raises ConfigError: the file cannot be read or is not valid JSON; the message
        names the file and says what to do.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"{path} is not valid JSON (line {getattr(exc, 'lineno', '?')}, "
            f"column {getattr(exc, 'colno', '?')}): fix or delete the file"
        ) from None


def ensure_dir(directory: pathlib.Path) -> None:
    """Create ``directory`` and any missing parents, each with mode 0700."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for path in reversed(missing):
        path.mkdir(mode=DIR_MODE, exist_ok=True)


def write_json(path: pathlib.Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` as indented JSON, mode 0600."""
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def tighten_mode(path: pathlib.Path) -> bool:
    """Reset ``path`` to mode 0600 if it is wider.

    :returns: True if the mode had to be changed (the caller warns once).
    """
    mode = path.stat().st_mode & 0o777
    if mode & ~FILE_MODE:
        os.chmod(path, FILE_MODE)
        return True
    return False
