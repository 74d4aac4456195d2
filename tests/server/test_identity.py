"""docs/api.md 1.3 and 5: credentials, /me, API keys; `bootstrap.create_api_key`."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select

from levered_server.bootstrap import create_api_key
from levered_server.clock import new_id, utcnow
from levered_server.services.identity import generate_secret, hash_secret
from levered_server.store.models import AccessToken, ApiKey, User
from tests.server.conftest import assert_error, database_url, make_settings, running


def _session_token(server, org, *, expires_in=dt.timedelta(hours=24)):
    """Issue an access token the way the OAuth server will (store row, hashed)."""
    token = generate_secret("lva_")
    with server.runtime.store.session(org.id) as s:
        user = User(id=new_id(), email=f"ada-{new_id()[:8]}@acme.test", name="Ada",
                    created_at=utcnow())
        s.add(user)
        s.flush()
        s.add(AccessToken(id=new_id(), user_id=user.id, token_hash=hash_secret(token),
                          created_at=utcnow(), expires_at=utcnow() + expires_in))
    return token, user


def test_missing_credential_is_401_with_challenge(server):
    resp = server.client.get("/api/v2/me")
    err = assert_error(resp, 401, "unauthorized")
    assert err["message"] == "Not authenticated"
    assert resp.headers["www-authenticate"] == 'Bearer realm="levered"'


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer lvk_" + "A" * 43},
    {"Authorization": "Basic abc"},
    {"Authorization": "Bearer"},
    {"X-API-Key": "nope"},
])
def test_bad_credentials_are_401(server, headers):
    assert_error(server.client.get("/api/v2/me", headers=headers), 401, "unauthorized")


def test_api_key_as_bearer_or_header(org, server):
    for headers in ({"Authorization": f"Bearer {org.key}"}, {"X-API-Key": org.key}):
        body = server.client.get("/api/v2/me", headers=headers).json()
        assert body["user"] is None
        assert body["organization"] == {"id": org.id, "name": org.name}
        assert body["auth"] == {"type": "api_key", "api_key_id": org.key_id, "expires_at": None}


def test_authorization_wins_over_x_api_key(org, other_org, server):
    headers = {"Authorization": f"Bearer {org.key}", "X-API-Key": other_org.key}
    assert server.client.get("/api/v2/me", headers=headers).json()["organization"]["id"] == org.id


def test_only_the_hash_of_a_key_is_stored(org, server):
    with server.runtime.store.session(org.id) as s:
        row = s.scalars(select(ApiKey).where(ApiKey.id == org.key_id)).one()
    assert row.secret_hash == hashlib.sha256(org.key.encode()).hexdigest()
    assert row.prefix == org.key[:12]
    assert org.key not in repr(row.__dict__)


def test_create_list_revoke_key(org, server):
    resp = org.post("/api/v2/api-keys", json={"name": "  checkout-backend  "})
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["name"] == "checkout-backend"
    assert created["secret"].startswith("lvk_") and len(created["secret"]) == 47
    assert created["prefix"] == created["secret"][:12]
    assert created["last_used_at"] is None
    listed = org.get("/api/v2/api-keys").json()["api_keys"]
    assert listed[0]["id"] == created["id"] and "secret" not in listed[0]
    # the new key works, then stops working once revoked
    new_headers = {"X-API-Key": created["secret"]}
    assert server.client.get("/api/v2/me", headers=new_headers).status_code == 200
    resp = org.delete(f"/api/v2/api-keys/{created['id']}")
    assert resp.json()["id"] == created["id"] and resp.json()["deleted"] is True
    assert_error(server.client.get("/api/v2/me", headers=new_headers), 401, "unauthorized")
    assert_error(org.delete(f"/api/v2/api-keys/{created['id']}"), 404, "not_found")
    assert created["id"] not in [k["id"] for k in org.get("/api/v2/api-keys").json()["api_keys"]]


def test_last_used_at_is_set_on_use(org):
    keys = {k["id"]: k for k in org.get("/api/v2/api-keys").json()["api_keys"]}
    assert keys[org.key_id]["last_used_at"] is not None


def test_key_name_rules(org):
    assert_error(org.post("/api/v2/api-keys", json={}), 422, "validation_error")
    err = assert_error(org.post("/api/v2/api-keys", json={"name": "x" * 101}), 422,
                       "validation_error")
    assert err["details"]["fields"][0]["code"] == "too_long"
    err = assert_error(org.post("/api/v2/api-keys", json={"name": "   "}), 422,
                       "validation_error")
    assert err["details"]["fields"][0]["code"] == "too_short"


def test_session_token_me_and_key_creator(org, server):
    token, user = _session_token(server, org)
    headers = {"Authorization": f"Bearer {token}"}
    me = server.client.get("/api/v2/me", headers=headers).json()
    assert me["user"] == {"id": user.id, "email": user.email, "name": "Ada"}
    assert me["auth"]["type"] == "session" and me["auth"]["expires_at"].endswith("Z")
    created = server.client.post("/api/v2/api-keys", json={"name": "k"}, headers=headers).json()
    assert created["created_by"] == {"id": user.id, "email": user.email}


def test_expired_session_token_is_401(org, server):
    token, _ = _session_token(server, org, expires_in=dt.timedelta(seconds=-1))
    assert_error(server.client.get("/api/v2/me", headers={"Authorization": f"Bearer {token}"}),
                 401, "unauthorized")


def test_contract_mode_forbids_api_keys_on_key_management(tmp_path):
    with running(make_settings(tmp_path, None, api_keys_manage_keys=False), "sqlite") as srv:
        from tests.server.conftest import new_org

        org = new_org(srv)
        before = org.get("/api/v2/api-keys")
        assert_error(before, 403, "forbidden")
        assert_error(org.post("/api/v2/api-keys", json={"name": "x"}), 403, "forbidden")
        assert_error(org.delete(f"/api/v2/api-keys/{org.key_id}"), 403, "forbidden")
        token, _ = _session_token(srv, org)
        listed = srv.client.get("/api/v2/api-keys", headers={"Authorization": f"Bearer {token}"})
        assert [k["id"] for k in listed.json()["api_keys"]] == [org.key_id]


def test_keys_of_another_org_are_invisible(org, other_org):
    assert org.key_id not in [k["id"] for k in other_org.get("/api/v2/api-keys").json()["api_keys"]]
    assert_error(other_org.delete(f"/api/v2/api-keys/{org.key_id}"), 404, "not_found")
    assert org.get("/api/v2/me").status_code == 200


def test_bootstrap_create_api_key_offline_and_while_running(tmp_path):
    first = create_api_key(data_dir=tmp_path, name="ci")
    assert first["organization_name"] == "Default" and first["secret"].startswith("lvk_")
    with pytest.raises(LookupError):
        create_api_key(data_dir=tmp_path, org_name="Acme")
    acme = create_api_key(data_dir=tmp_path, org_name="Acme", create_org=True)
    assert acme["organization_created"] and acme["organization_id"] != first["organization_id"]
    with running(make_settings(tmp_path, None), "sqlite") as srv:
        live = create_api_key(data_dir=tmp_path, org_name="Acme", name="while-running")
        for key, org_id in ((first, first["organization_id"]), (live, acme["organization_id"])):
            me = srv.client.get("/api/v2/me", headers={"X-API-Key": key["secret"]}).json()
            assert me["organization"]["id"] == org_id


def test_bootstrap_on_postgres_when_available(tmp_path):
    from tests.server.conftest import PG_URL

    if not PG_URL:
        pytest.skip("LEVERED_TEST_POSTGRES_URL not set")
    with database_url("postgres") as url:
        key = create_api_key(data_dir=tmp_path, database_url=url)
        with running(make_settings(tmp_path, url), "postgres") as srv:
            me = srv.client.get("/api/v2/me", headers={"X-API-Key": key["secret"]})
            assert me.json()["organization"]["name"] == "Default"
