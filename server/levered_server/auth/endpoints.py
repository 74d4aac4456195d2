"""oauthlib's endpoints, composed for the one client `levered-cli` (API.md 4)."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from oauthlib.common import add_params_to_uri
from oauthlib.oauth2 import (
    AuthorizationCodeGrant,
    AuthorizationEndpoint,
    BearerToken,
    FatalClientError,
    MetadataEndpoint,
    OAuth2Error,
    RefreshTokenGrant,
    RevocationEndpoint,
    TokenEndpoint,
)
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.grant_types.authorization_code import code_challenge_method_s256
from oauthlib.oauth2.rfc8628.endpoints import DeviceAuthorizationEndpoint
from oauthlib.oauth2.rfc8628.grant_types import DeviceCodeGrant
from sqlalchemy import delete

from levered_server.auth import tokens
from levered_server.auth.validator import Validator
from levered_server.clock import new_id, utcnow
from levered_server.services.identity import hash_secret
from levered_server.store import Store
from levered_server.store.models import DeviceCode

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
# oauthlib logs codes and tokens at DEBUG: keep them out of the server log at any level.
logging.getLogger("oauthlib").setLevel(logging.INFO)
Response = tuple[dict[str, str], str, int]


class S256Only(AuthorizationCodeGrant):
    """PKCE with S256 only: `plain` (also the default when no method is sent) is refused."""

    _code_challenge_methods = {"S256": code_challenge_method_s256}


def new_user_code() -> str:
    """8 characters of BCDFGHJKLMNPQRSTVWXZ shown as XXXX-XXXX (RFC 8628 6.1)."""
    code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
    return f"{code[:4]}-{code[4:]}"


def normalize_user_code(text: str) -> str:
    """Case-insensitive, hyphen and spaces optional."""
    return "".join(c for c in text.upper() if c.isalnum())


def _check_authorize_params(request: Any) -> dict[str, Any]:
    state = request.state or ""
    if not 8 <= len(state) <= 512:
        raise errors.InvalidRequestError("state must have 8 to 512 characters.", request=request)
    challenge = request.code_challenge or ""
    if len(challenge) != 43 or not all(c.isalnum() or c in "-_" for c in challenge):
        raise errors.InvalidRequestError("code_challenge must be 43 base64url characters.",
                                         request=request)
    if request.code_challenge_method != "S256":
        raise errors.InvalidRequestError("code_challenge_method must be S256.", request=request)
    return {}


class OAuthServer:
    """The authorization server: authorize, token, device, revoke and metadata."""

    def __init__(self, store: Store, issuer: str) -> None:
        self.store = store
        self.issuer = issuer.rstrip("/")
        validator = Validator(store)
        bearer = BearerToken(validator, token_generator=tokens.new_access_token,
                             expires_in=int(tokens.ACCESS_TTL.total_seconds()),
                             refresh_token_generator=tokens.new_refresh_token)
        code_grant = S256Only(validator, pre_auth=[_check_authorize_params])
        # types-oauthlib types the token handler as `str`; it is the BearerToken instance.
        handler: Any = bearer
        self.authorization = AuthorizationEndpoint("code", handler, {"code": code_grant})
        self.token = TokenEndpoint("authorization_code", handler, {
            "authorization_code": code_grant,
            "refresh_token": RefreshTokenGrant(validator, issue_new_refresh_tokens=True),
            tokens.DEVICE_GRANT: DeviceCodeGrant(validator),
        })
        self.revocation = RevocationEndpoint(validator)
        device_validator: Any = validator
        user_codes: Any = new_user_code
        self.device = DeviceAuthorizationEndpoint(
            device_validator, verification_uri=f"{self.issuer}/oauth/device",
            expires_in=int(tokens.DEVICE_TTL.total_seconds()), interval=tokens.DEVICE_INTERVAL,
            verification_uri_complete=f"{self.issuer}/oauth/device?user_code={{user_code}}",
            user_code_generator=user_codes)
        self.metadata = MetadataEndpoint(
            [self.authorization, self.token, self.revocation], claims=self._claims(),
            raise_errors=self.issuer.startswith("https://"))

    def _claims(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base, "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "device_authorization_endpoint": f"{base}/oauth/device_authorization",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "response_types_supported": ["code"], "response_modes_supported": ["query"],
            "grant_types_supported": list(tokens_grant_types()),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": [tokens.SCOPE],
            "authorization_response_iss_parameter_supported": True,
        }

    def metadata_document(self) -> dict[str, Any]:
        """RFC 8414 metadata (validated by oauthlib's MetadataEndpoint)."""
        return dict(self.metadata.claims)

    def check_authorize(self, uri: str) -> tuple[list[str], dict[str, Any]]:
        """Validate an authorize request; FatalClientError (no redirect) or OAuth2Error."""
        scopes, info = self.authorization.validate_authorization_request(uri, "GET")
        return list(scopes), info

    def error_redirect(self, redirect_uri: str, error: OAuth2Error | str, state: str | None
                       ) -> str:
        """The redirect of a refused authorization, with `state` and `iss` (RFC 9207)."""
        if isinstance(error, str):
            params = [("error", error)]
        else:
            params = [(k, str(v)) for k, v in error.twotuples if k != "state" and v is not None]
        if state:
            params.append(("state", state))
        return add_params_to_uri(redirect_uri, params + [("iss", self.issuer)])

    def approve(self, uri: str, user_id: str, org_id: str) -> str:
        """Issue a code for an approved request; return the redirect location."""
        headers, _, _ = self.authorization.create_authorization_response(
            uri, "GET", scopes=[tokens.SCOPE],
            credentials={"levered_user_id": user_id, "levered_org_id": org_id})
        return add_params_to_uri(headers["Location"], [("iss", self.issuer)])

    def token_response(self, body: str, headers: dict[str, str]) -> Response:
        """`POST /oauth/token`."""
        try:
            out_headers, out_body, status = self.token.create_token_response(
                f"{self.issuer}/oauth/token", "POST", body, headers)
        except OAuth2Error as exc:  # raised by the validator while saving (a lost race)
            out_headers, out_body, status = exc.headers, exc.json, exc.status_code
        return {**out_headers, "Cache-Control": "no-store", "Pragma": "no-cache"}, out_body, status

    def revoke_response(self, body: str, headers: dict[str, str]) -> Response:
        """`POST /oauth/revoke`: 200 with an empty body, also for unknown tokens."""
        out_headers, out_body, status = self.revocation.create_revocation_response(
            f"{self.issuer}/oauth/revoke", "POST", body, headers)
        return out_headers, out_body, status

    def device_response(self, body: str, headers: dict[str, str]) -> Response:
        """`POST /oauth/device_authorization`; the codes are stored hashed / normalized."""
        try:
            _, data, status = self.device.create_device_authorization_response(
                f"{self.issuer}/oauth/device_authorization", "POST", body, headers)
        except (OAuth2Error, FatalClientError) as exc:
            if isinstance(exc, errors.InvalidClientIdError | errors.MissingClientIdError):
                return {}, json.dumps({"error": "invalid_client"}), 401
            return {}, exc.json, exc.status_code
        if isinstance(data, str):  # an error rendered by oauthlib
            return {}, data, status
        data.pop("scope", None)
        now = utcnow()
        with self.store.system_session() as s:
            s.execute(delete(DeviceCode).where(DeviceCode.expires_at < now - tokens.PURGE_AFTER))
            s.add(DeviceCode(id=new_id(), device_code_hash=hash_secret(str(data["device_code"])),
                             user_code=normalize_user_code(str(data["user_code"])),
                             client_id=tokens.CLIENT_ID, scope=tokens.SCOPE, status="pending",
                             interval=tokens.DEVICE_INTERVAL, created_at=now,
                             expires_at=now + tokens.DEVICE_TTL))
        return {"Cache-Control": "no-store"}, json.dumps(data), 200


def tokens_grant_types() -> tuple[str, ...]:
    """Grant types of the token endpoint, in the metadata's order."""
    return ("authorization_code", "refresh_token", tokens.DEVICE_GRANT)

