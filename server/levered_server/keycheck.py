"""The secret-key check: a server starts only with the key that sealed the stored credentials.

The first server to start stores a token of a fixed text sealed under its key
(`server_meta.secret_key_check`). A later server (another replica, a restart) whose keys open
neither that token nor the stored credentials refuses to start, instead of answering 500 on
every warehouse call. When a previous key opens them, the server re-seals every stored
credential and the check value under its current key: rotation is "new key plus previous keys
everywhere, restart, later drop the previous keys".

All of it runs in one transaction that holds a PostgreSQL advisory lock, so replicas starting
at once take turns; the second finds everything sealed under the current key and changes
nothing (SQLite has one server per data directory anyway).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Any

from sqlalchemy import Connection, insert, select, update

from levered_server.clock import utcnow
from levered_server.errors import StartRefused
from levered_server.secretbox import SecretBox
from levered_server.store.db import Store
from levered_server.store.models import ServerMeta, WarehouseConnection

log = logging.getLogger("levered_server")
CHECK = "secret_key_check"
# A random seed for `SecretBox.derive` (the managed warehouses' reader passwords), sealed: every
# replica derives the same values whichever of the current or previous keys it holds, so a
# rotation changes no derived password.
DERIVE_SEED = "derive_seed"
CHECK_TEXT = {"levered": "secret key check"}
# Every column that holds a SecretBox token: re-sealed on rotation.
SEALED: tuple[tuple[Any, str], ...] = ((WarehouseConnection, "credentials_encrypted"),)
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"levered:secret-key-check").digest()[:8], "big",
                           signed=True)


class KeyMismatch(StartRefused):
    """This server's keys open neither the check value nor the stored credentials."""

    def __init__(self, box: SecretBox) -> None:
        super().__init__(
            f"this replica's secret key ({box.source}) differs from the one that encrypted the "
            "stored credentials; set the same LEVERED_SECRET_KEY on every replica (to rotate, "
            "the old one in LEVERED_SECRET_KEY_PREVIOUS)")


def verify_secret_key(store: Store, box: SecretBox) -> int:
    """Check `box` against the state database; re-seal what a previous key sealed.

    :returns: how many stored credentials were re-sealed under the current key.
    :raises KeyMismatch: the stored check value (or, before there is one, every stored
        credential) opens with none of the box's keys.
    """
    with store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        check = conn.execute(select(ServerMeta.value).where(ServerMeta.key == CHECK)).scalar()
        if check is not None and not box.opens(check):
            raise KeyMismatch(box)
        resealed = _reseal(conn, box, first=check is None)
        if check is None:
            conn.execute(insert(ServerMeta).values(key=CHECK, value=box.seal(CHECK_TEXT),
                                                   updated_at=utcnow()))
        elif not box.opens(check, current_only=True):
            conn.execute(update(ServerMeta).where(ServerMeta.key == CHECK).values(
                value=box.seal(CHECK_TEXT), updated_at=utcnow()))
        _derive_seed(conn, box)
    if resealed:
        log.warning("re-sealed %d stored warehouse credentials under the current secret key "
                    "(%s); the previous keys can be dropped once every replica runs with it",
                    resealed, box.source)
    return resealed


def _reseal(conn: Connection, box: SecretBox, *, first: bool) -> int:
    """Re-seal tokens that only a previous key opens; warn about those no key opens.

    With no check value yet (`first`), stored tokens of which none opens mean another key.
    """
    resealed = opened = unreadable = 0
    for model, column in SEALED:
        col = getattr(model, column)
        rows = conn.execute(select(model.id, model.organization_id, col)
                            .where(col.is_not(None))).all()
        for row_id, org_id, token in rows:
            if box.opens(token, current_only=True):
                opened += 1
            elif box.opens(token):
                conn.execute(update(model).where(model.id == row_id)
                             .values({column: box.reseal(token)}))
                opened += 1
                resealed += 1
            else:
                unreadable += 1
                log.warning("%s %s of organization %s was sealed under a key this server does "
                            "not have: add that key to LEVERED_SECRET_KEY_PREVIOUS, or connect "
                            "the warehouse again", model.__tablename__, row_id, org_id)
    if first and unreadable and not opened:
        raise KeyMismatch(box)
    return resealed


def _derive_seed(conn: Connection, box: SecretBox) -> None:
    """Load (or, on the first start, create) the sealed derive seed into `box`."""
    token = conn.execute(select(ServerMeta.value).where(ServerMeta.key == DERIVE_SEED)).scalar()
    if token is None:
        seed = secrets.token_hex(32)
        conn.execute(insert(ServerMeta).values(key=DERIVE_SEED, value=box.seal({"seed": seed}),
                                               updated_at=utcnow()))
    else:
        seed = str(box.open(token)["seed"])
        if not box.opens(token, current_only=True):
            conn.execute(update(ServerMeta).where(ServerMeta.key == DERIVE_SEED).values(
                value=box.reseal(token), updated_at=utcnow()))
    box.use_derive_seed(seed)
