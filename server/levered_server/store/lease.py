"""Leases that make a job run once across replicas: PostgreSQL advisory locks.

A lease is a session-level `pg_try_advisory_lock` held on its own connection for the job's
duration. A replica that dies (even `kill -9`) loses its connection, and PostgreSQL releases
the lock with it, so the lease expires with the process; nothing is left to clean up. On
SQLite there is one server per data directory (enforced at start), so the process's own
bookkeeping is the lease and this is a no-op.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

from levered_server.store.db import Store


class LeaseHeld(Exception):
    """Another process holds the lease."""


def lease_key(name: str) -> int:
    """The advisory-lock key of a name: a signed 64-bit integer from its SHA-256."""
    return int.from_bytes(hashlib.sha256(f"levered:{name}".encode()).digest()[:8], "big",
                          signed=True)


@contextlib.contextmanager
def lease(store: Store, name: str, *, wait: bool = False) -> Iterator[None]:
    """Hold the lease `name` for the block; when another process holds it, raise
    :class:`LeaseHeld` at once, or with `wait` wait for it."""
    if store.engine.dialect.name != "postgresql":
        yield
        return
    key = lease_key(name)
    # Autocommit: the lease must not keep a transaction open for the whole job.
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if wait:
            conn.exec_driver_sql("SELECT pg_advisory_lock(%s)", (key,))
        elif not conn.exec_driver_sql("SELECT pg_try_advisory_lock(%s)", (key,)).scalar():
            raise LeaseHeld(name)
        try:
            yield
        finally:
            try:
                conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (key,))
            except Exception:  # noqa: BLE001 - closing the session releases it instead
                conn.invalidate()
