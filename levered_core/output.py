"""How commands print: JSON for programs, tables and text for people, errors on stderr."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from cliff.columns import FormattableColumn  # a few lines of typing only: cliff is loaded to run any command

#: Formatters that print nested objects as objects; the others get them as compact JSON text.
STRUCTURED_FORMATS = frozenset({"json", "yaml"})


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
    """Return an API object's top-level fields as ShowOne's ``(columns, values)``, values as received.

    How nested objects print is the formatter's business (:func:`cells_for`): objects in
    ``-f json|yaml``, compact JSON in the table, ``csv`` and ``value``.
    """
    if not isinstance(document, dict):
        document = {"value": document}
    return tuple(str(key) for key in document), tuple(document.values())


def compact(value: Any) -> Any:
    """Return objects and arrays as one line of JSON, anything else unchanged."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return value


class Cell(FormattableColumn[Any]):
    """One cell of a table: the API's value for programs, a humanized text for people.

    ``-f json|yaml|csv|value|shell`` print the value (IDs whole, timestamps as sent, numbers
    as numbers, objects as objects in JSON and YAML); the readable table prints the text.

    :param value: the field exactly as the API sent it; ``None`` when the server left it out.
    :param show: the text for people: a function of the value (only called when it is not
        ``None``), or the text itself; by default the value as it is (objects as compact JSON).
    :param none: what people see for ``None`` (a missing field), ``-`` unless told.
    """

    def __init__(self, value: Any, show: Callable[[Any], str] | str | None = None, *, none: str = "-") -> None:
        super().__init__(value)
        if isinstance(show, str):
            self.text: str | None = show
        elif value is None:
            self.text = none
        else:
            self.text = None if show is None else show(value)

    def human_readable(self) -> str:
        """The text people see in the table."""
        return self.text if self.text is not None else str(compact(self._value))

    def table_value(self) -> Any:
        """What the table formatter gets: a bare number stays a number (cliff right-aligns it)."""
        if self.text is None and isinstance(self._value, int | float) and not isinstance(self._value, bool):
            return self._value
        return self.human_readable()

    def __lt__(self, other: object) -> bool:
        # ``--sort-column`` compares the API's values (ISO times sort right; "3m ago" would not),
        # missing ones first.
        if not isinstance(other, FormattableColumn):
            return NotImplemented
        mine, theirs = self._value, other.machine_readable()
        if mine is None or theirs is None:
            return mine is None and theirs is not None
        return bool(mine < theirs)


def cells_for(formatter: str, row: Iterable[Any]) -> list[Any]:
    """Return a row (or ShowOne's values) as ``formatter`` prints it.

    The table gets each :class:`Cell`'s text (and ``-`` for a plain ``None``); every other
    formatter gets the API's values, with objects and arrays as compact JSON except in
    :data:`STRUCTURED_FORMATS`.
    """
    if formatter == "table":
        return [cell.table_value() if isinstance(cell, Cell) else "-" if cell is None else compact(cell) for cell in row]
    values = [cell.machine_readable() if isinstance(cell, FormattableColumn) else cell for cell in row]
    return values if formatter in STRUCTURED_FORMATS else [compact(value) for value in values]
