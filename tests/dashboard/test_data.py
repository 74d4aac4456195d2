"""One round of requests against a scripted API: what is kept and what is said when parts fail."""

from __future__ import annotations

import pytest
from levered_dashboard.data import Snapshot, fetch_round

from levered_core.client import LeveredClient
from levered_core.testing import StubAPI, envelope_error
from tests.dashboard.examples import MODEL_ID, OPT_ID, bodies

LIST = "/api/v2/optimizations"
RESULTS = f"/api/v2/optimizations/{OPT_ID}/results"
STATE = f"/api/v2/models/{MODEL_ID}/state"


@pytest.fixture
def api():
    with StubAPI() as stub:
        yield stub


def client(url: str) -> LeveredClient:
    return LeveredClient(url, "lvk_test", timeout=5, sleep=lambda _: None)


def script(api: StubAPI, list_status: int = 200, results_status: int = 200) -> None:
    optimization, results, state = bodies()
    api.add("GET", LIST, list_status, {"optimizations": [optimization]} if list_status == 200
            else envelope_error("unauthorized", "Invalid token"))
    api.add("GET", RESULTS, results_status, results if results_status == 200
            else envelope_error("warehouse_error", "the metric SQL failed"))
    api.add("GET", STATE, 200, state)


def test_a_round_gets_the_list_results_and_state_with_gets_only(api):
    script(api)
    snapshot = fetch_round(client(api.url), Snapshot(api.url))
    assert snapshot.problem is None and snapshot.updated_at is not None
    [item] = snapshot.items
    assert item.results["model_version"] == 12 and item.state["version"] == 12
    # Lift history and guardrails are extensions: asked for, and absent here (404) without harm.
    assert {(r["method"], r["path"]) for r in api.requests} == {
        ("GET", LIST), ("GET", RESULTS), ("GET", STATE), ("GET", f"{LIST}/{OPT_ID}/lift-history"),
        ("GET", f"{LIST}/{OPT_ID}/guardrails")}
    assert item.lift_history is None and item.guardrails is None and snapshot.problem is None
    assert "limit=100" in next(r["query"] for r in api.requests if r["path"] == LIST)


def test_a_round_is_stamped_by_the_given_clock_and_a_failed_one_keeps_the_stamp(api):
    script(api)
    first = fetch_round(client(api.url), Snapshot(api.url), clock=lambda: 1_000.0)
    assert first.updated_at == 1_000.0
    api.routes.clear()
    script(api, list_status=401)
    second = fetch_round(client(api.url), first, clock=lambda: 2_000.0)
    assert second.problem_kind == "auth" and second.updated_at == 1_000.0


def test_failing_results_keep_the_last_good_ones_and_say_why(api):
    script(api)
    first = fetch_round(client(api.url), Snapshot(api.url))
    api.routes.clear()
    script(api, results_status=502)
    second = fetch_round(client(api.url), first)
    [item] = second.items
    assert second.problem is None
    assert item.results == first.items[0].results  # kept
    assert item.results_error.startswith("not available: the metric SQL failed")


def test_a_refused_credential_keeps_the_data_and_says_not_authenticated(api):
    script(api)
    first = fetch_round(client(api.url), Snapshot(api.url))
    api.routes.clear()
    script(api, list_status=401)
    second = fetch_round(client(api.url), first)
    assert second.problem_kind == "auth" and "levered login" in second.problem
    assert second.items == first.items and second.updated_at == first.updated_at


def test_an_unreachable_server_is_a_problem_not_an_exception():
    with StubAPI() as stub:
        url = stub.url
    snapshot = fetch_round(client(url), Snapshot(url))
    assert snapshot.problem == "Server unreachable" and f"cannot reach {url}" in snapshot.problem_detail


def test_an_optimization_without_a_model_says_so(api):
    optimization, results, _ = bodies()
    optimization["model_id"] = None
    api.add("GET", LIST, 200, {"optimizations": [optimization]})
    api.add("GET", RESULTS, 200, results)
    [item] = fetch_round(client(api.url), Snapshot(api.url)).items
    assert item.state is None and "no model" in item.state_error


def test_a_list_of_an_unknown_shape_is_a_problem(api):
    api.add("GET", LIST, 200, {"optimizations": "many"})
    snapshot = fetch_round(client(api.url), Snapshot(api.url))
    assert snapshot.problem == "Unexpected response" and snapshot.items == []
