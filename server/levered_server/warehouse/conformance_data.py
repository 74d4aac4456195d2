"""The tables and statements of the driver conformance suite (`conformance.py`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

#: A table for :meth:`DriverConformance.make_driver`: ``([(column, kind)], rows)``; kinds are
#: ``text``, ``float``, ``integer``, ``timestamp`` (naive), ``timestamptz`` (rows hold aware
#: datetimes) and ``boolean``; rows are tuples of Python values (None is NULL).
Table = tuple[list[tuple[str, str]], list[tuple[Any, ...]]]

EXPOSURES: list[tuple[str, str]] = [
    ("anonymous_id", "text"), ("optimization_id", "text"), ("variant", "text"),
    ("timestamp", "timestamp"), ("exposure_id", "text"), ("context", "text"),
    ("propensity", "float"), ("in_holdout", "boolean")]
GOALS: list[tuple[str, str]] = [("anonymous_id", "text"), ("ts", "timestamp"),
                                ("value", "float"), ("name", "text")]
TYPED: list[tuple[str, str]] = [("t", "text"), ("f", "float"), ("i", "integer"),
                                ("ts", "timestamp"), ("tz", "timestamptz"), ("b", "boolean")]
TYPED_ROWS: list[tuple[Any, ...]] = [
    ("x", 1.5, 42, dt.datetime(2026, 11, 1, 12, 30),
     dt.datetime(2026, 11, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))), True),
    ("it's 100%", -0.25, -7, dt.datetime(1999, 12, 31, 23, 59, 59),
     dt.datetime(2026, 1, 1, tzinfo=dt.UTC), False),
    (None, None, None, None, None, None)]
#: Writes the statement check must refuse (DuckDB's and PostgreSQL's spellings; an engine that
#: cannot parse one may reject it as SQL instead).
WRITES = ["DROP TABLE typed", "INSERT INTO typed (t) VALUES ('y')", "UPDATE typed SET t = 'z'",
          "DELETE FROM typed", "SELECT 1; SELECT 2", "SELECT 1; DROP TABLE typed",
          "COPY typed TO '/tmp/levered-conformance.csv'", "ATTACH 'x.db' AS x",
          "CREATE TABLE t2 (a INTEGER)", "SET ROLE postgres", "CALL something()", ""]
#: Writes sent straight to :meth:`WarehouseDriver.query` (past the statement check): the
#: connection itself must refuse them. A data-modifying CTE is a query to a tokenizer, so it
#: is here, not in `WRITES` (a driver with a real parser may refuse it at the check too).
CONNECTION_WRITES = ["INSERT INTO typed (t) VALUES ('y')", "DELETE FROM typed",
                     "UPDATE typed SET t = 'z'", "DROP TABLE typed",
                     "CREATE TABLE t2 (a INTEGER)",
                     "WITH d AS (DELETE FROM typed RETURNING *) SELECT * FROM d"]
