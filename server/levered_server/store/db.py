"""Engine, sessions scoped to one organization, and migrations on start."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker, with_loader_criteria

from levered_server.store.models import OrgOwned

SYSTEM = "*system*"
_MIGRATIONS = Path(__file__).parent / "migrations"


class EncodedJSON(str):
    """A JSON document encoded already (by a worker process): a JSON column stores it as is."""


def _dump_json(value: Any) -> str:
    # The engines' JSON serializer: json.dumps, except for documents encoded already.
    return str(value) if isinstance(value, EncodedJSON) else json.dumps(value)


class ScopeError(RuntimeError):
    """A query on organization-owned rows from a session without a scope (a bug)."""


@event.listens_for(Session, "do_orm_execute")
def _scope_queries(state: ORMExecuteState) -> None:
    # Every ORM SELECT/UPDATE/DELETE on an organization-owned table gets
    # `organization_id = <caller's org>` added here, so no route or service
    # can forget it.
    scope = state.session.info.get("scope")
    if scope is None:
        if state.session.info.get("levered"):
            raise ScopeError("organization-scoped session required")
        return
    if scope == SYSTEM or state.is_column_load or state.is_relationship_load:
        return
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(
            with_loader_criteria(OrgOwned, lambda cls: cls.organization_id == scope,
                                 include_aliases=True))


@event.listens_for(Session, "before_flush")
def _stamp_organization(session: Session, _ctx: Any, _instances: Any) -> None:
    scope = session.info.get("scope")
    for obj in session.new:
        if not isinstance(obj, OrgOwned):
            continue
        if obj.organization_id is None:
            if scope in (None, SYSTEM):
                raise ScopeError("new row without organization")
            obj.organization_id = scope
        elif scope not in (None, SYSTEM) and obj.organization_id != scope:
            raise ScopeError("row of another organization")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    # WAL lets readers run while one writer commits; busy_timeout lets the
    # CLI's `api-key create` write while the server is running.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class Store:
    """The state store: an engine and factories for scoped sessions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._factory = sessionmaker(bind=engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self, org_id: str) -> Iterator[Session]:
        """Open a transaction that sees only rows of organization `org_id`."""
        with self._open(org_id) as s:
            yield s

    @contextlib.contextmanager
    def system_session(self) -> Iterator[Session]:
        """Open an unscoped transaction (bootstrap, auth lookups, public serve)."""
        with self._open(SYSTEM) as s:
            yield s

    @contextlib.contextmanager
    def _open(self, scope: str) -> Iterator[Session]:
        s = self._factory(info={"scope": scope, "levered": True})
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def write_at_once(self, statement: Any) -> int:
        """Run one write statement as a transaction of its own; return the rows it changed.

        For background writes beside serving. On SQLite the statement takes the write lock,
        writes and commits inside one C call with the GIL released. An ORM session holds the
        lock from its first write to its commit, and a background thread needs the GIL back
        in between, waiting up to the interpreter's 5 ms switch interval behind the event
        loop, while the loop's serve commits wait for the lock (docs/benchmarks.md).
        """
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return int(conn.execute(statement).rowcount)

    def migrate(self) -> None:
        """Bring the schema to the latest revision (idempotent)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                # Replicas starting together: one migrates, the others wait, then find the
                # schema at head (released with the transaction).
                from levered_server.store.lease import lease_key

                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)",
                                     (lease_key("migrate"),))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def ping(self) -> bool:
        """Return True when the database answers a trivial query."""
        from sqlalchemy import text

        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - health check reports, never raises
            return False

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def open_store(url: str, *, migrate: bool = True, **engine_args: Any) -> Store:
    """Create the engine for `url` (SQLite file or PostgreSQL) and migrate it."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10},
                               pool_size=20, max_overflow=20, json_serializer=_dump_json,
                               **engine_args)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True,
                               json_serializer=_dump_json, **engine_args)
    store = Store(engine)
    if migrate:
        store.migrate()
    return store
