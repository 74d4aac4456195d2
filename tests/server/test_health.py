"""Which replica answered: `X-Levered-Replica`, /healthz's replica, /readyz, the start-up line."""

from __future__ import annotations

import logging
import os
import socket
import warnings

import pytest

from levered_server.app import create_app
from levered_server.replica import redacted, state_backend
from levered_server.settings import settings_from_env
from tests.server.conftest import make_settings, running
from tests.server.factories import make_optimization

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_healthz_names_the_replica(server):
    resp = server.client.get("/healthz")
    body = resp.json()
    assert resp.status_code == 200 and body["status"] == "ok" and body["version"] == "0.1.0"
    replica = body["replica"]
    assert set(replica) == {"id", "pid", "started_at", "version"}
    assert replica["id"] == f"{socket.gethostname()}:{server.settings.port}" == resp.headers["x-levered-replica"]
    assert replica["pid"] == os.getpid() and replica["started_at"].endswith("Z")


def test_every_response_carries_the_replica_header(server, org):
    opt = make_optimization(org)
    expected = server.client.get("/healthz").headers["x-levered-replica"]
    responses = [
        org.get("/api/v2/me"),  # routed, authenticated
        server.client.get("/api/v2/me"),  # 401 envelope
        server.client.get("/no/such/path"),  # 404
        server.client.post(f"/api/v2/optimizations/{opt['id']}/serve", json={"anonymous_id": "u1"}),  # fast path
        server.client.post("/api/v2/optimizations/nope/serve", json={"anonymous_id": "u1"}),  # fast path 404
        server.client.options(f"/api/v2/optimizations/{opt['id']}/serve"),  # CORS preflight
        server.client.get("/readyz"),
    ]
    assert [r.headers.get("x-levered-replica") for r in responses] == [expected] * len(responses)


def test_replica_id_setting_names_the_replica_even_when_rate_limited(tmp_path):
    settings = make_settings(tmp_path, None, replica_id="web-7", rate_limit_per_minute=1)
    with running(settings, "sqlite") as srv:
        assert srv.client.get("/healthz").json()["replica"]["id"] == "web-7"
        codes = [(r.status_code, r.headers["x-levered-replica"]) for r in
                 (srv.client.get("/api/v2/me") for _ in range(2))]
        assert codes == [(401, "web-7"), (429, "web-7")]
    assert settings_from_env({"LEVERED_REPLICA_ID": " web-8 "}).replica_id == "web-8"
    for bad in ("two words", "é", "x" * 201):
        with pytest.raises(ValueError, match="LEVERED_REPLICA_ID"):
            settings_from_env({"LEVERED_REPLICA_ID": bad})


def test_readyz_reports_replica_backend_and_served_versions(server, org):
    resp = server.client.get("/readyz")
    body = resp.json()
    assert resp.status_code == 200 and body["status"] == "ready" and "reason" not in body
    assert body["replica"] == server.client.get("/healthz").json()["replica"]
    assert body["state_backend"] == {"sqlite": "sqlite", "postgres": "postgresql"}[server.backend]
    opt = make_optimization(org)
    assert opt["id"] not in body["serving"]
    served = server.client.post(f"/api/v2/optimizations/{opt['id']}/serve", json={"anonymous_id": "u1"})
    assert served.status_code == 200, served.text
    serving = server.client.get("/readyz").json()["serving"]
    assert serving[opt["id"]] == served.json()["model_version"] == 0
    assert server.client.get("/readyz", headers={"Authorization": "Bearer nonsense"}).status_code == 200


def test_readyz_is_503_with_a_reason_until_started_and_when_the_store_is_down(tmp_path, monkeypatch):
    app = create_app(make_settings(tmp_path, None))
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: never started
    resp = client.get("/readyz")
    assert resp.status_code == 503 and resp.json()["reason"] == "the server is starting or stopping"
    assert resp.json()["serving"] == {} and client.get("/healthz").status_code == 503
    with running(make_settings(tmp_path / "up", None), "sqlite") as srv:
        monkeypatch.setattr(srv.runtime.store, "ping", lambda: False)
        resp = srv.client.get("/readyz")
        assert resp.status_code == 503 and resp.json()["status"] == "unavailable"
        assert resp.json()["reason"] == "the state database does not answer"


def test_the_start_up_line_says_what_this_replica_runs(tmp_path, caplog):
    settings = make_settings(tmp_path, None, replica_id="web-1", port=3999)
    with caplog.at_level(logging.INFO, logger="levered_server"), running(settings, "sqlite"):
        pass
    lines = [r.getMessage() for r in caplog.records if "listening on" in r.getMessage()]
    assert lines == [f"levered-server 0.1.0 replica web-1 pid {os.getpid()} listening on "
                     f"http://127.0.0.1:3999; state sqlite:///{tmp_path}/levered.sqlite3; managed "
                     f"warehouse duckdb; data dir {tmp_path}"]


def test_urls_in_health_and_logs_never_show_a_password():
    url = "postgresql+psycopg://levered:hunter2@db.internal:5432/levered?sslmode=require"
    assert "hunter2" not in redacted(url) and redacted(url).startswith("postgresql+psycopg://levered:***@db")
    assert state_backend(url) == "postgresql" and state_backend("sqlite:////x.db") == "sqlite"
