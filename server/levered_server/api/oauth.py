"""OAuth 2.0 endpoints for the CLI (API.md 4): metadata, token, device authorization, revoke.

Bodies are RFC 6749 form posts handed to oauthlib as they came; answers are oauthlib's
(`{"error": ...}` per RFC 6749 5.2), not the API's error envelope.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from levered_server.api.deps import get_runtime
from levered_server.auth.endpoints import OAuthServer
from levered_server.runtime import Runtime

router = APIRouter(tags=["oauth"])
FORM = "application/x-www-form-urlencoded"


def oauth_server(request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]
                 ) -> OAuthServer:
    """The app's authorization server, built on first use."""
    server: OAuthServer | None = getattr(request.app.state, "oauth", None)
    if server is None or server.store is not runtime.store:
        server = OAuthServer(runtime.store, runtime.settings.public_url)
        request.app.state.oauth = server
    return server


OAuth = Annotated[OAuthServer, Depends(oauth_server)]


async def form_body(request: Request) -> str | None:
    """The body as a form string; a JSON object is accepted too (4.5). None: not a form."""
    raw = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == FORM:
        return raw.decode("utf-8", "replace")
    if ctype == "application/json":
        try:
            data = json.loads(raw or b"null")
        except ValueError:
            return None
        if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
            return urllib.parse.urlencode(data)
    return None


def _answer(out: tuple[dict[str, str], str, int]) -> Response:
    headers, body, status = out
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return Response(body or "", status_code=status, headers=headers,
                    media_type="application/json" if body else None)


def _bad_request() -> Response:
    return JSONResponse({"error": "invalid_request",
                         "error_description": f"Send {FORM} (or a JSON object)."},
                        status_code=400, headers={"Cache-Control": "no-store"})


@router.get("/.well-known/oauth-authorization-server", operation_id="getOAuthMetadata")
def metadata(server: OAuth) -> JSONResponse:
    """RFC 8414 authorization server metadata."""
    return JSONResponse(server.metadata_document(),
                        headers={"Cache-Control": "public, max-age=3600"})


@router.post("/oauth/token", operation_id="createOAuthToken")
async def token(server: OAuth, body: Annotated[str | None, Depends(form_body)]) -> Response:
    """Exchange a code, a refresh token or a device code for tokens."""
    if body is None:
        return _bad_request()
    return _answer(server.token_response(body, {"Content-Type": FORM}))


@router.post("/oauth/device_authorization", operation_id="createDeviceAuthorization")
async def device_authorization(server: OAuth,
                               body: Annotated[str | None, Depends(form_body)]) -> Response:
    """Start a device login (RFC 8628): a device code and a user code."""
    if body is None:
        return _bad_request()
    return _answer(server.device_response(body, {"Content-Type": FORM}))


@router.post("/oauth/revoke", operation_id="revokeOAuthToken")
async def revoke(server: OAuth, body: Annotated[str | None, Depends(form_body)]) -> Response:
    """Revoke an access or refresh token (RFC 7009); 200 also for unknown tokens."""
    if body is None:
        return _bad_request()
    return _answer(server.revoke_response(body, {"Content-Type": FORM}))


def client_address(request: Request, runtime: Runtime) -> str:
    """The client IP, believing `X-Forwarded-For` only behind trusted proxies."""
    from levered_server.ratelimit import client_ip

    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for"),
                     runtime.settings.trusted_proxies)


