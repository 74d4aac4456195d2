"""The driver interface and the failures drivers report."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

NAMESPACE = "levered.warehouse"


class WarehouseFailure(Exception):
    """Unreachable, refused credentials, timed out, or failed (→ 502 warehouse_error)."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timeout = timeout


class SqlRejected(Exception):
    """The warehouse rejected the SQL: syntax, unknown table or column (→ 422)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotReadOnly(Exception):
    """Not exactly one read-only query, or a write refused by the connection (→ 400)."""

    def __init__(self, statement_type: str | None, message: str | None = None) -> None:
        got = statement_type or "several statements"
        super().__init__(message or
                         f"Only a single SELECT or WITH query is allowed; got {got}.")
        self.statement_type = statement_type
        self.message = str(self)


class TableNotFound(Exception):
    """A table name that the catalog does not know (→ 404)."""


def pick_table(rows: list[Any], schema: str, table: str, name: str) -> tuple[str, str]:
    """Choose among case-insensitive catalog matches: the exact spelling first, else the first.

    :raises TableNotFound: no match at all.
    """
    for s, t in rows:
        if s == schema and t == table:
            return s, t
    if rows:
        return rows[0][0], rows[0][1]
    raise TableNotFound(name)


@dataclasses.dataclass
class ResultSet:
    """Rows of a read-only query, converted per API.md 10.8."""

    columns: list[dict[str, str]]
    rows: list[dict[str, Any]]
    truncated: bool
    elapsed_ms: int = 0


@dataclasses.dataclass
class ColumnSet:
    """A read-only query's result by column: name → a list or a numpy array (NULLs masked).

    For bulk numeric results (the training statement) a driver may skip the per-value
    conversion of :class:`ResultSet`; consumers must accept both forms.
    """

    columns: dict[str, Any]
    n_rows: int
    truncated: bool
    elapsed_ms: int = 0


@dataclasses.dataclass(frozen=True)
class ConnectionConfig:
    """What a driver needs to connect: provider fields and decrypted credentials."""

    organization_id: str
    provider: str
    project_id: str | None
    dataset_id: str | None
    exposures_table: str | None
    credentials: dict[str, Any]


class WarehouseDriver(abc.ABC):
    """One organization's warehouse. Every query goes through a connection that cannot write."""

    provider: str = ""
    managed: bool = False

    def __init__(self, config: ConnectionConfig, *, options: dict[str, Any]) -> None:
        self.config = config
        self.options = options

    @property
    def dataset(self) -> str:
        """The schema tables are listed from."""
        return self.config.dataset_id or ""

    @property
    def api_provider(self) -> str:
        """The provider as the API names it: `duckdb` for the managed warehouse on either
        engine (`provider` names the SQL dialect)."""
        return "duckdb" if self.managed else self.provider

    @abc.abstractmethod
    def ping(self, *, timeout: float) -> None:
        """Run a trivial query; raise `WarehouseFailure` on any problem."""

    @abc.abstractmethod
    def check_read_only(self, sql: str) -> None:
        """Refuse anything but exactly one query (`NotReadOnly`) or unparsable SQL."""

    @abc.abstractmethod
    def query(self, sql: str, *, limit: int, timeout: float,
              params: dict[str, Any] | None = None) -> ResultSet:
        """Run one read-only query and fetch at most `limit` rows (+1 to detect truncation)."""

    def query_columns(self, sql: str, *, limit: int, timeout: float,
                      params: dict[str, Any] | None = None) -> ColumnSet:
        """Like :meth:`query`, by column; this default transposes :meth:`query`'s rows."""
        result = self.query(sql, limit=limit, timeout=timeout, params=params)
        names = [c["name"] for c in result.columns]
        return ColumnSet(columns={n: [r.get(n) for r in result.rows] for n in names},
                         n_rows=len(result.rows), truncated=result.truncated,
                         elapsed_ms=result.elapsed_ms)

    @abc.abstractmethod
    def describe(self, sql: str, *, timeout: float,
                 params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """Dry-run a query (no rows fetched) and return its columns."""

    @abc.abstractmethod
    def tables(self, *, timeout: float) -> list[dict[str, Any]]:
        """Tables and views of the dataset, sorted by name."""

    @abc.abstractmethod
    def resolve_table(self, name: str, *, timeout: float) -> tuple[str, str]:
        """Find `table` or `schema.table` in the catalog; return (schema, table) or raise."""

    @abc.abstractmethod
    def columns(self, schema: str, table: str, *, timeout: float) -> list[dict[str, Any]]:
        """Columns of a resolved table in table order."""

    @abc.abstractmethod
    def quote(self, identifier: str) -> str:
        """Quote an identifier for this warehouse's SQL."""

    @abc.abstractmethod
    def placeholder(self, name: str) -> str:
        """How a named query parameter is written in this warehouse's SQL."""
