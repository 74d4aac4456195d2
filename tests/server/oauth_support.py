"""Drive the OAuth pages and endpoints over HTTP (TestClient), as a browser and the CLI would."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import urllib.parse
import uuid
from typing import Any

from levered_server.bootstrap import create_user

PASSWORD = "correct horse battery"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B (docs/api.md 16.5)
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
REDIRECT = "http://127.0.0.1:53682/callback"


def challenge_of(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def new_user(server: Any, org: Any, email: str | None = None) -> str:
    email = email or f"u-{uuid.uuid4().hex[:8]}@acme.test"
    create_user(settings=server.settings, email=email, password=PASSWORD, org_name=org.name)
    return email


def authorize_query(**changes: str | None) -> str:
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": "levered-cli", "redirect_uri": REDIRECT,
        "state": secrets.token_urlsafe(16), "code_challenge": CHALLENGE,
        "code_challenge_method": "S256", "scope": "api"}
    params.update(changes)
    return urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def query_of(location: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def sign_in(client: Any, action: str, email: str, password: str = PASSWORD,
            extra: dict[str, str] | None = None) -> Any:
    page = client.get(action)
    assert page.status_code == 200, page.text
    return client.post(action, data={"csrf_token": csrf_of(page.text), "step": "login",
                                     "email": email, "password": password, **(extra or {})})


def consent(client: Any, action: str, page: Any, decision: str = "approve",
            extra: dict[str, str] | None = None) -> Any:
    org = re.search(r'name="organization_id" value="([^"]+)"', page.text)
    assert org, page.text
    return client.post(action, data={"csrf_token": csrf_of(page.text), "step": "consent",
                                     "organization_id": org.group(1), "decision": decision,
                                     **(extra or {})})


def get_code(client: Any, email: str, query: str | None = None) -> tuple[str, str]:
    """Log in and approve; return (code, authorize query)."""
    query = query or authorize_query()
    action = f"/oauth/authorize?{query}"
    page = sign_in(client, action, email)
    resp = consent(client, action, page)
    assert resp.status_code == 302, resp.text
    return query_of(resp.headers["location"])["code"], query


def exchange(client: Any, code: str, verifier: str = VERIFIER, redirect_uri: str = REDIRECT) -> Any:
    return client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": "levered-cli", "code_verifier": verifier})


def refresh(client: Any, token: str) -> Any:
    return client.post("/oauth/token", data={"grant_type": "refresh_token",
                                             "refresh_token": token, "client_id": "levered-cli"})


def login_tokens(client: Any, email: str) -> dict[str, Any]:
    code, _ = get_code(client, email)
    resp = exchange(client, code)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def me(client: Any, token: str) -> Any:
    return client.get("/api/v2/me", headers={"Authorization": f"Bearer {token}"})
