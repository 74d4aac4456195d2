"""docs/api.md 4.4: the device authorization grant (RFC 8628) over HTTP; `bootstrap.create_user`."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import update

from levered_server.bootstrap import create_user
from levered_server.store.models import DeviceCode
from tests.server.oauth_support import PASSWORD, csrf_of, me, new_user

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module", autouse=True)
def _cheap_password_hashes():
    """Tests create users: hash at N=2**10, not the server's 2**17 (about 1 s each)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEVERED_PASSWORD_HASH_COST", "10")
        yield


@pytest.fixture
def client(server):
    server.client.cookies.clear()
    server.client.follow_redirects = False
    yield server.client
    server.client.follow_redirects = True
    server.client.cookies.clear()


def start(client):
    resp = client.post("/oauth/device_authorization", data={"client_id": "levered-cli",
                                                            "scope": "api"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def poll(client, device_code):
    return client.post("/oauth/token", data={"grant_type": GRANT, "device_code": device_code,
                                             "client_id": "levered-cli"})


def forget_last_poll(server):
    with server.runtime.store.system_session() as s:
        s.execute(update(DeviceCode).values(last_polled_at=None))


def enter_and_decide(client, user_code, email, decision="approve"):
    page = client.get(f"/oauth/device?user_code={user_code}")
    assert f'value="{user_code}"' in page.text
    resp = client.post("/oauth/device", data={"csrf_token": csrf_of(page.text), "step": "code",
                                              "user_code": user_code.lower().replace("-", " ")})
    assert "Sign in" in resp.text, resp.text
    resp = client.post("/oauth/device", data={"csrf_token": csrf_of(resp.text), "step": "login",
                                              "user_code": user_code, "email": email,
                                              "password": PASSWORD})
    assert "Authorize the Levered CLI to act as" in resp.text, resp.text
    org = re.search(r'name="organization_id" value="([^"]+)"', resp.text).group(1)
    return client.post("/oauth/device", data={"csrf_token": csrf_of(resp.text), "step": "consent",
                                              "user_code": user_code, "organization_id": org,
                                              "decision": decision})


def test_device_authorization_response(client):
    body = start(client)
    assert set(body) == {"device_code", "user_code", "verification_uri",
                         "verification_uri_complete", "expires_in", "interval"}
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", body["user_code"])
    assert body["verification_uri"] == "http://localhost:3100/oauth/device"
    assert body["verification_uri_complete"].endswith(f"?user_code={body['user_code']}")
    assert body["expires_in"] == 600 and body["interval"] == 5


def test_device_errors(client):
    resp = client.post("/oauth/device_authorization", data={"client_id": "other"})
    assert resp.status_code == 401 and resp.json() == {"error": "invalid_client"}
    resp = client.post("/oauth/device_authorization", data={"client_id": "levered-cli",
                                                            "scope": "admin"})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope"
    assert poll(client, "nope").json()["error"] == "invalid_grant"


def test_pending_slow_down_approved_then_used(client, org, server):
    email = new_user(server, org)
    grant = start(client)
    assert poll(client, grant["device_code"]).json()["error"] == "authorization_pending"
    assert poll(client, grant["device_code"]).json()["error"] == "slow_down"
    resp = enter_and_decide(client, grant["user_code"], email)
    assert "now logged in" in resp.text
    forget_last_poll(server)
    tokens = poll(client, grant["device_code"])
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["access_token"].startswith("lva_") and body["refresh_token"].startswith("lvr_")
    assert me(client, body["access_token"]).json()["organization"]["id"] == org.id
    assert poll(client, grant["device_code"]).json()["error"] == "invalid_grant"


def test_denied(client, org, server):
    email = new_user(server, org)
    grant = start(client)
    assert "denied" in enter_and_decide(client, grant["user_code"], email, "deny").text
    assert poll(client, grant["device_code"]).json()["error"] == "access_denied"


def test_expired(client, server):
    grant = start(client)
    with server.runtime.store.system_session() as s:
        s.execute(update(DeviceCode).values(
            expires_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))
    assert poll(client, grant["device_code"]).json()["error"] == "expired_token"
    page = client.get("/oauth/device")
    resp = client.post("/oauth/device", data={"csrf_token": csrf_of(page.text), "step": "code",
                                              "user_code": grant["user_code"]})
    assert resp.status_code == 400 and "wrong or has expired" in resp.text


def test_a_wrong_code_reshows_the_form(client):
    page = client.get("/oauth/device")
    resp = client.post("/oauth/device", data={"csrf_token": csrf_of(page.text), "step": "code",
                                              "user_code": "BCDF-GHJK"})
    assert resp.status_code == 400 and "wrong or has expired" in resp.text
    assert client.post("/oauth/device", data={"step": "code", "user_code": "x"}).status_code == 403


def test_create_user_and_memberships(server, org, other_org):
    first = create_user(settings=server.settings, email="Grace@Acme.test", password=PASSWORD,
                        org_name=org.name, name="Grace")
    assert first["created"] and first["email"] == "grace@acme.test"
    again = create_user(settings=server.settings, email="grace@acme.test", password="",
                        org_name=other_org.name)
    assert not again["created"] and again["id"] == first["id"]
    assert again["organization_id"] == other_org.id
    with pytest.raises(LookupError):
        create_user(settings=server.settings, email="x@y.z", password=PASSWORD, org_name="nope")
    with pytest.raises(ValueError):
        create_user(settings=server.settings, email="short@y.z", password="short")
    made = create_user(settings=server.settings, email="n@new.test", password=PASSWORD,
                       org_name="Brand new", create_org=True)
    assert made["organization_name"] == "Brand new"


def test_levered_server_user_create(tmp_path):
    from levered_core.testing import run_cli

    data = str(tmp_path / "data")
    made = run_cli("server", "user", "create", "lin@acme.test", "--org", "Acme", "--create-org",
                   "--password-stdin", "--data-dir", data, "--init", "--json", home=tmp_path,
                   input="correct horse battery\n")
    assert made.exit_code == 0, made.stderr
    assert made.json["created"] is True and made.json["organization_name"] == "Acme"
    added = run_cli("server", "user", "create", "lin@acme.test", "--password-stdin",
                    "--data-dir", data, home=tmp_path, input="\n")
    assert added.exit_code == 0 and "Added existing user lin@acme.test" in added.stdout
    bad = run_cli("server", "user", "create", "x@acme.test", "--org", "Nope", "--password-stdin",
                  "--data-dir", data, home=tmp_path, input="correct horse battery\n")
    assert bad.exit_code != 0 and "no organization named 'Nope'" in bad.stderr
