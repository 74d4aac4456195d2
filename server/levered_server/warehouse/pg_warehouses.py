"""The PostgreSQL server holding the managed warehouses: logins, provisioning on first use,
and the pool of the server's writer connections. One per running server (`WarehouseManager`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from levered_server.secretbox import SecretBox
from levered_server.warehouse.driver_api import WarehouseFailure
from levered_server.warehouse.pg_provision import (
    database_name,
    missing_privileges,
    provision,
    reader_role,
    refusal,
)
from levered_server.warehouse.pg_writers import WriterPool

WRITERS = 4  # writer connections per process, in use or idle (max_connections is shared)


# Set per connection by the server: `options` of the URL would carry the state store's
# search_path into every warehouse session.
_OWN = ("options", "connect_timeout", "application_name")


def libpq_params(url: str) -> tuple[dict[str, Any], str]:
    """Connection parameters of a SQLAlchemy PostgreSQL URL (host, port, user, password and
    query parameters such as sslmode, without its database), and its database name."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    params: dict[str, Any] = {k: v for k, v in u.query.items() if k not in _OWN}
    params.update(host=u.host, port=u.port, user=u.username, password=u.password)
    return {k: v for k, v in params.items() if v is not None}, u.database or "postgres"


class PgWarehouses:
    """Managed warehouses on one PostgreSQL server, for one server process."""

    def __init__(self, url: str, secrets: SecretBox | None, *, timeout: float,
                 writers: int = WRITERS) -> None:
        self.params, self.maintenance_db = libpq_params(url)
        self.secrets = secrets
        self.timeout = timeout
        self.writers = WriterPool(self._owner, size=writers)
        self._ensured: set[str] = set()
        self._lock = threading.Lock()

    def _owner(self, dbname: str, *, autocommit: bool = False) -> Any:
        """A connection of the server's own user (owner of the warehouses)."""
        import psycopg

        ms = max(1, int(self.timeout * 1000))
        return psycopg.connect(**{**self.params, "dbname": dbname}, autocommit=autocommit,
                               connect_timeout=max(1, int(self.timeout)),
                               application_name="levered-server",
                               options=f"-c statement_timeout={ms} -c TimeZone=UTC")

    def _password(self, org_id: str) -> str:
        if self.secrets is None:
            raise WarehouseFailure("no secret key to derive the reader role's password from")
        return self.secrets.derive(f"managed-warehouse-reader:{reader_role(org_id)}")

    def ensure(self, org_id: str) -> None:
        """Provision the organization's warehouse unless this process has done it already.

        :raises WarehouseFailure: unreachable, or the server's user may not create it.
        """
        if org_id in self._ensured:
            return
        import psycopg

        with self._lock:
            if org_id in self._ensured:
                return
            ms = max(1, int(self.timeout * 1000))
            try:
                with self._owner(self.maintenance_db, autocommit=True) as maintenance:
                    provision(maintenance, self._owner, org_id, self._password(org_id), ms)
            except psycopg.Error as exc:
                raise WarehouseFailure(
                    f"cannot create the managed warehouse: {str(exc).strip()}") from None
            self._ensured.add(org_id)

    def forget_if_gone(self, org_id: str, exc: Exception) -> None:
        """Provision again on next use when the database or role was dropped meanwhile."""
        if "does not exist" in str(exc):
            self._ensured.discard(org_id)

    def reader_login(self, org_id: str) -> dict[str, Any]:
        """libpq parameters of the organization's read-only role, provisioned first."""
        self.ensure(org_id)
        return {**self.params, "dbname": database_name(org_id), "user": reader_role(org_id),
                "password": self._password(org_id)}

    @contextlib.contextmanager
    def writer(self, org_id: str) -> Iterator[Any]:
        """The server's connection to the organization's database, in one transaction.

        :raises WarehouseFailure: any database error (the transaction is rolled back).
        """
        import psycopg

        with contextlib.ExitStack() as stack:
            try:
                conn = self._lease(stack, org_id)
                try:
                    yield conn
                    conn.commit()
                except BaseException:
                    with contextlib.suppress(Exception):
                        conn.rollback()
                    raise
            except psycopg.Error as exc:
                self.forget_if_gone(org_id, exc)
                raise WarehouseFailure(f"writing to the managed warehouse failed: "
                                       f"{str(exc).strip()}") from None

    def _lease(self, stack: contextlib.ExitStack[Any], org_id: str) -> Any:
        """A pooled writer connection; when the database was dropped since this process
        provisioned it, provisioned again first (nothing was sent, so retrying is safe)."""
        import psycopg

        self.ensure(org_id)
        try:
            return stack.enter_context(self.writers.connection(database_name(org_id)))
        except psycopg.OperationalError as exc:
            if "does not exist" not in str(exc):
                raise
        self._ensured.discard(org_id)
        self.ensure(org_id)
        return stack.enter_context(self.writers.connection(database_name(org_id)))

    def check(self) -> str | None:
        """Why the server's user cannot create warehouses, or None when it can.

        :raises WarehouseFailure: the server is unreachable.
        """
        import psycopg

        try:
            with self._owner(self.maintenance_db, autocommit=True) as conn:
                missing = missing_privileges(conn)
                user = conn.execute("SELECT current_user").fetchone()[0]
        except psycopg.Error as exc:
            raise WarehouseFailure(str(exc).strip()) from None
        return refusal(user, missing) if missing else None

    def close(self) -> None:
        """Close the pooled writer connections."""
        self.writers.close()
