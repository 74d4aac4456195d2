"""Resources against servers that offer less than ours: no ``offset``, no extension endpoints."""

from __future__ import annotations

import pytest

from levered_core.client import LeveredClient
from levered_core.errors import ExitCode, NotFound
from levered_core.resources import NOT_OFFERED, PAGE
from tests.stub_api import StubAPI, envelope_error


@pytest.fixture
def api():
    with StubAPI() as stub:
        yield stub


def test_paging_stops_when_the_server_ignores_offset(api):
    page = [{"id": f"{i:08x}-0000-4000-8000-000000000000", "name": f"o{i}"} for i in range(PAGE)]
    api.add("GET", "/api/v2/optimizations", 200, {"optimizations": page})  # the same page, whatever the offset
    client = LeveredClient(api.url, "token", sleep=lambda _: None)
    assert [o["name"] for o in client.optimizations.iter_all()] == [o["name"] for o in page]
    assert [r["query"].count("offset=100") for r in api.requests] == [0, 1]


def test_the_404_of_an_extension_endpoint_says_the_server_may_not_offer_it(api):
    api.add("GET", "/api/v2/warehouse/status", 404, envelope_error("not_found", "Not found"))
    with pytest.raises(NotFound) as raised:
        LeveredClient(api.url, "token").warehouse.status()
    assert raised.value.exit_code == ExitCode.NOT_FOUND
    assert raised.value.message == "Not found" + NOT_OFFERED


def test_the_404_of_a_documented_endpoint_is_left_as_it_is(api):
    api.add("GET", "/api/v2/optimizations/o1", 404, envelope_error("not_found", "optimization o1 not found"))
    with pytest.raises(NotFound) as raised:
        LeveredClient(api.url, "token").optimizations.get("o1")
    assert raised.value.message == "optimization o1 not found"
