"""Tokens in the store: issue, rotate, revoke, always by SHA-256 hash (API.md 1.3, 4.1)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from levered_server.clock import new_id, utcnow
from levered_server.services.identity import generate_secret, hash_secret
from levered_server.store.models import AccessToken, IssuedAccessToken, RefreshToken, TokenFamily

CLIENT_ID = "levered-cli"
SCOPE = "api"
ACCESS_TTL = dt.timedelta(hours=24)
REFRESH_TTL = dt.timedelta(days=30)
CODE_TTL = dt.timedelta(minutes=10)
DEVICE_TTL = dt.timedelta(seconds=600)
DEVICE_INTERVAL = 5
PURGE_AFTER = dt.timedelta(days=1)  # expired codes are deleted this long after expiry
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def new_access_token(_request: Any = None) -> str:
    """`lva_` + 43 base62 characters."""
    return generate_secret("lva_")


def new_refresh_token(_request: Any = None) -> str:
    """`lvr_` + 43 base62 characters."""
    return generate_secret("lvr_")


@dataclasses.dataclass(frozen=True)
class Grantee:
    """Whom a code or device authorization was granted to."""

    user_id: str
    organization_id: str
    scope: str = SCOPE


def open_family(s: Session, grantee: Grantee, grant_type: str) -> str:
    """Start the token family of one login; return its id."""
    family = TokenFamily(id=new_id(), organization_id=grantee.organization_id,
                         user_id=grantee.user_id, client_id=CLIENT_ID, scope=grantee.scope,
                         grant_type=grant_type, created_at=utcnow())
    s.add(family)
    s.flush()
    return family.id


def store_tokens(s: Session, family_id: str, access: str, refresh: str | None) -> None:
    """Store the hashes of a fresh access token (and refresh token) of a family."""
    family = s.get(TokenFamily, family_id)
    assert family is not None
    now = utcnow()
    row = AccessToken(id=new_id(), organization_id=family.organization_id,
                      user_id=family.user_id, token_hash=hash_secret(access),
                      created_at=now, expires_at=now + ACCESS_TTL)
    s.add(row)
    s.flush()
    s.add(IssuedAccessToken(access_token_id=row.id, family_id=family_id))
    if refresh:
        s.add(RefreshToken(id=new_id(), family_id=family_id, token_hash=hash_secret(refresh),
                           created_at=now, expires_at=now + REFRESH_TTL))


def revoke_family(s: Session, family_id: str) -> None:
    """Revoke a login and every token descended from it."""
    now = utcnow()
    s.execute(update(TokenFamily).where(TokenFamily.id == family_id,
                                        TokenFamily.revoked_at.is_(None))
              .values(revoked_at=now))
    s.execute(update(RefreshToken).where(RefreshToken.family_id == family_id,
                                         RefreshToken.revoked_at.is_(None))
              .values(revoked_at=now))
    issued = select(IssuedAccessToken.access_token_id).where(
        IssuedAccessToken.family_id == family_id)
    s.execute(update(AccessToken).where(AccessToken.id.in_(issued),
                                        AccessToken.revoked_at.is_(None))
              .values(revoked_at=now), execution_options={"synchronize_session": False})


def use_refresh_token(s: Session, token: str) -> TokenFamily | None:
    """Consume a refresh token for rotation; return its live family, or None.

    An unknown, expired or revoked token gives None. A token that was already rotated is
    a replay (theft): its whole family is revoked.
    """
    row = s.scalars(select(RefreshToken).where(RefreshToken.token_hash == hash_secret(token))
                    ).first()
    if row is None:
        return None
    family = s.get(TokenFamily, row.family_id)
    if row.rotated_at is not None:
        revoke_family(s, row.family_id)
        return None
    if family is None or family.revoked_at is not None or row.revoked_at is not None \
            or row.expires_at <= utcnow():
        return None
    claimed = s.execute(update(RefreshToken).where(RefreshToken.id == row.id,
                                                   RefreshToken.rotated_at.is_(None))
                        .values(rotated_at=utcnow()))
    if getattr(claimed, "rowcount", 0) != 1:  # a concurrent use won the race: also a replay
        revoke_family(s, row.family_id)
        return None
    return family


def revoke_token(s: Session, token: str) -> None:
    """RFC 7009: a refresh token revokes its family, an access token only itself."""
    digest = hash_secret(token)
    refresh = s.scalars(select(RefreshToken).where(RefreshToken.token_hash == digest)).first()
    if refresh is not None:
        revoke_family(s, refresh.family_id)
        return
    s.execute(update(AccessToken).where(AccessToken.token_hash == digest,
                                        AccessToken.revoked_at.is_(None))
              .values(revoked_at=utcnow()), execution_options={"synchronize_session": False})
