"""docs/api.md 4: the OAuth authorization server over HTTP, and its refusals (issue 5)."""

from __future__ import annotations

import pytest

from tests.server.conftest import assert_error
from tests.server.oauth_support import (
    CHALLENGE,
    REDIRECT,
    VERIFIER,
    authorize_query,
    challenge_of,
    consent,
    csrf_of,
    exchange,
    get_code,
    login_tokens,
    me,
    new_user,
    query_of,
    refresh,
    sign_in,
)


def _forget_failures(server):
    from sqlalchemy import delete

    from levered_server.store.models import LoginFailure

    with server.runtime.store.system_session() as s:
        s.execute(delete(LoginFailure))


@pytest.fixture(scope="module", autouse=True)
def _cheap_password_hashes():
    """Every test creates a user: hash at N=2**10, not the server's 2**17 (about 1 s each)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEVERED_PASSWORD_HASH_COST", "10")
        yield


@pytest.fixture
def client(server):
    _forget_failures(server)  # every test of this module signs in from the same address
    server.client.cookies.clear()
    server.client.follow_redirects = False
    yield server.client
    server.client.follow_redirects = True
    server.client.cookies.clear()


def test_metadata_is_the_contract_document(client):
    resp = client.get("/.well-known/oauth-authorization-server")
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "public, max-age=3600"
    base = "http://localhost:3100"
    assert resp.json() == {
        "issuer": base, "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "device_authorization_endpoint": f"{base}/oauth/device_authorization",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "response_types_supported": ["code"], "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token",
                                  "urn:ietf:params:oauth:grant-type:device_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["api"],
        "authorization_response_iss_parameter_supported": True}


def test_pkce_vector():
    assert challenge_of(VERIFIER) == CHALLENGE


def test_code_flow_issues_tokens_for_the_organization(client, org, server):
    email = new_user(server, org)
    code, query = get_code(client, email)
    resp = exchange(client, code)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store" and resp.headers["pragma"] == "no-cache"
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 86400
    assert body["scope"] == "api" and body["refresh_token_expires_in"] == 2592000
    assert body["access_token"].startswith("lva_") and len(body["access_token"]) == 47
    assert body["refresh_token"].startswith("lvr_") and len(body["refresh_token"]) == 47
    who = me(client, body["access_token"]).json()
    assert who["user"]["email"] == email and who["organization"]["id"] == org.id
    assert who["auth"]["type"] == "session" and who["auth"]["expires_at"]


def test_the_redirect_carries_state_and_iss(client, org, server):
    email = new_user(server, org)
    query = authorize_query(state="s" * 20)
    action = f"/oauth/authorize?{query}"
    resp = consent(client, action, sign_in(client, action, email))
    params = query_of(resp.headers["location"])
    assert resp.headers["location"].startswith(REDIRECT + "?")
    assert params["state"] == "s" * 20 and params["iss"] == "http://localhost:3100"


def test_deny_redirects_access_denied(client, org, server):
    email = new_user(server, org)
    query = authorize_query()
    action = f"/oauth/authorize?{query}"
    resp = consent(client, action, sign_in(client, action, email), decision="deny")
    params = query_of(resp.headers["location"])
    assert params["error"] == "access_denied" and params["iss"] == "http://localhost:3100"
    assert "code" not in params


def test_tokens_are_stored_hashed_only(client, org, server):
    import hashlib

    from sqlalchemy import text

    email = new_user(server, org)
    code, _ = get_code(client, email)
    tokens = exchange(client, code).json()
    secrets_ = [tokens["access_token"], tokens["refresh_token"], code]
    dump = []
    with server.runtime.store.engine.connect() as conn:
        for table in ("access_tokens", "oauth_refresh_tokens", "oauth_authorization_codes",
                      "oauth_device_codes", "browser_sessions", "oauth_token_families"):
            dump += [repr(tuple(r)) for r in conn.execute(text(f"SELECT * FROM {table}"))]
    everything = "\n".join(dump)
    for secret in secrets_:
        assert secret not in everything
        assert hashlib.sha256(secret.encode()).hexdigest() in everything


def test_a_code_is_single_use_and_a_replay_revokes_its_tokens(client, org, server):
    email = new_user(server, org)
    code, _ = get_code(client, email)
    first = exchange(client, code).json()
    assert me(client, first["access_token"]).status_code == 200
    again = exchange(client, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert_error(me(client, first["access_token"]), 401, "unauthorized")
    assert refresh(client, first["refresh_token"]).json()["error"] == "invalid_grant"


@pytest.mark.parametrize("verifier", [None, "x" * 43, VERIFIER[:-1] + "Y"])
def test_a_code_needs_its_pkce_verifier(client, org, server, verifier):
    email = new_user(server, org)
    code, _ = get_code(client, email)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": "levered-cli"}
    if verifier:
        data["code_verifier"] = verifier
    resp = client.post("/oauth/token", data=data)
    assert resp.status_code == 400
    assert resp.json()["error"] in ("invalid_grant", "invalid_request")
    assert "access_token" not in resp.text


TOKEN_TABLES = ("access_tokens", "oauth_issued_access_tokens", "oauth_refresh_tokens",
                "oauth_token_families")


def _token_rows(server):
    from sqlalchemy import text

    with server.runtime.store.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TOKEN_TABLES}


@pytest.mark.parametrize("kind", ["wrong verifier", "wrong redirect_uri", "reused code",
                                  "wrong client", "refresh replay"])
def test_each_refusal_leaves_no_token_behind(client, org, server, kind):
    email = new_user(server, org)
    code, _ = get_code(client, email)
    if kind == "reused code":
        assert exchange(client, code).status_code == 200
    if kind == "refresh replay":
        first = exchange(client, code).json()
        assert refresh(client, first["refresh_token"]).status_code == 200
    before = _token_rows(server)
    resp = {
        "wrong verifier": lambda: exchange(client, code, verifier=VERIFIER[:-1] + "Y"),
        "wrong redirect_uri": lambda: exchange(client, code, redirect_uri="http://127.0.0.1:1/callback"),
        "reused code": lambda: exchange(client, code),
        "wrong client": lambda: client.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": "someone-else", "code_verifier": VERIFIER}),
        "refresh replay": lambda: refresh(client, first["refresh_token"]),
    }[kind]()
    assert resp.status_code in (400, 401) and "access_token" not in resp.text
    assert _token_rows(server) == before
    if kind in ("wrong verifier", "wrong redirect_uri", "wrong client"):
        # a refused exchange does not burn the code: the real client can still finish
        assert exchange(client, code).status_code == 200
        assert _token_rows(server) == {t: n + 1 for t, n in before.items()}


def test_an_exchange_that_loses_the_race_for_its_code_is_refused(client, org, server, monkeypatch):
    from sqlalchemy import update

    from levered_server.auth.validator import Validator
    from levered_server.clock import utcnow
    from levered_server.store.models import AuthorizationCode

    original = Validator.validate_code

    def validated_then_claimed_elsewhere(self, *args, **kwargs):
        ok = original(self, *args, **kwargs)
        with server.runtime.store.system_session() as s:  # a concurrent exchange wins meanwhile
            s.execute(update(AuthorizationCode).values(used_at=utcnow()))
        return ok

    code, _ = get_code(client, new_user(server, org))
    monkeypatch.setattr(Validator, "validate_code", validated_then_claimed_elsewhere)
    before = _token_rows(server)
    resp = exchange(client, code)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    assert resp.headers["cache-control"] == "no-store"
    assert _token_rows(server) == before


def test_passwords_are_hashed_with_scrypt_n_2_17_and_old_hashes_still_verify(monkeypatch):
    import hashlib
    import time

    from levered_server.services import identity

    monkeypatch.delenv("LEVERED_PASSWORD_HASH_COST")
    started = time.perf_counter()
    stored = identity.hash_password("correct horse battery")
    print(f"scrypt N=2**17 hash: {time.perf_counter() - started:.2f} s")
    assert stored.startswith("scrypt$131072$8$1$")
    assert identity.verify_password("correct horse battery", stored)
    assert not identity.verify_password("wrong horse battery", stored)
    assert identity.dummy_password_hash().startswith("scrypt$131072$8$1$")
    salt = bytes(range(16))
    old = hashlib.scrypt(b"correct horse battery", salt=salt, n=2**14, r=8, p=1)
    legacy = f"scrypt$16384$8$1${salt.hex()}${old.hex()}"
    assert identity.verify_password("correct horse battery", legacy)
    assert not identity.verify_password("correct horse batterY", legacy)


@pytest.mark.parametrize("value", ["9", "21", "fast", "-1"])
def test_a_bad_password_hash_cost_is_refused_with_its_range(monkeypatch, value):
    from levered_server.services import identity

    monkeypatch.setenv("LEVERED_PASSWORD_HASH_COST", value)
    with pytest.raises(ValueError, match="integer from 10 to 20"):
        identity.hash_password("correct horse battery")
    monkeypatch.setenv("LEVERED_PASSWORD_HASH_COST", "12")
    assert identity.hash_password("correct horse battery").startswith("scrypt$4096$8$1$")


def test_a_code_is_bound_to_its_redirect_uri(client, org, server):
    email = new_user(server, org)
    code, _ = get_code(client, email)
    resp = exchange(client, code, redirect_uri="http://127.0.0.1:1/callback")
    assert resp.status_code == 400 and "access_token" not in resp.text


@pytest.mark.parametrize("changes", [
    {"code_challenge_method": "plain", "code_challenge": "p" * 43},
    {"code_challenge_method": None},
    {"code_challenge": None},
    {"code_challenge": "short"},
    {"state": "short"},
    {"response_type": "token"},
    {"scope": "admin"},
])
def test_invalid_parameters_redirect_with_an_error(client, changes):
    changes = {"state": "state-1234", **changes}  # a copy: the parameter is shared by backends
    query = authorize_query(**changes)
    resp = client.get(f"/oauth/authorize?{query}")
    assert resp.status_code == 302, resp.text
    params = query_of(resp.headers["location"])
    assert resp.headers["location"].startswith(REDIRECT)
    assert params["error"] in ("invalid_request", "unsupported_response_type", "invalid_scope")
    assert params["iss"] == "http://localhost:3100" and "code" not in params


@pytest.mark.parametrize("changes", [
    {"redirect_uri": "http://localhost:53682/callback"},
    {"redirect_uri": "https://evil.example/callback"},
    {"redirect_uri": "http://127.0.0.1:53682/other"},
    {"redirect_uri": "http://127.0.0.1/callback"},
    {"redirect_uri": "http://10.0.0.1:8080/callback"},
    {"redirect_uri": None},
    {"client_id": "someone-else"},
    {"client_id": None},
])
def test_bad_client_or_redirect_gets_a_400_page_never_a_redirect(client, changes):
    resp = client.get(f"/oauth/authorize?{authorize_query(**changes)}")
    assert resp.status_code == 400
    assert "location" not in resp.headers
    assert resp.headers["content-type"].startswith("text/html")
    assert "levered login" in resp.text


def test_ipv6_loopback_redirect_is_accepted(client):
    resp = client.get(f"/oauth/authorize?{authorize_query(redirect_uri='http://[::1]:8123/callback')}")
    assert resp.status_code == 200 and "Sign in" in resp.text


def test_refresh_rotates_and_a_replay_revokes_the_family(client, org, server):
    email = new_user(server, org)
    first = login_tokens(client, email)
    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert me(client, second["access_token"]).status_code == 200
    replay = refresh(client, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    for token in (first["access_token"], second["access_token"]):
        assert_error(me(client, token), 401, "unauthorized")
    assert refresh(client, second["refresh_token"]).json()["error"] == "invalid_grant"


def test_token_endpoint_errors(client):
    assert client.post("/oauth/token", data={"grant_type": "password", "client_id": "levered-cli",
                                             "username": "a", "password": "b"}
                       ).json()["error"] == "unsupported_grant_type"
    resp = client.post("/oauth/token", data={"grant_type": "refresh_token",
                                             "refresh_token": "lvr_x", "client_id": "nope"})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    resp = client.post("/oauth/token", content=b"<xml/>", headers={"Content-Type": "text/xml"})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


def test_token_endpoint_accepts_json(client, org, server):
    email = new_user(server, org)
    tokens = login_tokens(client, email)
    resp = client.post("/oauth/token", json={"grant_type": "refresh_token", "client_id": "levered-cli",
                                             "refresh_token": tokens["refresh_token"]})
    assert resp.status_code == 200, resp.text


def test_revocation(client, org, server):
    email = new_user(server, org)
    a = login_tokens(client, email)
    b = login_tokens(client, email)
    ok = client.post("/oauth/revoke", data={"token": a["access_token"], "client_id": "levered-cli",
                                            "token_type_hint": "access_token"})
    assert ok.status_code == 200 and ok.text == ""
    assert me(client, a["access_token"]).status_code == 401
    assert refresh(client, a["refresh_token"]).status_code == 200  # only the access token
    client.post("/oauth/revoke", data={"token": b["refresh_token"], "client_id": "levered-cli"})
    assert me(client, b["access_token"]).status_code == 401
    assert refresh(client, b["refresh_token"]).json()["error"] == "invalid_grant"
    unknown = client.post("/oauth/revoke", data={"token": "lvr_nope", "client_id": "levered-cli"})
    assert unknown.status_code == 200
    bad = client.post("/oauth/revoke", data={"token": "lvr_nope", "client_id": "other"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


def test_forms_need_the_csrf_token(client, org, server):
    email = new_user(server, org)
    action = f"/oauth/authorize?{authorize_query()}"
    page = client.get(action)
    for token in (None, "forged", csrf_of(page.text) + "x"):
        data = {"step": "login", "email": email, "password": "correct horse battery"}
        if token:
            data["csrf_token"] = token
        resp = client.post(action, data=data)
        assert resp.status_code == 403 and "expired" in resp.text
    # a valid token from another session (another browser) is refused too
    other = csrf_of(page.text)
    client.cookies.clear()
    resp = client.post(action, data={"csrf_token": other, "step": "login", "email": email,
                                     "password": "correct horse battery"})
    assert resp.status_code == 403


def test_session_cookie_is_httponly_lax_and_renewed_at_login(client, org, server):
    email = new_user(server, org)
    action = f"/oauth/authorize?{authorize_query()}"
    first = client.get(action)
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/oauth" in cookie
    assert first.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in first.headers["content-security-policy"]
    before = client.cookies.get("levered_session")
    resp = client.post(action, data={"csrf_token": csrf_of(first.text), "step": "login",
                                     "email": email, "password": "correct horse battery"})
    assert resp.status_code == 200
    assert client.cookies.get("levered_session") not in (None, before)


def test_wrong_password_then_lockout(client, org, server):
    email = new_user(server, org)
    action = f"/oauth/authorize?{authorize_query()}"
    for _ in range(5):
        resp = sign_in(client, action, email, password="wrong password")
        assert resp.status_code == 401 and "Wrong email or password" in resp.text
    locked = sign_in(client, action, email)  # even the right password, for 15 minutes
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text


def test_failures_from_one_ip_are_throttled_across_accounts(client, org, server, monkeypatch):
    from levered_server.auth import browser

    monkeypatch.setattr(browser, "MAX_FAILURES_PER_IP", 3)
    ip = {"X-Forwarded-For": "203.0.113.9"}  # not trusted: the peer address counts
    action = f"/oauth/authorize?{authorize_query()}"
    emails = [new_user(server, org) for _ in range(4)]
    statuses = []
    for email in emails:
        page = client.get(action, headers=ip)
        statuses.append(client.post(action, headers=ip, data={
            "csrf_token": csrf_of(page.text), "step": "login", "email": email,
            "password": "nope"}).status_code)
    _forget_failures(server)
    assert statuses[:3] == [401, 401, 401] and 429 in statuses[3:]


def test_an_unknown_email_fails_like_a_wrong_password(client):
    action = f"/oauth/authorize?{authorize_query()}"
    resp = sign_in(client, action, "nobody@nowhere.test")
    assert resp.status_code == 401 and "Wrong email or password" in resp.text


def test_api_key_management_needs_a_login_session(tmp_path):
    from levered_server.settings import Settings, settings_from_env
    from tests.server.conftest import new_org, running

    assert Settings().api_keys_manage_keys is False
    assert settings_from_env({}).api_keys_manage_keys is False
    settings = Settings(data_dir=tmp_path, rate_limit_per_minute=0)
    with running(settings, "sqlite") as srv:
        org = new_org(srv)
        assert_error(org.post("/api/v2/api-keys", json={"name": "x"}), 403, "forbidden")
        email = new_user(srv, org)
        srv.client.follow_redirects = False
        token = login_tokens(srv.client, email)["access_token"]
        resp = srv.client.post("/api/v2/api-keys", json={"name": "ci"},
                               headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 201 and resp.json()["created_by"]["email"] == email


def test_tokens_of_one_organization_never_read_another(client, org, other_org, server):
    from tests.server.factories import make_optimization

    opt = make_optimization(other_org)
    token = login_tokens(client, new_user(server, org))["access_token"]
    resp = client.get(f"/api/v2/optimizations/{opt['id']}",
                      headers={"Authorization": f"Bearer {token}"})
    assert_error(resp, 404, "not_found")


def test_the_public_url_follows_the_port_unless_set():
    from levered_server.settings import settings_from_env

    assert settings_from_env({}).public_url == "http://localhost:3100"
    assert settings_from_env({}, port=3200).public_url == "http://localhost:3200"
    assert settings_from_env({"LEVERED_PORT": "3300"}).public_url == "http://localhost:3300"
    assert settings_from_env({"LEVERED_PUBLIC_URL": "https://lv.example"},
                             port=3200).public_url == "https://lv.example"


def test_no_code_or_token_reaches_the_log_even_at_debug(client, org, server, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    email = new_user(server, org)
    code, _ = get_code(client, email)
    tokens = exchange(client, code).json()
    refreshed = refresh(client, tokens["refresh_token"]).json()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (code, tokens["access_token"], tokens["refresh_token"],
                   refreshed["access_token"], refreshed["refresh_token"]):
        assert secret not in logged
