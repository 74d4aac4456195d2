"""Secret keys shared by configuration: key file, previous keys, the stored check value, rotation."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from levered_server.bootstrap import create_organization
from levered_server.clock import utcnow
from levered_server.errors import StartRefused
from levered_server.keycheck import KeyMismatch, verify_secret_key
from levered_server.secretbox import SecretBox
from levered_server.settings import Settings
from levered_server.store import open_store
from levered_server.store.models import ServerMeta, WarehouseConnection
from tests.pg import PG_URL, SKIP_REASON
from tests.server.conftest import BACKENDS, database_url, make_settings, running

SERVER = str(Path(sys.executable).with_name("levered-server"))
NOWHERE = "postgresql+psycopg://levered:hunter2@127.0.0.1:1/levered"
needs_pg = pytest.mark.skipif(not PG_URL, reason=SKIP_REASON)


def box(data_dir: Path, key: str | None, *previous: str, url: str | None = None) -> SecretBox:
    return SecretBox.from_settings(Settings(data_dir=data_dir, database_url=url, secret_key=key,
                                            secret_key_previous=previous))


def seal_credentials(store, settings: Settings, secrets: SecretBox, n: int) -> list[str]:
    """`n` organizations with a bring-your-own warehouse whose credentials `secrets` sealed."""
    ids = []
    for i in range(n):
        org = create_organization(store=store, settings=settings.replace(embedded_warehouse=False),
                                  name=f"org-{uuid.uuid4().hex[:8]}")
        with store.system_session() as s:
            s.add(WarehouseConnection(
                id=str(uuid.uuid4()), organization_id=org["id"], provider="postgres",
                credentials_encrypted=secrets.seal({"password": f"pw{i}"}),
                created_at=utcnow(), updated_at=utcnow()))
        ids.append(org["id"])
    return ids


def tokens(store) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(WarehouseConnection.credentials_encrypted)
                                 .where(WarehouseConnection.credentials_encrypted.is_not(None))).scalars())


def test_postgres_state_without_a_key_is_refused_in_one_line(tmp_path):
    with pytest.raises(StartRefused, match="set LEVERED_SECRET_KEY .*--generate-secret-key"):
        box(tmp_path, None, url=NOWHERE)
    assert not (tmp_path / "secret.key").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVERED_SECRET_KEY")}
    done = subprocess.run([SERVER, "--data-dir", str(tmp_path), "--database-url", NOWHERE],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "PostgreSQL" in done.stderr and "hunter2" not in done.stderr + done.stdout
    generated = subprocess.run([SERVER, "--generate-secret-key"], capture_output=True, text=True, timeout=60)
    assert generated.returncode == 0 and len(generated.stdout.strip()) == 43


def test_key_file_is_the_key_and_conflicts_are_refused(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("s3cret\n")
    from_file = SecretBox.from_settings(Settings(data_dir=tmp_path, database_url=NOWHERE,
                                                 secret_key_file=key_file))
    assert box(tmp_path, "s3cret", url=NOWHERE).open(from_file.seal({"a": 1})) == {"a": 1}
    assert from_file.source == f"LEVERED_SECRET_KEY_FILE {key_file}"
    for settings, message in [
        (Settings(data_dir=tmp_path, secret_key="x", secret_key_file=key_file), "not both"),
        (Settings(data_dir=tmp_path, secret_key_file=tmp_path / "missing"), "cannot read"),
    ]:
        with pytest.raises(StartRefused, match=message):
            SecretBox.from_settings(settings)
    key_file.write_text("\n")
    with pytest.raises(StartRefused, match="is empty"):
        SecretBox.from_settings(Settings(data_dir=tmp_path, secret_key_file=key_file))


def test_previous_keys_open_but_never_seal_and_derive_uses_the_current_key(tmp_path):
    old, new = box(tmp_path, "old"), box(tmp_path, "new", "old")
    token = old.seal({"password": "pw"})
    assert new.open(token) == {"password": "pw"} and new.opens(token) and not new.opens(token, current_only=True)
    assert not box(tmp_path, "old").opens(new.seal({"a": 1}))
    assert box(tmp_path, "new").opens(new.reseal(token), current_only=True)
    assert new.derive("org-1") == box(tmp_path, "new").derive("org-1") != old.derive("org-1")


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotation_reseals_once_and_the_check_refuses_other_keys(tmp_path, backend):
    with database_url(backend) as url:
        settings = make_settings(tmp_path, url)
        store = open_store(settings.sqlalchemy_url)
        try:
            k1 = box(tmp_path, "k1")
            assert verify_secret_key(store, k1) == 0  # the first start writes the check value
            seal_credentials(store, settings, k1, 3)
            with pytest.raises(KeyMismatch, match="differs from the one that encrypted"):
                verify_secret_key(store, box(tmp_path, "k2"))
            assert verify_secret_key(store, box(tmp_path, "k2", "k1")) == 3
            assert all(box(tmp_path, "k2").opens(t, current_only=True) for t in tokens(store))
            assert verify_secret_key(store, box(tmp_path, "k2", "k1")) == 0  # idempotent
            assert verify_secret_key(store, box(tmp_path, "k2")) == 0  # the previous key dropped
            with pytest.raises(KeyMismatch):
                verify_secret_key(store, box(tmp_path, "k1"))
        finally:
            store.dispose()



@pytest.mark.parametrize("backend", BACKENDS)
def test_derived_secrets_survive_a_rotation(tmp_path, backend):
    """The managed warehouses' reader passwords come from a sealed seed, not from the key, so
    replicas on the old and the new key derive the same during a rolling rotation."""
    with database_url(backend) as url:
        store = open_store(make_settings(tmp_path, url).sqlalchemy_url)
        try:
            old = box(tmp_path, "k1")
            verify_secret_key(store, old)
            rotated = box(tmp_path, "k2", "k1")
            verify_secret_key(store, rotated)
            new_only = box(tmp_path, "k2")
            verify_secret_key(store, new_only)
            assert old.derive("org-1") == rotated.derive("org-1") == new_only.derive("org-1")
            assert old.derive("org-1") != old.derive("org-2")
        finally:
            store.dispose()

def test_a_data_dir_key_left_behind_is_re_sealed_under_the_configured_key(tmp_path):
    settings = make_settings(tmp_path, None)
    store = open_store(settings.sqlalchemy_url)
    try:
        local = box(tmp_path, None)  # creates <data dir>/secret.key
        seal_credentials(store, settings, local, 2)
        # As before this check existed: credentials, no check value.
        with store.engine.begin() as conn:
            conn.execute(delete(ServerMeta))
        with pytest.raises(KeyMismatch):
            verify_secret_key(store, SecretBox.for_settings("configured", tmp_path / "elsewhere"))
        assert verify_secret_key(store, box(tmp_path, "configured")) == 2
        assert verify_secret_key(store, SecretBox.for_settings("configured", tmp_path / "elsewhere")) == 0
    finally:
        store.dispose()


@needs_pg
def test_replicas_with_different_keys_on_postgres(tmp_path):
    with database_url("postgres") as url:
        with running(make_settings(tmp_path / "a", url, secret_key="k1"), "postgres") as a:
            seal_credentials(a.runtime.store, a.settings, a.runtime.secrets, 2)
            with pytest.raises(KeyMismatch):
                with running(make_settings(tmp_path / "b", url, secret_key="k2"), "postgres"):
                    pass
            env = {**os.environ, "LEVERED_SECRET_KEY": "k2", "LEVERED_HOME": str(tmp_path / "home")}
            done = subprocess.run([SERVER, "--data-dir", str(tmp_path / "c"), "--database-url", url],
                                  env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
            assert done.stderr.strip().splitlines() == [
                "levered-server: this replica's secret key (LEVERED_SECRET_KEY) differs from the one that "
                "encrypted the stored credentials; set the same LEVERED_SECRET_KEY on every replica (to "
                "rotate, the old one in LEVERED_SECRET_KEY_PREVIOUS)"]
            assert not (tmp_path / "c" / "server.json").exists()
            rotated = make_settings(tmp_path / "b", url, secret_key="k2", secret_key_previous=("k1",))
            with running(rotated, "postgres") as b:
                assert b.client.get("/readyz").json()["state_backend"] == "postgresql"
                assert all(b.runtime.secrets.opens(t, current_only=True) for t in tokens(b.runtime.store))


@needs_pg
def test_two_replicas_rotating_at_once_reseal_each_credential_once(tmp_path):
    with database_url("postgres") as url:
        settings = make_settings(tmp_path, url)
        stores = [open_store(url), open_store(url)]
        try:
            verify_secret_key(stores[0], box(tmp_path, "k1"))
            seal_credentials(stores[0], settings, box(tmp_path, "k1"), 5)
            barrier, counts, errors = threading.Barrier(2), [], []

            def rotate(store) -> None:
                barrier.wait()
                try:
                    counts.append(verify_secret_key(store, box(tmp_path, "k2", "k1")))
                except Exception as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=rotate, args=(s,)) for s in stores]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert errors == [] and sorted(counts) == [0, 5]
            assert all(box(tmp_path, "k2").opens(t, current_only=True) for t in tokens(stores[0]))
        finally:
            for s in stores:
                s.dispose()
