"""``levered --version``: the versions of the core and of every installed plugin, for bug reports.

Read from the installed distributions' metadata rather than the plugin manifest, so that a plugin
that failed to load, that the site policy disabled, or that was built for a plugin API this core
cannot load is still listed. The metadata directories are found as
:func:`levered_core.manifest.fingerprint` finds them (``*.dist-info`` and ``*.egg-info`` on
``sys.path``) and read as plain text, with nothing imported but ``os`` and ``sys``:
``importlib.metadata`` (with ``email``), ``glob`` or ``dataclasses`` (through ``plugin_api``) would
each cost more than ``--version`` took before it listed plugins. Only ``--version`` imports this module.
"""

from __future__ import annotations

import os
import sys

from levered_core import __version__

#: The core's distribution (as in :mod:`levered_core.plugins`, which is too heavy to import here).
CORE = "levered"
#: Entry-point sections that make a plugin, for any plugin API version (``plugin_api``'s namespaces
#: and hook namespaces, then ``v1``, ``v2`` …), so that a plugin this core cannot load is listed too.
PLUGIN_SECTIONS = ("[levered.groups.", "[levered.commands.")
#: The ``levered`` script: what a set of plugins (levered-cli) declares instead.
SCRIPT_TARGET = "levered_core.main:main"


def _normalize(name: str) -> str:
    for separator in "_.":
        name = name.replace(separator, "-")
    return name.lower()


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _metadata_dirs() -> list[str]:
    found = []
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        found += [os.path.join(entry, name) for name in names if name.endswith((".dist-info", ".egg-info"))]
    return found


def extends_levered(entry_points: str) -> bool:
    """Whether an ``entry_points.txt`` is a plugin's (commands or command hooks) or, like
    levered-cli's, a set of plugins' (the ``levered`` script)."""
    return SCRIPT_TARGET in entry_points or any(
        line.startswith(PLUGIN_SECTIONS) for line in entry_points.splitlines())


def _name_and_version(metadata: str) -> tuple[str, str]:
    headers: dict[str, str] = {}
    for line in metadata.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        if key in ("Name", "Version"):
            headers.setdefault(key, value.strip())
    return headers.get("Name", ""), headers.get("Version", "?")


def plugin_distributions() -> list[tuple[str, str]]:
    """Return ``(name, version)`` of each installed distribution that extends levered, the core left out.

    :returns: sorted by name; a distribution found twice on ``sys.path`` counts once (the first).
    """
    found: dict[str, tuple[str, str]] = {}
    for directory in _metadata_dirs():
        if not extends_levered(_read(os.path.join(directory, "entry_points.txt"))):
            continue
        metadata = _read(os.path.join(directory, "METADATA")) or _read(os.path.join(directory, "PKG-INFO"))
        name, version = _name_and_version(metadata)
        if name and _normalize(name) != CORE:
            found.setdefault(_normalize(name), (name, version))
    return [found[key] for key in sorted(found)]


def report() -> str:
    """Render ``levered --version``: the core first, one line per plugin, then the Python running them."""
    lines = [f"levered {__version__}", *(f"{name} {version}" for name, version in plugin_distributions())]
    lines.append(f"Python {sys.version.split()[0]} ({sys.executable})")
    return "\n".join(lines) + "\n"
