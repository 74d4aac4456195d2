"""The warehouse driver conformance suite: what every driver of the contract must pass.

A driver's tests subclass :class:`DriverConformance` in a module pytest collects (the class
name starting with ``Test``) and implement :meth:`DriverConformance.make_driver`: a connected
driver whose dataset holds the given tables. Nothing here imports pytest; a case that does not
apply raises :class:`unittest.SkipTest`, which pytest reports as skipped::

    from levered_server.warehouse.conformance import DriverConformance

    class TestMyWarehouse(DriverConformance):
        slow_sql = "SELECT count(*) FROM huge_a, huge_b"

        def make_driver(self, tables):
            ...  # create the tables in a fresh schema, return MyDriver(config, options={})

The cases: the statement check and the connection refuse writes (DROP, INSERT, UPDATE, DELETE,
several statements, COPY, ATTACH, data-modifying CTEs, the driver's own escapes); type names,
values, NULLs and time zones (API.md 10.8); the catalog; previews and row limits; bound
parameters; a metric's SQL previewed with `@start_date`; a statement stopped at its time limit
and one cancelled; and the training statement, in the driver's dialect, against the
plain-Python reference (:mod:`levered_server.warehouse.reference`) on random datasets.
docs/warehouse-drivers.md explains each.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import unittest
from collections.abc import Iterator
from typing import ClassVar

from levered_server.services.metrics import bound_sql
from levered_server.warehouse.conformance_data import (
    CONNECTION_WRITES,
    EXPOSURES,
    GOALS,
    TYPED,
    TYPED_ROWS,
    WRITES,
    Table,
)
from levered_server.warehouse.conformance_training import TrainingConformance
from levered_server.warehouse.driver_api import (
    Cancel,
    NotReadOnly,
    SqlRejected,
    TableNotFound,
    WarehouseDriver,
    WarehouseFailure,
)


@contextlib.contextmanager
def raises(*kinds: type[BaseException], what: str = "") -> Iterator[list[BaseException]]:
    """Assert that the block raises one of `kinds`; the exception lands in the list."""
    caught: list[BaseException] = []
    try:
        yield caught
    except kinds as exc:
        caught.append(exc)
        return
    raise AssertionError(f"no {' or '.join(k.__name__ for k in kinds)} raised: {what}")


class DriverConformance(TrainingConformance):
    """Subclass, implement :meth:`make_driver`, and set the attributes your engine needs."""

    #: A statement that runs for minutes on the engine (time limit, cancellation); None skips
    #: those two cases (say why in :attr:`slow_sql_missing`).
    slow_sql: ClassVar[str | None] = None
    slow_sql_missing: ClassVar[str] = "the engine has no statement that runs long enough"
    #: Statements that escape read-only on some engine (`SET ROLE`, turning a setting back
    #: on, reading server files); each must fail when sent straight to `query`.
    escapes: ClassVar[list[str]] = []
    #: The connection itself refuses writes (not only the statement check); False only for
    #: warehouses whose second layer is the credentials' grants (say so in your docs).
    connection_read_only: ClassVar[bool] = True
    #: The engine has a timestamp type with a time zone (kind `timestamptz`).
    has_timestamptz: ClassVar[bool] = True
    #: The training statement is checked on this many random datasets (seeds 1, 2, …).
    random_datasets: ClassVar[int] = 2
    #: `users` of the training statement is exact (else a sketch: within 5 % is enough).
    exact_users: ClassVar[bool] = True
    #: JSON is written with sorted keys (an emulator that compares JSON as text).
    sorted_json: ClassVar[bool] = False

    def make_driver(self, tables: dict[str, Table]) -> WarehouseDriver:
        """A connected driver whose dataset (`driver.dataset`) holds exactly `tables` besides
        what the warehouse always has (the managed warehouse's own tables).

        Called once or more per case; the subclass removes what it created (a pytest fixture
        of its own, a fresh schema per call…).
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers

    def typed_table(self) -> Table:
        """The `typed` table: every kind of value, and a row of NULLs."""
        if self.has_timestamptz:
            return TYPED, TYPED_ROWS
        return [c for c in TYPED if c[1] != "timestamptz"], [r[:4] + r[5:] for r in TYPED_ROWS]

    def typed(self) -> WarehouseDriver:
        """A driver over the `typed` table."""
        return self.make_driver({"typed": self.typed_table()})

    def _count(self, driver: WarehouseDriver, table: str = "typed") -> int:
        rows = driver.query(f"SELECT count(*) AS n FROM {driver.quote(table)}", limit=1,
                            timeout=60).rows
        return int(next(iter(rows[0].values())))

    # ------------------------------------------------------------------ read-only

    def test_the_statement_check_refuses_writes(self) -> None:
        driver = self.typed()
        for sql in WRITES:
            with raises(NotReadOnly, SqlRejected, what=repr(sql)):
                driver.check_read_only(sql)
        with raises(NotReadOnly, what="two statements") as caught:
            driver.check_read_only("SELECT 1; SELECT 2")
        assert "SELECT" in str(caught[0])

    def test_the_statement_check_accepts_queries(self) -> None:
        driver = self.typed()
        for sql in ("SELECT 1", "  with x AS (SELECT 1 AS a) SELECT a FROM x;",
                    "/* hi; */ SELECT t FROM typed -- trailing; comment",
                    "SELECT 'a;b' AS s", "(SELECT 1)"):
            driver.check_read_only(sql)

    def test_the_connection_cannot_write(self) -> None:
        if not self.connection_read_only:
            raise unittest.SkipTest("the credentials' grants are this warehouse's second layer")
        driver = self.typed()
        before = self._count(driver)
        for sql in CONNECTION_WRITES + self.escapes:
            with raises(NotReadOnly, SqlRejected, WarehouseFailure, what=repr(sql)):
                driver.query(sql, limit=10, timeout=60)
        assert self._count(driver) == before
        assert "typed" in [t["name"].lower() for t in driver.tables(timeout=60)]

    # ------------------------------------------------------------------ values

    def test_types_values_and_nulls(self) -> None:
        driver = self.typed()
        result = driver.query("SELECT t, f, i, ts, b FROM typed ORDER BY i", limit=10,
                              timeout=60)
        assert [c["name"] for c in result.columns] == ["t", "f", "i", "ts", "b"]
        assert all(isinstance(c["type"], str) and c["type"] for c in result.columns)
        by_t = {r["t"]: r for r in result.rows}
        assert set(by_t) == {"x", "it's 100%", None}
        first = by_t["x"]
        assert (first["f"], first["i"], first["b"]) == (1.5, 42, True)
        assert by_t["it's 100%"]["b"] is False and by_t["it's 100%"]["i"] == -7
        # a timestamp without a zone: ISO-8601 without an offset, as stored
        assert first["ts"] == "2026-11-01T12:30:00", first["ts"]
        assert set(by_t[None].values()) == {None}
        kinds = {c["name"]: driver.dialect.type_class(c["type"]) for c in result.columns}
        assert kinds["f"] == kinds["i"] == "number" and kinds["ts"] == "timestamp"
        assert kinds["t"] == kinds["b"] == "other"

    def test_time_zones(self) -> None:
        if not self.has_timestamptz:
            raise unittest.SkipTest("the engine has no timestamp with a time zone")
        driver = self.typed()
        rows = driver.query("SELECT t, tz FROM typed ORDER BY t", limit=10, timeout=60).rows
        by_t = {r["t"]: r["tz"] for r in rows}
        # with a zone: the instant in UTC, with Z, whatever the session's or server's zone
        assert by_t["x"] == "2026-11-01T10:30:00Z", by_t
        assert by_t["it's 100%"] == "2026-01-01T00:00:00Z" and by_t[None] is None

    def test_describe_names_the_columns_and_their_kinds(self) -> None:
        driver = self.typed()
        cols = driver.describe("SELECT t, f, i, ts FROM typed", timeout=60)
        assert [c["name"] for c in cols] == ["t", "f", "i", "ts"]
        kinds = [driver.dialect.type_class(c["type"]) for c in cols]
        assert kinds == ["other", "number", "number", "timestamp"], cols

    def test_the_catalog_lists_tables_and_columns(self) -> None:
        driver = self.typed()
        tables = driver.tables(timeout=60)
        assert "typed" in [t["name"].lower() for t in tables]
        assert [t["name"] for t in tables] == sorted(t["name"] for t in tables)
        assert all(t["type"] in ("table", "view") for t in tables)
        schema, table = driver.resolve_table("TYPED", timeout=60)
        assert table.lower() == "typed"
        assert driver.resolve_table(f"{schema}.typed", timeout=60) == (schema, table)
        cols = driver.columns(schema, table, timeout=60)
        assert [c["name"].lower() for c in cols] == [c for c, _ in self.typed_table()[0]]
        assert all(isinstance(c["nullable"], bool) and c["type"] for c in cols)
        with raises(TableNotFound):
            driver.resolve_table("no_such_table", timeout=60)

    def test_bad_sql_is_rejected(self) -> None:
        driver = self.typed()
        for sql in ("SELECT no_such_column FROM typed", "SELECT * FROM no_such_table",
                    "SELEC 1"):
            with raises(SqlRejected, what=sql):
                driver.query(sql, limit=1, timeout=60)

    # ------------------------------------------------------------------ previews

    def test_previews_are_limited_and_say_so(self) -> None:
        driver = self.make_driver({"nums": ([("n", "integer")], [(i,) for i in range(7)])})
        result = driver.query("SELECT n FROM nums ORDER BY n", limit=3, timeout=60)
        assert [r["n"] for r in result.rows] == [0, 1, 2] and result.truncated
        result = driver.query("SELECT n FROM nums", limit=7, timeout=60)
        assert len(result.rows) == 7 and not result.truncated
        columns = driver.query_columns("SELECT n FROM nums ORDER BY n", limit=5, timeout=60)
        assert columns.n_rows == 5 and columns.truncated
        assert [int(v) for v in list(columns.columns["n"])] == [0, 1, 2, 3, 4]
        q = driver.quote
        schema, table = driver.resolve_table("nums", timeout=60)
        # the table preview's own statement (services/discovery.py)
        preview = driver.query(f"SELECT * FROM {q(schema)}.{q(table)} LIMIT 3", limit=2,
                               timeout=60)
        assert len(preview.rows) == 2 and preview.truncated

    def test_parameters_bind_text_and_timestamps(self) -> None:
        driver = self.typed()
        d = driver.dialect
        sql = (f"SELECT t FROM typed WHERE t = {d.placeholder('name')} "
               f"AND {d.cast('ts', 'timestamp')} >= {d.placeholder('start')}")
        rows = driver.query(sql, limit=5, timeout=60,
                            params={"name": "x", "start": dt.datetime(2026, 11, 1, 12)}).rows
        assert rows == [{"t": "x"}]
        rows = driver.query(sql, limit=5, timeout=60,
                            params={"name": "x", "start": dt.datetime(2026, 11, 1, 13)}).rows
        assert rows == []

    def test_a_metric_preview_binds_its_start_date(self) -> None:
        driver = self.make_driver({"goals": (GOALS, [
            ("u1", dt.datetime(2026, 11, 1, 10), 1.0, "signup"),
            ("u2", dt.datetime(2026, 11, 2, 10), 2.0, "signup"),
            ("u3", dt.datetime(2026, 11, 3, 10), 3.0, "100%")])})
        # @start_date outside literals and comments, a `%` in a literal, a trailing `;`
        sql = ("SELECT anonymous_id, ts, value FROM goals WHERE ts >= @start_date "
               "AND name NOT LIKE '1%' -- not '@start_date'\n;")
        driver.check_read_only(sql)
        text, params = bound_sql(driver, sql, dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
        cols = driver.describe(text, params=params, timeout=60)
        assert [c["name"] for c in cols] == ["anonymous_id", "ts", "value"]
        assert driver.dialect.type_class(cols[1]["type"]) == "timestamp"
        result = driver.query(text, limit=10, params=params, timeout=60)
        assert [r["anonymous_id"] for r in result.rows] == ["u2"], result.rows
        text, params = bound_sql(driver, "SELECT anonymous_id FROM goals WHERE name LIKE 's%'",
                                 dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
        assert params is None and len(driver.query(text, limit=10, timeout=60).rows) == 2

    # ------------------------------------------------------------------ time limits

    def test_a_statement_past_its_time_limit_is_stopped(self) -> None:
        if self.slow_sql is None:
            raise unittest.SkipTest(self.slow_sql_missing)
        driver = self.typed()
        started = time.monotonic()
        with raises(WarehouseFailure) as caught:
            driver.query(self.slow_sql, limit=1, timeout=1)
        failure = caught[0]
        assert isinstance(failure, WarehouseFailure) and failure.timeout, failure
        assert time.monotonic() - started < 60  # not the statement's own minutes
        assert self._count(driver) == len(TYPED_ROWS)  # the driver still works

    def test_a_cancelled_statement_stops(self) -> None:
        if self.slow_sql is None:
            raise unittest.SkipTest(self.slow_sql_missing)
        driver = self.typed()
        cancel = Cancel()
        timer = threading.Timer(0.5, cancel.cancel)
        timer.start()
        started = time.monotonic()
        try:
            with raises(WarehouseFailure) as caught:
                driver.query(self.slow_sql, limit=1, timeout=600, cancel=cancel)
        finally:
            timer.cancel()
        failure = caught[0]
        assert isinstance(failure, WarehouseFailure) and failure.cancelled, failure
        assert not failure.timeout and time.monotonic() - started < 60
        # a token cancelled before the statement starts stops it at once
        with raises(WarehouseFailure):
            driver.query(self.slow_sql, limit=1, timeout=600, cancel=cancel)
        assert self._count(driver) == len(TYPED_ROWS)

__all__ = ["CONNECTION_WRITES", "EXPOSURES", "GOALS", "TYPED", "TYPED_ROWS", "WRITES",
           "DriverConformance", "Table", "raises"]
