"""The browser pages of the OAuth login (API.md 4.3, 4.4): authorize and device verification."""

from __future__ import annotations

import urllib.parse
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from levered_server.api.deps import get_runtime
from levered_server.api.oauth import OAuth, client_address
from levered_server.auth import flow, pages
from levered_server.auth.browser import COOKIE, SESSION_TTL
from levered_server.runtime import Runtime

router = APIRouter(tags=["oauth"], include_in_schema=False)
Rt = Annotated[Runtime, Depends(get_runtime)]


async def _form(request: Request) -> dict[str, str] | None:
    if request.method != "POST":
        return None
    body = (await request.body())[:65536].decode("utf-8", "replace")
    return dict(urllib.parse.parse_qsl(body, keep_blank_values=True))


Form = Annotated[dict[str, str] | None, Depends(_form)]


def _respond(page: flow.Page, runtime: Runtime) -> Response:
    response: Response
    if page.location:
        response = RedirectResponse(page.location, status_code=302,
                                    headers={"Cache-Control": "no-store"})
    else:
        response = HTMLResponse(page.html, status_code=page.status,
                                headers=pages.SECURITY_HEADERS)
    if page.cookie:
        response.set_cookie(COOKIE, page.cookie, max_age=int(SESSION_TTL.total_seconds()),
                            path="/oauth", httponly=True, samesite="lax",
                            secure=runtime.settings.public_url.startswith("https://"))
    return response


@router.api_route("/oauth/authorize", methods=["GET", "POST"])
def authorize(request: Request, runtime: Rt, server: OAuth, form: Form) -> Response:
    """Login, organization picker and consent for the authorization-code flow."""
    page = flow.authorize(runtime.store, server, request.url.query, form,
                          request.cookies.get(COOKIE), client_address(request, runtime))
    return _respond(page, runtime)


@router.api_route("/oauth/device", methods=["GET", "POST"])
def device(request: Request, runtime: Rt, form: Form) -> Response:
    """Enter a device code, then login, organization picker and consent."""
    code = (form or {}).get("user_code") or request.query_params.get("user_code", "")
    page = flow.device(runtime.store, code[:64], form, request.cookies.get(COOKIE),
                       client_address(request, runtime))
    return _respond(page, runtime)


@router.get("/oauth/static/levered.css")
def stylesheet() -> Response:
    """The pages' stylesheet."""
    return Response(pages.stylesheet(), media_type="text/css",
                    headers={"Cache-Control": "public, max-age=3600"})
