"""How commands print: JSON for programs, tables and text for people, errors on stderr."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple, TextIO


class Result(NamedTuple):
    """What a command's ``take_action`` returns.

    :param columns: column names (Lister, ShowOne); empty for a plain Command.
    :param data: rows (Lister), values (ShowOne), or the text to print (Command).
    :param document: the object ``--json`` prints: the API response body as received,
        or the JSON object documented for a command that makes no request.
    """

    columns: Sequence[str]
    data: Any
    document: Any

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
