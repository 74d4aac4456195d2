"""Fixtures: the real app on real SQLite (and PostgreSQL wherever it answers: tests/pg.py)
and real DuckDB; each test gets its own organization, so tests never see each other's rows."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    # Starlette's TestClient warns that httpx should become httpx2; not our concern.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from levered_server.app import create_app
from levered_server.bootstrap import create_organization
from levered_server.services.identity import create_api_key
from levered_server.settings import Settings
from tests.pg import PG_URL

TEST_SECRET_KEY = "levered-test-secret-key"  # PostgreSQL state needs a configured key
BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])


def pg_exec(sql: str) -> None:
    """Run one statement on the test PostgreSQL in autocommit."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(PG_URL, isolation_level="AUTOCOMMIT")  # type: ignore
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(sql))
    engine.dispose()


@contextlib.contextmanager
def database_url(backend: str) -> Iterator[str | None]:
    """None for SQLite (file in the data dir); a fresh PostgreSQL schema otherwise."""
    if backend == "sqlite":
        yield None
        return
    schema = "lvtest_" + uuid.uuid4().hex[:12]
    pg_exec(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"  # type: ignore[operator]
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        drop_managed_warehouses(schema)
        pg_exec(f"DROP SCHEMA {schema} CASCADE")


def drop_managed_warehouses(schema: str) -> None:
    """Drop the PostgreSQL managed warehouses (database, reader role) of the schema's
    organizations."""
    import sqlalchemy

    from levered_server.warehouse.pg_provision import database_name, reader_role

    engine = sqlalchemy.create_engine(PG_URL, isolation_level="AUTOCOMMIT")  # type: ignore
    with engine.connect() as conn:
        try:
            orgs = conn.execute(sqlalchemy.text(f"SELECT id FROM {schema}.organizations")).scalars()
        except sqlalchemy.exc.ProgrammingError:  # never migrated
            orgs = []
        for org_id in list(orgs):
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {database_name(org_id)} "
                                         "WITH (FORCE)"))
            conn.execute(sqlalchemy.text(f"DROP ROLE IF EXISTS {reader_role(org_id)}"))
    engine.dispose()


def make_settings(data_dir: Path, url: str | None, **changes: Any) -> Settings:
    """Settings for tests: no rate limits."""
    # Most tests drive /api-keys with an API key; test_oauth checks the default (403).
    base = Settings(data_dir=data_dir, database_url=url, rate_limit_per_minute=0,
                    serve_rate_limit_per_minute=0,
                    query_timeout_seconds=10, api_keys_manage_keys=True,
                    secret_key=TEST_SECRET_KEY if url else None)
    return base.replace(**changes)


@dataclasses.dataclass
class Server:
    app: Any
    client: TestClient
    settings: Settings
    backend: str

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime


@contextlib.contextmanager
def running(settings: Settings, backend: str) -> Iterator[Server]:
    """The app with its lifespan running (migrations, bootstrap, exposure writer)."""
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Server(app=app, client=client, settings=settings, backend=backend)


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: Any, tmp_path_factory: Any) -> Iterator[Server]:
    with database_url(request.param) as url:
        settings = make_settings(tmp_path_factory.mktemp("data"), url)
        with running(settings, request.param) as srv:
            yield srv


@dataclasses.dataclass
class Org:
    """An organization with an API key, and a client that sends it."""

    id: str
    name: str
    key: str
    key_id: str
    server: Server

    def request(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.key}", **kw.pop("headers", {})}
        return self.server.client.request(method, path, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


def new_org(server: Server, name: str | None = None) -> Org:
    """Create an organization (with its embedded warehouse) and an API key for it."""
    rt = server.runtime
    org = create_organization(store=rt.store, settings=rt.settings,
                              name=name or f"org-{uuid.uuid4().hex[:8]}")
    with rt.store.session(org["id"]) as s:
        key = create_api_key(session=s, name="test", user_id=None)
    return Org(id=org["id"], name=org["name"], key=key["secret"], key_id=key["id"],
               server=server)


@pytest.fixture
def org(server: Server) -> Org:
    return new_org(server)


@pytest.fixture
def other_org(server: Server) -> Org:
    return new_org(server)


def assert_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    """Check the error envelope (docs/api.md 1.5) and return its `error` object."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "meta"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["meta"]["request_id"] == resp.headers["x-request-id"]
    return dict(body["error"])


def field_codes(resp: Any) -> dict[str, str]:
    """`{field: code}` of a 422 validation_error."""
    err = assert_error(resp, 422, "validation_error")
    return {f["field"]: f["code"] for f in err["details"]["fields"]}

