"""Local validation of what users type: JSON flags, factor specs, IDs and ID prefixes.

Everything here fails with a :class:`~levered_core.errors.UsageError` (exit 2) before any
request is sent, naming the flag and, for JSON, the position of the error.
"""

from __future__ import annotations

import json
import pathlib
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from levered_core.errors import ExitCode, LeveredError, UsageError

#: The shortest ID prefix accepted (shorter ones match too much to be typed on purpose).
MIN_PREFIX = 4
HEX_PREFIX = re.compile(r"^[0-9a-fA-F-]{4,36}$")


def json_flag(flag: str, raw: str, expect: type[list[Any]] | type[dict[str, Any]]) -> Any:
    """Parse a flag holding inline JSON or ``@path/to/file.json``.

    :param flag: the flag's name for messages, e.g. ``--design-factors``.
    :param expect: ``list`` or ``dict``: the required top-level type.
    :raises UsageError: unreadable file, invalid JSON (with line and column), wrong type.
    """
    text = _read_at_file(flag, raw)
    source = f" in {pathlib.Path(raw[1:]).expanduser()}" if raw.startswith("@") else ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag}: invalid JSON{source} at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(value, expect):
        wanted = "array" if expect is list else "object"
        raise UsageError(f"{flag} must be a JSON {wanted}, got {_json_type(value)}")
    return value


def _read_at_file(flag: str, raw: str) -> str:
    """Return ``raw``, or the content of the file it names as ``@path``."""
    if not raw.startswith("@"):
        return raw
    path = pathlib.Path(raw[1:]).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read {path}: {exc.strerror}") from None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def factor_specs(flag: str, factors: list[Any], *, levels_required: bool) -> list[dict[str, Any]]:
    """Check the shape of a factor list: objects with a ``name`` (and ``levels`` if required).

    :raises UsageError: naming the index and the missing or mistyped key.
    """
    for index, factor in enumerate(factors):
        where = f"{flag}[{index}]"
        if not isinstance(factor, dict):
            raise UsageError(f"{where} must be an object like {{\"name\": ..., \"levels\": [...]}}")
        if "name" not in factor:
            raise UsageError(f"{where} is missing \"name\"")
        if levels_required and "levels" not in factor:
            raise UsageError(f"{where} ({factor['name']}) is missing \"levels\"")
        if "levels" in factor and not isinstance(factor["levels"], list):
            raise UsageError(f"{where}.levels must be an array")
    return factors


class NoMatch(LeveredError):
    """No object's ID starts with the prefix given."""

    exit_code = ExitCode.NOT_FOUND


def resolve_id(value: str, kind: str, list_ids: Callable[[], Iterable[tuple[str, str]]]) -> str:
    """Turn a full ID or a unique prefix (≥ 4 hex characters) into a full ID.

    :param kind: the object's name for messages, e.g. ``optimization``.
    :param list_ids: returns (id, label) pairs to match a prefix against; only called for a prefix.
    :raises NoMatch: no ID starts with the prefix (exit 4).
    :raises UsageError: the value is shorter than :data:`MIN_PREFIX`, is not hexadecimal (IDs are
        UUIDs: a name, an API key's ``lvk_`` prefix or a typo cannot be one), or several IDs start
        with it (exit 2).
    """
    candidate = value.strip().lower()
    try:
        return str(uuid.UUID(candidate))
    except ValueError:
        pass
    if len(candidate) < MIN_PREFIX:
        raise UsageError(f"{kind} ID {value.strip()!r} is too short: give at least {MIN_PREFIX} characters of the ID "
                         "(or the full UUID)")
    if not HEX_PREFIX.match(candidate):
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        raise UsageError(f"{value.strip()!r} is not {article} {kind} ID (IDs are UUIDs): give the full ID or at least "
                         f"its first {MIN_PREFIX} characters, as the ID column of the `list` command shows them")
    matches = [(oid, label) for oid, label in list_ids() if oid.startswith(candidate)]
    if not matches:
        raise NoMatch(f"no {kind} has an ID starting with {candidate!r}")
    if len(matches) > 1:
        listed = "; ".join(f"{oid} ({label})" for oid, label in matches[:10])
        raise UsageError(f"{candidate!r} matches {len(matches)} {kind}s: {listed}; type more characters")
    return matches[0][0]


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers in ``[low, high]`` (else a usage error, exit 2)."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}-{high}")
        return value

    parse.__name__ = "integer"
    return parse


def text_flag(flag: str, raw: str) -> str:
    """Return a flag's text, or a file's content for ``@path`` (``-`` reads stdin).

    :raises UsageError: the file cannot be read or the text is empty.
    """
    import sys

    text = sys.stdin.read() if raw == "-" else _read_at_file(flag, raw)
    if not text.strip():
        raise UsageError(f"{flag} is empty")
    return text


def result_set(body: dict[str, Any]) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Columns and rows of a warehouse result set (docs/api.md 10.8), for a Lister.

    Each value is a :class:`~levered_core.output.Cell`: NULL shows as ``-`` in the table, as in
    every other table, and objects and arrays as JSON; ``-f json`` keeps ``null`` and objects.
    """
    from levered_core.output import Cell

    columns = tuple(str(column.get("name")) for column in body.get("columns") or [])
    return columns, [tuple(Cell(row.get(name)) for name in columns) for row in body.get("rows") or []]
