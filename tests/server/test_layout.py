"""House rules for the server package: layering, module size, schema = migrations."""

from __future__ import annotations

import ast
import pathlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import levered_server
from levered_server.store.models import Base

PKG = pathlib.Path(levered_server.__file__).parent


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_routers_do_not_touch_the_database():
    for path in (PKG / "api").glob("*.py"):
        bad = {m for m in _imports(path) if m.startswith(("sqlalchemy", "levered_server.store",
                                                          "duckdb", "psycopg"))}
        assert not bad, f"{path.name} imports {bad}"


def test_server_never_imports_the_cli_core():
    # cli.py is the `levered server` command group: the CLI's plugin, loaded only by it.
    for path in PKG.rglob("*.py"):
        if path.name == "cli.py" and path.parent == PKG:
            continue
        assert not {m for m in _imports(path) if m.startswith("levered_core")}, path


def test_engine_imports_no_web_or_database():
    for path in (PKG / "engine").glob("*.py"):
        assert not {m for m in _imports(path)
                    if m.startswith(("fastapi", "starlette", "sqlalchemy", "duckdb"))}, path


def test_modules_stay_small():
    for path in PKG.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        assert len(path.read_text().splitlines()) <= 400, path


def test_migrations_match_the_models(server):
    with server.runtime.store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


@pytest.mark.parametrize("module", ["levered_server.app", "levered_server.control",
                                    "levered_server.bootstrap"])
def test_public_modules_import(module):
    __import__(module)
