"""The SQL dialect of a warehouse driver (part of the driver contract, `driver_api`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

TypeKind = Literal["text", "float", "integer", "timestamp", "boolean"]
_NUMBER_WORDS = ("INT", "DECIMAL", "NUMERIC", "DOUBLE", "FLOAT", "REAL")


class Dialect:
    """How one warehouse spells the SQL the server generates (attribution, training, previews).

    The defaults are ANSI SQL as PostgreSQL and DuckDB take it; a driver overrides what its
    warehouse spells differently. Every method returns SQL text; expressions given to it are SQL
    text too, never values.
    """

    #: Type names of :meth:`cast`.
    types: ClassVar[dict[str, str]] = {"text": "VARCHAR", "float": "DOUBLE PRECISION",
                                       "integer": "BIGINT", "timestamp": "TIMESTAMP",
                                       "boolean": "BOOLEAN"}

    def quote(self, identifier: str) -> str:
        """An identifier, quoted (``"name"``; BigQuery and ClickHouse use backticks)."""
        return '"' + identifier.replace('"', '""') + '"'

    def placeholder(self, name: str) -> str:
        """A named query parameter as the driver's client library binds it (``$name``,
        ``%(name)s``, ``@name``, ``{name:String}``…)."""
        raise NotImplementedError

    def escape_text(self, sql: str) -> str:
        """SQL text (a user's metric SQL) made safe to send along with parameters: psycopg
        needs every ``%`` doubled; most libraries need nothing."""
        return sql

    def literal(self, text: str) -> str:
        """A string literal, inside a statement that is sent with parameters."""
        return self.escape_text("'" + text.replace("'", "''") + "'")

    def type_class(self, type_name: str) -> Literal["timestamp", "number", "other"]:
        """What a result column's type name (as `describe` reports it) holds: a metric's
        timestamp column must be `timestamp` (dates count) and its value column `number`."""
        name = type_name.upper()
        if name.startswith(("TIMESTAMP", "DATE", "DATETIME")):
            return "timestamp"
        if "INTERVAL" not in name and any(t in name for t in _NUMBER_WORDS):
            return "number"
        return "other"

    def cast(self, expr: str, kind: TypeKind) -> str:
        """`expr` converted to one of the :attr:`types`."""
        return f"CAST({expr} AS {self.types[kind]})"

    def json_text(self, json_expr: str, key: str) -> str:
        """Member `key` (an SQL expression, a placeholder) of the JSON object held as text in
        `json_expr`, as text: strings unquoted, booleans ``true``/``false``, JSON null and a
        missing key NULL."""
        raise NotImplementedError

    def json_key(self, json_expr: str) -> str:
        """An expression over JSON-object text whose equality is the objects' equality, key
        order and whitespace aside (applied both to a column and to a literal)."""
        raise NotImplementedError

    def approx_distinct(self, expr: str) -> str:
        """A distinct count that may be approximate (a sketch) where the warehouse has one."""
        return f"count(DISTINCT {expr})"

    def cte_hint(self, materialized: bool) -> str:
        """What goes between ``name AS`` and ``(`` of a CTE that should (not) be materialized
        (``" MATERIALIZED"``); empty where the warehouse has no such hint."""
        return ""

    def add_hours(self, timestamp: str, hours: int) -> str:
        """`timestamp` plus a whole number of hours."""
        return f"{timestamp} + INTERVAL '{int(hours)} hours'"

    def holdout_bucket(self, prefix: str, text_expr: str) -> str:
        """``uint64_be(SHA-256(prefix || text)[0:8]) mod 10000`` (API.md 2.4) as an integer
        expression; `prefix` is a Python string, `text_expr` SQL text of type text."""
        raise NotImplementedError


HEX_DIGITS = "0123456789abcdef"


def hex_prefix_mod_10000(digit: Callable[[int], str]) -> str:
    """``int(hex_digest[:16], 16) % 10000`` for a warehouse without 64-bit unsigned integers,
    for :meth:`Dialect.holdout_bucket`: the sum of each of the first 16 hex digits times
    ``16**(15 - i) % 10000``, mod 10000. `digit(i)` is the SQL value (0-15) of the digest's hex
    digit `i` (0-based), e.g. its position in :data:`HEX_DIGITS` less one."""
    terms = " + ".join(f"{digit(i)} * {pow(16, 15 - i, 10000)}" for i in range(16))
    return f"MOD({terms}, 10000)"


__all__ = ["HEX_DIGITS", "Dialect", "TypeKind", "hex_prefix_mod_10000"]
