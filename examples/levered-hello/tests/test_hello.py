"""Tests of the template plugin, using only ``levered_core.testing``: the real CLI, a stub API."""

from __future__ import annotations

import pytest

from levered_core.testing import StubAPI, envelope_error, run_cli

ME = {"user": {"email": "ada@acme.test"}, "organization": {"name": "Acme"}, "meta": {"request_id": "req_1"}}
LISTED = {"optimizations": [{"name": "Hero", "status": "live"}, {"name": "Pricing", "status": "completed"}],
          "meta": {"request_id": "req_2"}}


@pytest.fixture
def api():
    with StubAPI() as stub:
        yield stub


def hello(api, tmp_path, *args):
    env = {"LEVERED_API_URL": api.url, "LEVERED_API_KEY": "lvk_test"}
    return run_cli("hello", *args, home=tmp_path, env=env)


def test_whoami_shows_the_caller(api, tmp_path):
    api.add("GET", "/api/v2/me", 200, ME)
    run = hello(api, tmp_path, "whoami")
    assert run.exit_code == 0, run.stderr
    assert "ada@acme.test" in run.stdout and "Acme" in run.stdout
    assert api.requests[0]["headers"]["Authorization"] == "Bearer lvk_test"


def test_optimizations_lists_names_and_passes_the_limit(api, tmp_path):
    api.add("GET", "/api/v2/optimizations", 200, LISTED)
    run = hello(api, tmp_path, "optimizations", "--limit", "5", "-f", "value")
    assert run.stdout.splitlines() == ["Hero live", "Pricing completed"]
    assert api.requests[0]["query"] == "limit=5"
    assert hello(api, tmp_path, "optimizations", "--json").json == LISTED


def test_api_errors_keep_their_exit_codes(api, tmp_path):
    api.add("GET", "/api/v2/me", 401, envelope_error("unauthorized", "Not authenticated"))
    run = hello(api, tmp_path, "whoami")
    assert run.exit_code == 3 and "Not authenticated" in run.stderr
