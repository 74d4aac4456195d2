"""oauthlib's `RequestValidator` over the store: one public client, loopback redirects."""

from __future__ import annotations

import ipaddress
import types
import urllib.parse
from typing import Any

from oauthlib.oauth2.rfc6749.errors import InvalidGrantError
from oauthlib.oauth2.rfc8628.request_validator import RequestValidator
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from levered_server.auth import tokens
from levered_server.auth.tokens import CLIENT_ID, SCOPE, Grantee
from levered_server.clock import new_id, utcnow
from levered_server.services.identity import hash_secret
from levered_server.store import Store
from levered_server.store.models import AuthorizationCode, DeviceCode

GRANT_TYPES = ("authorization_code", "refresh_token", tokens.DEVICE_GRANT)
# oauthlib's `DeviceCodeGrant.DEVICE_CODE_*` statuses (RFC 8628 3.5); types-oauthlib lacks them.
AUTHORIZED, PENDING, SLOW_DOWN = "authorized", "authorization_pending", "slow_down"
EXPIRED, DENIED = "expired_token", "access_denied"


def is_loopback_redirect(uri: str | None) -> bool:
    """RFC 8252 loopback: `http://127.0.0.1:<port>/callback` or `http://[::1]:<port>/callback`."""
    if not uri:
        return False
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme != "http" or parts.path != "/callback" or parts.query or parts.fragment:
        return False
    if parts.username or parts.password or port is None or not 1 <= port <= 65535:
        return False
    host = parts.netloc.rsplit(":", 1)[0]
    return host in ("127.0.0.1", "[::1]") and ipaddress.ip_address(host.strip("[]")).is_loopback


class Validator(RequestValidator):
    """Everything oauthlib asks the application, answered from the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- the client ---------------------------------------------------------------------
    def client_authentication_required(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        return False  # a public client (token endpoint auth method "none")

    def authenticate_client_id(self, client_id: str, request: Any, *args: Any,
                               **kwargs: Any) -> bool:
        if client_id != CLIENT_ID:
            return False
        request.client = types.SimpleNamespace(client_id=CLIENT_ID)
        return True

    def validate_client_id(self, client_id: str, request: Any, *args: Any, **kwargs: Any) -> bool:
        return client_id == CLIENT_ID

    def validate_redirect_uri(self, client_id: str, redirect_uri: str, request: Any,
                              *args: Any, **kwargs: Any) -> bool:
        return is_loopback_redirect(redirect_uri)

    def get_default_redirect_uri(self, client_id: str, request: Any, *args: Any,  # type: ignore[override]
                                 **kwargs: Any) -> str | None:
        return None  # redirect_uri is required

    def validate_response_type(self, client_id: str, response_type: str, client: Any,
                               request: Any, *args: Any, **kwargs: Any) -> bool:
        return response_type == "code"

    def validate_grant_type(self, client_id: str, grant_type: str, client: Any, request: Any,
                            *args: Any, **kwargs: Any) -> bool:
        return grant_type in GRANT_TYPES

    def get_default_scopes(self, client_id: str, request: Any, *args: Any,
                           **kwargs: Any) -> list[str]:
        return [SCOPE]

    def validate_scopes(self, client_id: str, scopes: list[str], client: Any, request: Any,
                        *args: Any, **kwargs: Any) -> bool:
        return bool(scopes) and set(scopes) <= {SCOPE}

    def get_original_scopes(self, refresh_token: str, request: Any, *args: Any,
                            **kwargs: Any) -> list[str]:
        return [SCOPE]

    def is_pkce_required(self, client_id: str, request: Any) -> bool:
        return True

    # --- authorization codes ------------------------------------------------------------
    def save_authorization_code(self, client_id: str, code: Any, request: Any,
                                *args: Any, **kwargs: Any) -> None:
        now = utcnow()
        with self.store.system_session() as s:
            s.execute(delete(AuthorizationCode).where(
                AuthorizationCode.expires_at < now - tokens.PURGE_AFTER))
            s.add(AuthorizationCode(
                id=new_id(), code_hash=hash_secret(code["code"]), client_id=client_id,
                redirect_uri=request.redirect_uri, code_challenge=request.code_challenge,
                code_challenge_method=request.code_challenge_method, scope=SCOPE,
                user_id=request.levered_user_id, organization_id=request.levered_org_id,
                created_at=now, expires_at=now + tokens.CODE_TTL))

    def validate_code(self, client_id: str, code: str, client: Any, request: Any,
                      *args: Any, **kwargs: Any) -> bool:
        # Only reads: the code is claimed and its token family opened in save_bearer_token,
        # once oauthlib has also checked PKCE and the redirect URI, so a refused exchange
        # writes nothing. A replay revokes what the first exchange got.
        with self.store.system_session() as s:
            row = s.scalars(select(AuthorizationCode).where(
                AuthorizationCode.code_hash == hash_secret(code))).first()
            if row is None or row.client_id != client_id:
                return False
            if row.used_at is not None:
                if row.family_id:
                    tokens.revoke_family(s, row.family_id)
                return False
            if row.expires_at <= utcnow():
                return False
            request.levered_code_id = row.id
            request.levered_grant = (Grantee(row.user_id, row.organization_id),
                                     "authorization_code")
            request.levered_code = (row.code_challenge, row.code_challenge_method,
                                    row.redirect_uri)
        request.user = row.user_id
        request.scopes = [SCOPE]
        return True

    def get_code_challenge(self, code: str, request: Any) -> str | None:  # type: ignore[override]
        found = getattr(request, "levered_code", None)
        return found[0] if found else None

    def get_code_challenge_method(self, code: str,  # type: ignore[override]
                                  request: Any) -> str | None:
        found = getattr(request, "levered_code", None)
        return found[1] if found else None

    def confirm_redirect_uri(self, client_id: str, code: str, redirect_uri: str, client: Any,
                             request: Any, *args: Any, **kwargs: Any) -> bool:
        found: tuple[str, str, str] | None = getattr(request, "levered_code", None)
        return found is not None and found[2] == redirect_uri

    def invalidate_authorization_code(self, client_id: str, code: str, request: Any,
                                      *args: Any, **kwargs: Any) -> None:
        pass  # already claimed in validate_code

    # --- tokens -------------------------------------------------------------------------
    def save_bearer_token(self, token: Any, request: Any, *args: Any,
                          **kwargs: Any) -> None:
        with self.store.system_session() as s:
            family = getattr(request, "levered_family_id", None) or self._open_family(s, request)
            tokens.store_tokens(s, family, token["access_token"], token.get("refresh_token"))
        if token.get("refresh_token"):
            token["refresh_token_expires_in"] = int(tokens.REFRESH_TTL.total_seconds())

    @staticmethod
    def _open_family(s: Session, request: Any) -> str:
        """Claim the authorization code (if any) and open the login's token family.

        :raises InvalidGrantError: a concurrent exchange claimed the code first.
        """
        grantee, grant_type = request.levered_grant
        code_id = getattr(request, "levered_code_id", None)
        if code_id is not None:
            claimed = s.execute(update(AuthorizationCode).where(
                AuthorizationCode.id == code_id, AuthorizationCode.used_at.is_(None))
                .values(used_at=utcnow()))
            if getattr(claimed, "rowcount", 0) != 1:
                raise InvalidGrantError(request=request)
        family = tokens.open_family(s, grantee, grant_type)
        if code_id is not None:
            s.execute(update(AuthorizationCode).where(AuthorizationCode.id == code_id)
                      .values(family_id=family))
        return family

    def validate_refresh_token(self, refresh_token: str, client: Any, request: Any,
                               *args: Any, **kwargs: Any) -> bool:
        with self.store.system_session() as s:
            family = tokens.use_refresh_token(s, refresh_token)
            if family is None:
                return False
            request.levered_family_id = family.id
            request.user = family.user_id
        return True

    def rotate_refresh_token(self, request: Any) -> bool:
        return True

    def revoke_token(self, token: str, token_type_hint: str | None, request: Any,
                     *args: Any, **kwargs: Any) -> None:
        with self.store.system_session() as s:
            tokens.revoke_token(s, token)

    # --- device codes (RFC 8628) --------------------------------------------------------
    def validate_device_code(self, client_id: str, code: str, request: Any, *args: Any,
                             **kwargs: Any) -> str | None:
        now = utcnow()
        with self.store.system_session() as s:
            row = s.scalars(select(DeviceCode).where(
                DeviceCode.device_code_hash == hash_secret(code))).first()
            if row is None or row.client_id != client_id or row.status == "used":
                return None
            if row.expires_at <= now:
                return EXPIRED
            last, row.last_polled_at = row.last_polled_at, now
            if row.status == "denied":
                return DENIED
            if row.status == "pending":
                # One second of slack: the client sleeps `interval` between its polls.
                if last is not None and (now - last).total_seconds() < row.interval - 1:
                    row.interval += 5
                    return SLOW_DOWN
                return PENDING
            claimed = s.execute(update(DeviceCode).where(DeviceCode.id == row.id,
                                                         DeviceCode.status == "approved")
                                .values(status="used"))
            if getattr(claimed, "rowcount", 0) != 1 or not row.user_id or not row.organization_id:
                return None
            request.levered_grant = (Grantee(row.user_id, row.organization_id), tokens.DEVICE_GRANT)
            request.user = row.user_id
        request.scopes = [SCOPE]
        return AUTHORIZED
