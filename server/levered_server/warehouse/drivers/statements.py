"""The first read-only layer of the extra drivers: one SELECT or WITH query, judged by its words.

The second layer is each warehouse's own (ClickHouse `readonly=1`, BigQuery's dry-run
statement type, a Snowflake role that may only read); this one refuses what the warehouse
would run although it writes: `SELECT … INTO OUTFILE` (ClickHouse writes the file), a `WITH`
before a data-modifying statement.
"""

from __future__ import annotations

import re

from levered_server.warehouse.driver_api import NotReadOnly
from levered_server.warehouse.sqltext import first_keyword, split_statements

# Words outside literals, quoted identifiers and comments ('…', "…", `…`, --, /* */).
_WORD = re.compile(r"""--[^\n]*|/\*.*?(?:\*/|\Z)|'(?:[^'\\]|\\.|'')*(?:'|\Z)|"(?:[^"]|"")*(?:"|\Z)"""
                   r"""|`(?:[^`]|``)*(?:`|\Z)|(?P<word>[A-Za-z_][A-Za-z0-9_]*)""", re.S)
# Statement words no query contains (REPLACE and MERGE are also function names: left out).
WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "TRUNCATE", "COPY",
                    "GRANT", "REVOKE", "CALL", "EXECUTE"})


def words(sql: str) -> list[str]:
    """The statement's bare words, upper-cased, in order."""
    return [m.group("word").upper() for m in _WORD.finditer(sql) if m.group("word")]


def check_single_query(sql: str, *, refuse_after_with: frozenset[str] = WRITES,
                       refuse_pairs: tuple[tuple[str, str], ...] = ()) -> None:
    """Refuse anything but exactly one SELECT/WITH query.

    :param refuse_after_with: statement words that make a `WITH …` statement a write.
    :param refuse_pairs: two consecutive words that make any query a write (`INTO OUTFILE`).
    :raises NotReadOnly: several statements, none, or not a query.
    """
    statements = split_statements(sql)
    if len(statements) != 1:
        raise NotReadOnly(None if statements else "nothing")
    kind = first_keyword(statements[0])
    if kind not in ("SELECT", "WITH"):
        raise NotReadOnly(kind)
    found = words(statements[0])
    if kind == "WITH":
        for word in found:
            if word in refuse_after_with:
                raise NotReadOnly(word)
    for first, second in refuse_pairs:
        for a, b in zip(found, found[1:], strict=False):
            if (a, b) == (first, second):
                raise NotReadOnly(f"{first} {second}")
