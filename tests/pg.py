"""The PostgreSQL the tests use: `LEVERED_TEST_POSTGRES_URL`, else one answering on 127.0.0.1:5432.

So a fresh clone's `./dev test` runs the PostgreSQL tests wherever PostgreSQL answers (user
`postgres`, database `test`, no password: `.ci/run`'s setup), and skips them elsewhere.
"""

from __future__ import annotations

import os

LOCAL_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _probe(url: str) -> bool:
    try:
        import psycopg

        psycopg.connect(url.replace("+psycopg", ""), connect_timeout=1).close()
    except Exception:  # noqa: BLE001 - no driver, nothing listening, no such database: no tests
        return False
    return True


def find_postgres() -> str | None:
    """The SQLAlchemy URL of the test PostgreSQL, or None when there is none."""
    configured = os.environ.get("LEVERED_TEST_POSTGRES_URL")
    if configured:
        return configured
    return LOCAL_URL if _probe(LOCAL_URL) else None


PG_URL = find_postgres()
SKIP_REASON = "no PostgreSQL: LEVERED_TEST_POSTGRES_URL unset and none answers on 127.0.0.1:5432"
