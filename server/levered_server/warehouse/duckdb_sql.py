"""DuckDB's SQL: the dialect, and the statement checks made with DuckDB's own parser."""

from __future__ import annotations

import atexit
import json
import re
import threading
from typing import Any

import duckdb

from levered_server.warehouse.driver_api import Dialect

# External access off (no files, URLs, ATTACH, INSTALL/LOAD) and the
# configuration locked so a query cannot turn it back on.
CONFIG: dict[str, Any] = {"enable_external_access": False,
                          "autoinstall_known_extensions": False,
                          "autoload_known_extensions": False,
                          "lock_configuration": True}
_PARSER: list[duckdb.DuckDBPyConnection] = []
_PARSER_LOCK = threading.Lock()


def _close_parser() -> None:
    with _PARSER_LOCK:
        while _PARSER:
            _PARSER.pop().close()


def _parser() -> duckdb.DuckDBPyConnection:
    # One in-memory database used only for DuckDB's parser, closed at exit
    # (DuckDB objects left to interpreter finalization can abort the process). Under the lock.
    if not _PARSER:
        _PARSER.append(duckdb.connect(":memory:", config=dict(CONFIG)))
    return _PARSER[0]


def statements(sql: str) -> list[Any]:
    with _PARSER_LOCK:
        return list(_parser().extract_statements(sql))


_WRITING_NODE = re.compile(r"INSERT|DELETE|UPDATE|MERGE")


def writing_node(sql: str) -> str | None:
    """The first data-modifying node inside a SELECT (DuckDB parses `WITH d AS (DELETE …
    RETURNING *) SELECT …` as a SELECT), from the parser's serialized tree."""
    with _PARSER_LOCK:
        text = _parser().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    stack: list[Any] = [json.loads(text[0]) if text else {}]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            kind = node.get("type")
            if isinstance(kind, str) and _WRITING_NODE.search(kind):
                return kind.split("_", 1)[0]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


# DuckDB objects left to interpreter finalization can abort the process.
atexit.register(_close_parser)


class DuckDBDialect(Dialect):
    """DuckDB: `$name` parameters, JSON with `->>`, a HyperLogLog distinct count."""

    def placeholder(self, name: str) -> str:
        return f"${name}"

    def json_text(self, json_expr: str, key: str) -> str:
        return f"CAST({json_expr} AS JSON) ->> {key}"

    def json_key(self, json_expr: str) -> str:
        # DuckDB compares JSON as text: sort the members so key order does not matter.
        return f"list_sort(map_entries(CAST(CAST({json_expr} AS JSON) AS MAP(VARCHAR, JSON))))"

    def approx_distinct(self, expr: str) -> str:
        return f"approx_count_distinct({expr})"

    def cte_hint(self, materialized: bool) -> str:
        return " MATERIALIZED" if materialized else " NOT MATERIALIZED"

    def holdout_bucket(self, prefix: str, text_expr: str) -> str:
        digest = f"sha256({self.literal(prefix)} || {text_expr})"
        return f"CAST(('0x' || substr({digest}, 1, 16)) AS UBIGINT) % 10000"
