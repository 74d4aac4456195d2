"""The cached plugin manifest: what groups and commands are installed, without importing them.

``levered --help``, ``levered <group> --help`` and shell completion read this file instead
of importing every plugin. It is rebuilt (by :func:`levered_core.plugins.discover`) when its
fingerprint changes: another interpreter or core version, a different
``LEVERED_LOAD_PLUGINS``, or any change to the installed distributions (the list of their
``entry_points.txt`` files and their modification times). A manifest
that recorded a problem is never reused, so a fixed plugin is picked up at once.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pathlib
import sys
from typing import Any

from levered_core import __version__


def fingerprint() -> str:
    """Return a digest of everything that decides which plugins are installed."""
    digest = hashlib.sha256()
    from levered_core.config import site_config_path

    site = site_config_path()
    try:
        site_stamp = f"{site}:{os.stat(site).st_mtime_ns}"
    except OSError:
        site_stamp = f"{site}:-"
    for part in (sys.executable, sys.prefix, __version__, os.environ.get("LEVERED_LOAD_PLUGINS", ""), site_stamp):
        digest.update(part.encode() + b"\0")
    for entry in sys.path:
        # The set of metadata files names what is installed; their mtimes say it changed.
        for pattern in ("*.dist-info", "*.egg-info"):
            for path in sorted(glob.glob(os.path.join(glob.escape(entry), pattern, "entry_points.txt"))):
                try:
                    mtime = os.stat(path).st_mtime_ns
                except OSError:
                    mtime = -1
                digest.update(f"{path}\0{mtime}\0".encode())
    return digest.hexdigest()


def cache_path() -> pathlib.Path:
    """Return this interpreter's manifest file under ``$LEVERED_HOME/cache``."""
    from levered_core import config

    key = hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    return config.home() / "cache" / f"plugins-{key}.json"


def load(rebuild: bool = False) -> dict[str, Any]:
    """Return the manifest, from the cache when it is still valid.

    :param rebuild: ignore the cache (``levered plugins list`` always looks afresh).
    """
    path = cache_path()
    current = fingerprint()
    if not rebuild:
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if cached.get("fingerprint") == current and not cached.get("problems"):
                return dict(cached)
        except (OSError, ValueError, AttributeError):
            pass
    from levered_core import plugins

    data = plugins.discover()
    data["fingerprint"] = current
    try:
        from levered_core import statefile

        statefile.write_json(path, data)
    except OSError:
        pass  # A read-only home only costs speed.
    return data


def report_problems(data: dict[str, Any], debug: bool, stream: Any = None) -> None:
    """Print one warning line per plugin problem (the traceback too with ``--debug``)."""
    stream = stream or sys.stderr
    for problem in data.get("problems", []):
        hint = "" if debug or not problem.get("traceback") else " (run with --debug for the traceback)"
        stream.write(f"levered: warning: {problem['message']}{hint}\n")
        if debug and problem.get("traceback"):
            stream.write(problem["traceback"])
