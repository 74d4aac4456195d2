"""Credentials: API keys and access tokens, hashed; who is calling; `/me`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import secrets
import string
from typing import Any

from sqlalchemy import select, update

from levered_server.clock import canonical_uuid, iso_s, new_id, utcnow
from levered_server.errors import Forbidden, NotFound, Unauthorized
from levered_server.store import Store
from levered_server.store.models import AccessToken, ApiKey, Organization, User

_BASE62 = string.digits + string.ascii_letters
SECRET_CHARS = 43  # 43 base62 characters carry 256 bits
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
PASSWORD_HASH_COST = 17  # log2 of scrypt's N: 128 MiB and about 1 s per hash


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who is calling: one organization, and a user for access tokens."""

    organization_id: str
    kind: str  # "session" | "api_key"
    api_key_id: str | None = None
    user_id: str | None = None
    expires_at: dt.datetime | None = None


def generate_secret(prefix: str) -> str:
    """Return `prefix` + 43 random base62 characters."""
    return prefix + "".join(secrets.choice(_BASE62) for _ in range(SECRET_CHARS))


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a secret: the only form the server stores."""
    return hashlib.sha256(secret.encode()).hexdigest()


def password_hash_cost() -> int:
    """log2 of scrypt's N for new password hashes: 17, or `LEVERED_PASSWORD_HASH_COST`.

    The variable exists for the test suite, which creates many users; a server should
    leave it unset.

    :raises ValueError: the variable is not an integer from 10 to 20.
    """
    raw = os.environ.get("LEVERED_PASSWORD_HASH_COST", "").strip()
    if not raw:
        return PASSWORD_HASH_COST
    if not raw.isdigit() or not 10 <= int(raw) <= 20:
        raise ValueError(f"LEVERED_PASSWORD_HASH_COST={raw!r}: use an integer from 10 to 20 "
                         f"(log2 of scrypt's N; unset it for the default {PASSWORD_HASH_COST})")
    return int(raw)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # OpenSSL needs about 128 * r * N bytes; its default limit (32 MiB) is below N=2**17.
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                          maxmem=128 * r * n + 16 * 2**20)


def hash_password(password: str) -> str:
    """Hash a password with scrypt, N=2**17, r=8, p=1 (for the OAuth login page).

    The parameters are stored in the hash, so older hashes (N=2**14) keep verifying.
    """
    n = 2 ** password_hash_cost()
    salt = secrets.token_bytes(16)
    return f"scrypt${n}$8$1${salt.hex()}${_scrypt(password, salt, n, 8, 1).hex()}"


def dummy_password_hash() -> str:
    """A hash no password matches, at today's cost: checked for unknown emails."""
    return f"scrypt${2 ** password_hash_cost()}$8$1${'0' * 32}${'0' * 128}"


def verify_password(password: str, stored: str) -> bool:
    """Check a password against `hash_password` output in constant time."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return secrets.compare_digest(got.hex(), digest)


def _credential(authorization: str | None, x_api_key: str | None) -> str | None:
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Malformed Authorization header; use 'Bearer <token>'.")
        return token.strip()
    if x_api_key is not None:
        return x_api_key.strip()
    return None


def authenticate(*, store: Store, authorization: str | None, x_api_key: str | None) -> Caller:
    """Resolve the credential of a request (Authorization wins over X-API-Key).

    :raises Unauthorized: missing, malformed, unknown, expired or revoked.
    """
    token = _credential(authorization, x_api_key)
    if not token:
        raise Unauthorized("Not authenticated")
    digest = hash_secret(token)
    now = utcnow()
    with store.system_session() as s:
        if token.startswith("lvk_"):
            key = s.scalars(select(ApiKey).where(ApiKey.secret_hash == digest,
                                                 ApiKey.revoked_at.is_(None))).first()
            if key is not None:
                if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
                    s.execute(update(ApiKey).where(ApiKey.id == key.id)
                              .values(last_used_at=now.replace(microsecond=0)))
                return Caller(organization_id=key.organization_id, kind="api_key",
                              api_key_id=key.id)
        elif token.startswith("lva_"):
            tok = s.scalars(select(AccessToken).where(AccessToken.token_hash == digest,
                                                      AccessToken.revoked_at.is_(None))).first()
            if tok is not None and tok.expires_at > now:
                return Caller(organization_id=tok.organization_id, kind="session",
                              user_id=tok.user_id, expires_at=tok.expires_at)
    raise Unauthorized("Invalid, expired or revoked credential.")


def me(*, store: Store, caller: Caller) -> dict[str, Any]:
    """The body of `GET /api/v2/me`."""
    with store.system_session() as s:
        # Unscoped: a user may act in an organization through a membership (OAuth login).
        org = s.get(Organization, caller.organization_id)
        user = s.get(User, caller.user_id) if caller.user_id else None
        assert org is not None
        return {
            "user": None if user is None else {"id": user.id, "email": user.email,
                                               "name": user.name},
            "organization": {"id": org.id, "name": org.name},
            "auth": {"type": caller.kind, "api_key_id": caller.api_key_id,
                     "expires_at": iso_s(caller.expires_at)},
        }


def require_key_manager(caller: Caller, *, allow_api_keys: bool) -> None:
    """API-key management needs an access token (a leaked key cannot mint keys)."""
    if caller.kind != "session" and not allow_api_keys:
        raise Forbidden("Managing API keys requires a login session, not an API key.")


def _key_public(key: ApiKey, creator: User | None) -> dict[str, Any]:
    return {
        "id": key.id, "name": key.name, "prefix": key.prefix,
        "created_at": iso_s(key.created_at), "last_used_at": iso_s(key.last_used_at),
        "created_by": None if creator is None else {"id": creator.id, "email": creator.email},
    }


def create_api_key(*, session: Any, name: str, user_id: str | None) -> dict[str, Any]:
    """Create a key in the session's organization; the result holds the secret (shown once)."""
    secret = generate_secret("lvk_")
    key = ApiKey(id=new_id(), name=name, prefix=secret[:12], secret_hash=hash_secret(secret),
                 created_by_user_id=user_id, created_at=utcnow())
    session.add(key)
    session.flush()
    creator = session.get(User, user_id) if user_id else None
    return {**_key_public(key, creator), "secret": secret}


def add_api_key(*, store: Store, caller: Caller, name: str) -> dict[str, Any]:
    """`POST /api/v2/api-keys`."""
    with store.session(caller.organization_id) as s:
        return create_api_key(session=s, name=name, user_id=caller.user_id)


def list_api_keys(*, store: Store, caller: Caller) -> list[dict[str, Any]]:
    """Live keys of the caller's organization, newest first."""
    with store.session(caller.organization_id) as s:
        keys = s.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None))
                         .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())).all()
        users = {u.id: u for u in s.scalars(select(User)).all()}
        return [_key_public(k, users.get(k.created_by_user_id or "")) for k in keys]


def revoke_api_key(*, store: Store, caller: Caller, key_id: str) -> str:
    """Revoke a key now; unknown, foreign or already revoked → 404."""
    kid = canonical_uuid(key_id)
    with store.session(caller.organization_id) as s:
        key = s.scalars(select(ApiKey).where(ApiKey.id == kid,
                                             ApiKey.revoked_at.is_(None))).first()
        if key is None:
            raise NotFound("API key not found.")
        key.revoked_at = utcnow()
        return key.id
