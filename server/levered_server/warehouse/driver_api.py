"""The warehouse driver contract, version 1: what a driver is and what the server asks of it.

A driver is a :class:`WarehouseDriver` subclass registered under the ``levered.warehouse.v1``
entry-point group, named by the provider it serves (``postgres = my_pkg.driver:MyDriver``).
The server never compares provider names: it asks the driver's attributes (``managed``,
``credentials_model``…) and builds every statement with the driver's :class:`Dialect`.
docs/warehouse-drivers.md is the authors' guide; :mod:`levered_server.warehouse.conformance`
is the suite a driver's tests subclass.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ValidationError

# The dialect lives in a module of its own; it is part of this contract and exported here.
from levered_server.warehouse.dialect import HEX_DIGITS as HEX_DIGITS
from levered_server.warehouse.dialect import Dialect as Dialect
from levered_server.warehouse.dialect import TypeKind as TypeKind
from levered_server.warehouse.dialect import hex_prefix_mod_10000 as hex_prefix_mod_10000
from levered_server.warehouse.values import to_json

CONTRACT_VERSION = 1
ENTRY_POINT_GROUP = f"levered.warehouse.v{CONTRACT_VERSION}"
# Before the contract had a version; still read, with a deprecation warning (manager.py).
LEGACY_ENTRY_POINT_GROUP = "levered.warehouse"


# --------------------------------------------------------------------------- failures


class WarehouseFailure(Exception):
    """Unreachable, refused credentials, timed out, cancelled or failed (→ 502 warehouse_error).

    :param timeout: the statement ran into its time limit.
    :param cancelled: the statement was stopped through its :class:`Cancel`.
    """

    def __init__(self, message: str, *, timeout: bool = False, cancelled: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timeout = timeout
        self.cancelled = cancelled


class DriverNotInstalled(WarehouseFailure):
    """No usable driver for a provider; the message names the command that installs one."""


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


# --------------------------------------------------------------------------- values


@dataclasses.dataclass
class ResultSet:
    """Rows of a read-only query, converted per API.md 10.8 (`values.to_json`)."""

    columns: list[dict[str, str]]
    rows: list[dict[str, Any]]
    truncated: bool
    elapsed_ms: int = 0

    @classmethod
    def of(cls, names: list[str], types: list[str], raw: Sequence[Sequence[Any]], *,
           limit: int, started: float,
           value: Callable[[Any, str], Any] | None = None) -> ResultSet:
        """A query's result from the rows it fetched (`limit + 1` at most, to tell whether
        there were more): the first `limit`, each value converted by `values.to_json` (after
        `value(v, type)`, when given), `truncated` when there were more, and the time since
        `started` (`time.perf_counter()`). `names` are unique (`values.unique_names`)."""
        def cell(v: Any, t: str) -> Any:
            return to_json(v if value is None else value(v, t), t)

        rows = [{n: cell(v, t) for n, v, t in zip(names, row, types, strict=False)}
                for row in raw[:limit]]
        return cls(columns=[{"name": n, "type": t} for n, t in zip(names, types, strict=False)],
                   rows=rows, truncated=len(raw) > limit,
                   elapsed_ms=int((time.perf_counter() - started) * 1000))


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
    """What a driver needs to connect: the saved connection's fields, credentials decrypted."""

    organization_id: str
    provider: str
    project_id: str | None
    dataset_id: str | None
    exposures_table: str | None
    credentials: dict[str, Any]


class Cancel:
    """A request to stop a running statement, from another thread (a client that went away).

    A driver wraps each statement in :meth:`hook` with a function that interrupts it (DuckDB's
    ``interrupt``, psycopg's ``cancel``); :meth:`cancel` calls the hooks of what runs now, and a
    statement about to be hooked after the cancellation is not started at all.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []
        self.cancelled = False

    def cancel(self) -> None:
        """Interrupt whatever runs now, and everything hooked later."""
        with self._lock:
            self.cancelled = True
            hooks = list(self._hooks)
        for interrupt in hooks:
            with contextlib.suppress(Exception):  # the statement may have just finished
                interrupt()

    @contextlib.contextmanager
    def hook(self, interrupt: Callable[[], None]) -> Iterator[None]:
        """Register `interrupt` while the block runs.

        :raises WarehouseFailure: (`cancelled`) already cancelled: the block does not run (an
            interrupt sent before the statement starts would be lost).
        """
        with self._lock:
            if self.cancelled:
                raise WarehouseFailure("the query was cancelled", cancelled=True)
            self._hooks.append(interrupt)
        try:
            yield
        finally:
            with self._lock:
                self._hooks.remove(interrupt)


@contextlib.contextmanager
def hooked(cancel: Cancel | None, interrupt: Callable[[], None]) -> Iterator[None]:
    """:meth:`Cancel.hook` when there is a token, else nothing."""
    if cancel is None:
        yield
    else:
        with cancel.hook(interrupt):
            yield


# --------------------------------------------------------------------------- credentials


class CredentialProblem(ValueError):
    """Raised by a credentials model's validator to name the field at fault and a code."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field, self.code, self.message = field, code, message


_CODES = {"missing": ("required", "is required"), "extra_forbidden": ("unknown_field", "unknown field"),
          "string_too_short": ("too_short", "must not be empty")}
_TYPE_WORDS = {"string": "a string", "int": "an integer", "bool": "a boolean", "float": "a number",
               "dict": "an object", "list": "a list"}


def credential_errors(model: type[BaseModel], data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Validate credentials against a driver's model: ``(field, code, message)`` per problem,
    the field spelt ``credentials.<name>`` (the API's field-error codes, API.md 1.5)."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            problem = (err.get("ctx") or {}).get("error")
            if isinstance(problem, CredentialProblem):
                out.append((f"credentials.{problem.field}", problem.code, problem.message))
                continue
            kind = err["type"]
            code, message = _CODES.get(kind, ("invalid_value", str(err["msg"])))
            if kind.endswith("_type"):
                code = "type"
                message = f"must be {_TYPE_WORDS.get(kind[:-5], kind[:-5])}"
            elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
                code = "out_of_range"
            out.append((f"credentials.{loc}" if loc else "credentials", code, message))
        return out
    return []


# --------------------------------------------------------------------------- the driver


class WarehouseDriver(abc.ABC):
    """One organization's warehouse. Every user query goes through a connection (or a
    transaction) that cannot write, with a statement timeout, and can be cancelled.

    Subclasses set the class attributes below and implement the abstract methods; one
    instance serves one organization's connection for one request (instances are cheap).
    """

    #: The contract this driver implements (the server refuses another).
    contract_version: ClassVar[int] = CONTRACT_VERSION
    #: The dialect name: what runs the SQL (`duckdb`, `postgres`, `clickhouse`…).
    provider: ClassVar[str] = ""
    #: Shown as the `driver` of connections and status; default :attr:`provider`.
    driver_name: ClassVar[str] = ""
    #: Default: the version of the distribution that ships the driver's module.
    driver_version: ClassVar[str | None] = None
    #: The server's own (managed) warehouse, which it writes exposures and ingested events
    #: to: such a driver also implements `append_exposures` and `ingest` (managed_postgres.py),
    #: and may implement `append_exposure_payloads` (the outbox's JSON, parsed by the engine).
    managed: ClassVar[bool] = False
    #: How the warehouse spells SQL.
    dialect: ClassVar[Dialect]
    #: The connection's `credentials` object; None: the provider takes none.
    credentials_model: ClassVar[type[BaseModel] | None] = None
    #: Whether the connection's `project_id` is `unused` (given → error), `optional` or `required`.
    project_id_use: ClassVar[Literal["unused", "optional", "required"]] = "unused"
    #: Whether the connection must name its `dataset_id`.
    dataset_required: ClassVar[bool] = False
    #: Modules the driver imports at connection time (the vendor's client library), and the
    #: command that installs them, named when one is missing.
    requires: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = ""

    def __init__(self, config: ConnectionConfig, *, options: dict[str, Any]) -> None:
        self.config = config
        self.options = options

    # ---- class-level facts, asked before any connection exists

    @classmethod
    def missing(cls) -> str | None:
        """Why the driver cannot run here (a module of :attr:`requires` is not installed)."""
        for module in cls.requires:
            if importlib.util.find_spec(module) is None:
                how = f"; install it with `{cls.install_hint}`" if cls.install_hint else ""
                return f"the {cls.provider} driver needs the Python module {module!r}{how}"
        return None

    @classmethod
    def default_dataset(cls, credentials: dict[str, Any]) -> str | None:
        """The dataset (schema) used when the connection names none."""
        return None

    @classmethod
    def describe_driver(cls) -> tuple[str, str]:
        """(name, version) shown in connections and status (extension fields)."""
        version = cls.driver_version
        if version is None:
            top = cls.__module__.split(".", 1)[0]
            dists = importlib.metadata.packages_distributions().get(top) or []
            try:
                version = importlib.metadata.version(dists[0]) if dists else "unknown"
            except importlib.metadata.PackageNotFoundError:
                version = "unknown"
        return cls.driver_name or cls.provider, version

    # ---- what the services use

    @property
    def dataset(self) -> str:
        """The schema tables are listed from and unqualified names resolve in."""
        return self.config.dataset_id or ""

    @property
    def api_provider(self) -> str:
        """The provider as the API names the connection: `duckdb` for the managed warehouse
        on any engine (:attr:`provider` names the engine)."""
        return "duckdb" if self.managed else self.provider

    def quote(self, identifier: str) -> str:
        """:meth:`Dialect.quote`."""
        return self.dialect.quote(identifier)

    def placeholder(self, name: str) -> str:
        """:meth:`Dialect.placeholder`."""
        return self.dialect.placeholder(name)

    @abc.abstractmethod
    def ping(self, *, timeout: float) -> None:
        """Run a trivial query (and check the dataset exists); `WarehouseFailure` otherwise."""

    @abc.abstractmethod
    def check_read_only(self, sql: str) -> None:
        """Refuse anything but exactly one query (`NotReadOnly`), or unparsable SQL
        (`SqlRejected`): the first of the two read-only layers (API.md 10.7)."""

    @abc.abstractmethod
    def query(self, sql: str, *, limit: int, timeout: float,
              params: dict[str, Any] | None = None, cancel: Cancel | None = None) -> ResultSet:
        """Run one query where nothing can be written (the second layer), fetch at most
        `limit` rows (+1 to detect truncation) and convert them (`values.to_json`).

        :param timeout: seconds the statement may run; beyond, it is stopped and
            `WarehouseFailure(timeout=True)` raised.
        :param cancel: stop the statement when cancelled (`WarehouseFailure(cancelled=True)`).
        :raises NotReadOnly: the warehouse refused a write.
        :raises SqlRejected: syntax, names or types.
        """

    def query_columns(self, sql: str, *, limit: int, timeout: float,
                      params: dict[str, Any] | None = None,
                      cancel: Cancel | None = None) -> ColumnSet:
        """Like :meth:`query`, by column; this default transposes :meth:`query`'s rows."""
        result = self.query(sql, limit=limit, timeout=timeout, params=params, cancel=cancel)
        names = [c["name"] for c in result.columns]
        return ColumnSet(columns={n: [r.get(n) for r in result.rows] for n in names},
                         n_rows=len(result.rows), truncated=result.truncated,
                         elapsed_ms=result.elapsed_ms)

    @abc.abstractmethod
    def describe(self, sql: str, *, timeout: float,
                 params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """The columns (`name`, `type`: the warehouse's type name) of a query, no rows fetched."""

    @abc.abstractmethod
    def tables(self, *, timeout: float) -> list[dict[str, Any]]:
        """Tables and views of the dataset (`name`, `type`: table|view, `row_count` or None),
        sorted by name."""

    @abc.abstractmethod
    def resolve_table(self, name: str, *, timeout: float) -> tuple[str, str]:
        """Find `table` or `schema.table` (case-insensitively) in the catalog.

        :raises TableNotFound: no such table.
        """

    @abc.abstractmethod
    def columns(self, schema: str, table: str, *, timeout: float) -> list[dict[str, Any]]:
        """Columns (`name`, `type`, `nullable`) of a resolved table, in table order."""
