"""How commands print: JSON for programs, tables and text for people, errors on stderr."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO


class Result(tuple[Sequence[str], Any]):
    """What a command's ``take_action`` returns: cliff's ``(columns, data)`` plus a document.

    :param columns: column names (Lister, ShowOne); empty for a plain Command.
    :param data: rows (Lister), values (ShowOne), or the text to print (Command).
    :param document: the object ``--json`` prints: the API response body as received,
        or the JSON object documented for a command that makes no request.
    :param footer: a line for people printed on stderr after the table (e.g. which page this
        is); never printed with ``--json``.

    It unpacks like cliff's pair, so cliff's formatters and command hooks take it as is.
    """

    document: Any
    footer: str | None

    def __new__(cls, columns: Sequence[str], data: Any, document: Any, *,
                footer: str | None = None) -> Result:
        result = super().__new__(cls, (columns, data))
        result.document = document
        result.footer = footer
        return result

    @property
    def columns(self) -> Sequence[str]:
        """The column names."""
        return self[0]

    @property
    def data(self) -> Any:
        """The rows, the values, or the text."""
        return self[1]

    @classmethod
    def text(cls, text: str, document: Any) -> Result:
        """Build the result of a plain command: ``text`` for people, ``document`` for ``--json``."""
        return cls((), text, document)


def print_json(document: Any, stream: TextIO) -> None:
    """Print ``document`` as JSON with 2-space indentation, keys in the order received."""
    stream.write(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")


def print_text(text: str, stream: TextIO) -> None:
    """Print ``text`` followed by exactly one newline (nothing for an empty text)."""
    if text:
        stream.write(text.rstrip("\n") + "\n")


def fields(document: Any) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """Return an API object's top-level fields as ShowOne's ``(columns, values)``.

    Nested objects and lists become compact JSON, so every formatter prints one line per field.
    """
    if not isinstance(document, dict):
        document = {"value": document}
    values = tuple(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
                   if isinstance(value, (dict, list)) else value for value in document.values())
    return tuple(str(key) for key in document), values
