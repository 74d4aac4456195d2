"""A stand-in for `google.cloud.bigquery.Client` that runs GoogleSQL on DuckDB through sqlglot.

It is what the BigQuery driver's tests can run here: every statement is parsed with sqlglot's
BigQuery dialect (a syntax error is BigQuery's 400), classified like BigQuery's dry run
(`statement_type`), transpiled to DuckDB and run on the same kind of data the other drivers'
tests use. It answers with the library's own classes (`SchemaField`, `Row`, google.api_core's
errors) and plays a service account that may only read (a write that runs is a 403). What it
does not show about a live project is listed in docs/warehouse-drivers.md.
"""

from __future__ import annotations

import contextlib
import re
import threading
import types
from typing import Any

import duckdb
import sqlglot
from google.api_core import exceptions
from google.cloud import bigquery
from sqlglot import expressions as exp

# DuckDB's type → the REST API's (legacy) name, as the real client reports it.
_FIELD = {"VARCHAR": "STRING", "DOUBLE": "FLOAT", "FLOAT": "FLOAT", "BIGINT": "INTEGER",
          "INTEGER": "INTEGER", "HUGEINT": "INTEGER", "BOOLEAN": "BOOLEAN",
          "TIMESTAMP": "DATETIME", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP", "DATE": "DATE",
          "JSON": "JSON", "BLOB": "BYTES"}
_STATEMENTS = {exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE",
               exp.Merge: "MERGE", exp.Drop: "DROP_TABLE", exp.Create: "CREATE_TABLE",
               exp.Alter: "ALTER_TABLE"}
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge)


def _field_type(duck_type: str) -> str:
    name = str(duck_type).upper()
    return "NUMERIC" if name.startswith("DECIMAL") else _FIELD.get(name, "STRING")


def classify(sql: str) -> tuple[str, exp.Expression | None]:
    """(statement_type, the parsed statement) as BigQuery's dry run would name it.

    :raises exceptions.BadRequest: not GoogleSQL.
    """
    try:
        trees = [t for t in sqlglot.parse(sql, read="bigquery") if t is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise exceptions.BadRequest(f"Syntax error: {exc}") from None
    if len(trees) != 1:
        return ("SCRIPT" if trees else "NONE"), None
    tree = trees[0]
    if isinstance(tree, exp.Query):
        if any(tree.find_all(*_WRITES)):  # GoogleSQL has no data-modifying CTE
            raise exceptions.BadRequest("Syntax error: a query may not modify data")
        return "SELECT", tree
    for kind, name in _STATEMENTS.items():
        if isinstance(tree, kind):
            return name, tree
    raise exceptions.BadRequest(f"Syntax error: unexpected statement {sql.split()[0]!r}")


class Job:
    """A query job: runs when its result is asked for (the real one runs on the server)."""

    def __init__(self, emulator: Emulator, sql: str, config: Any) -> None:
        self.emulator, self.sql, self.config = emulator, sql, config
        self.statement_type, self.tree = classify(sql)
        self.schema: list[Any] | None = None
        self._cancelled = threading.Event()
        self._cursor: duckdb.DuckDBPyConnection | None = None
        if config.dry_run and self.statement_type == "SELECT":
            self._run(limit_zero=True)

    def cancel(self) -> bool:
        self._cancelled.set()
        if self._cursor is not None:
            with contextlib.suppress(duckdb.Error):  # it may have finished
                self._cursor.interrupt()
        return True

    def _run(self, *, limit_zero: bool = False) -> list[tuple[Any, ...]]:
        if self.statement_type != "SELECT":
            # the service account holds BigQuery Data Viewer and Job User only
            raise exceptions.Forbidden("Access Denied: the service account may not modify data "
                                       f"({self.statement_type})")
        assert self.tree is not None
        duck_sql = self.tree.sql(dialect="duckdb")
        if limit_zero:
            duck_sql = f"SELECT * FROM ({duck_sql}) AS q LIMIT 0"
        params = {p.name: p.value for p in self.config.query_parameters}
        dataset = str(self.config.default_dataset.dataset_id)
        cur = self.emulator.db.cursor()
        self._cursor = cur
        timer = None
        if self.config.job_timeout_ms:
            timer = threading.Timer(float(self.config.job_timeout_ms) / 1000, cur.interrupt)
            timer.start()
        try:
            if self._cancelled.is_set():
                raise exceptions.BadRequest("Job execution was cancelled: User requested "
                                            "cancellation")
            cur.execute("SET TimeZone = 'UTC'")
            cur.execute(f"SET search_path = '{dataset}'")
            used = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", duck_sql))
            result = cur.execute(duck_sql, {k: v for k, v in params.items() if k in used}
                                 or None)
            self.schema = [bigquery.SchemaField(d[0], _field_type(d[1]), mode="NULLABLE")
                           for d in result.description or []]
            return result.fetchall()
        except duckdb.InterruptException:
            if self._cancelled.is_set():
                raise exceptions.BadRequest("Job execution was cancelled: User requested "
                                            "cancellation") from None
            raise exceptions.BadRequest(f"Job timed out after {self.config.job_timeout_ms} ms "
                                        "(reason: timeout)") from None
        except duckdb.CatalogException as exc:
            raise exceptions.NotFound(f"Not found: {exc}") from None
        except duckdb.Error as exc:
            raise exceptions.BadRequest(str(exc)) from None
        finally:
            if timer is not None:
                timer.cancel()
            cur.close()

    def result(self, max_results: int | None = None, timeout: float | None = None) -> Any:
        rows = self._run()
        assert self.schema is not None
        index = {f.name: i for i, f in enumerate(self.schema)}
        out = [bigquery.Row(r, index) for r in rows[:max_results]]
        return _Rows(self.schema, out)


class _Rows(list[Any]):
    """Rows with the schema, like the client's RowIterator."""

    def __init__(self, schema: list[Any], rows: list[Any]) -> None:
        super().__init__(rows)
        self.schema = schema


class Client:
    """The slice of `bigquery.Client` the driver uses, on the emulator's DuckDB."""

    def __init__(self, emulator: Emulator, project: str) -> None:
        self.emulator, self.project = emulator, project

    def query(self, sql: str, job_config: Any = None, timeout: float | None = None) -> Job:
        return Job(self.emulator, sql, job_config)

    def _schema(self, ref: str) -> str:
        project, dataset = ref.split(".")[:2]
        if project != self.project or dataset not in self.emulator.datasets:
            raise exceptions.NotFound(f"Not found: Dataset {ref}")
        return dataset

    def get_dataset(self, ref: str, timeout: float | None = None) -> Any:
        return types.SimpleNamespace(dataset_id=self._schema(ref))

    def list_tables(self, ref: str, timeout: float | None = None) -> list[Any]:
        rows = self.emulator.db.execute(
            "SELECT table_name, table_type FROM information_schema.tables "
            "WHERE table_schema = ?", [self._schema(ref)]).fetchall()
        return [types.SimpleNamespace(table_id=n, table_type="VIEW" if "VIEW" in t else "TABLE")
                for n, t in rows]

    def get_table(self, ref: str, timeout: float | None = None) -> Any:
        dataset, table = self._schema(ref), ref.split(".")[2]
        rows = self.emulator.db.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [dataset, table]).fetchall()
        if not rows:
            raise exceptions.NotFound(f"Not found: Table {ref}")
        return types.SimpleNamespace(schema=[bigquery.SchemaField(n, _field_type(t))
                                             for n, t in rows])


class Emulator:
    """One in-memory DuckDB database; each BigQuery dataset is a schema of it."""

    def __init__(self) -> None:
        self.db = duckdb.connect(":memory:")
        self.datasets: set[str] = set()

    def client(self, project: str, info: dict[str, Any], location: str | None) -> Client:
        assert info["client_email"] and info["private_key"]  # what the driver passes on
        return Client(self, project)

    def close(self) -> None:
        self.db.close()
