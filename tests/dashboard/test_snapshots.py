"""Snapshot tests (pytest-textual-snapshot): whole screens as SVG.

Each test drives the app headless against a seeded ``levered-server`` (a trained model's
screens: against docs/api.md's example bodies) and compares the screen with
``__snapshots__/test_snapshots/<test>.svg``. How the screens are made the same on every run
is in :mod:`tests.dashboard.stable`. After an intended change of the screens, regenerate them
with ``pytest tests/dashboard/test_snapshots.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from levered_dashboard.app import DashboardApp

from levered_core.testing import StubAPI
from tests.dashboard.conftest import Server, wait_for
from tests.dashboard.examples import OPT_ID
from tests.dashboard.stable import (
    SHOWN_IDS,
    Clock,
    example_clock,
    masked_client,
    settle,
    stable_client,
    start_stable_server,
)

#: What the status line says: "every 10s", the default.
REFRESH = 10.0


@pytest.fixture(scope="module")
def stable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with fixed traffic, shared by the module's read-only tests."""
    running = start_stable_server(tmp_path_factory.mktemp("dashboard-snapshots"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def trained() -> Iterator[StubAPI]:
    """A scripted API answering with a trained model: docs/api.md's example bodies.

    The seeded server's models are untrained (a trained posterior differs in the third digit on
    every run, see :mod:`tests.dashboard.stable`), so the trained screens come from here.
    """
    from tests.dashboard.make_screenshots import script

    with StubAPI() as api:
        script(api)
        yield api


@pytest.fixture
def own_stable(tmp_path: pathlib.Path) -> Iterator[Server]:
    """A server with fixed traffic of the test's own, which the test stops."""
    running = start_stable_server(tmp_path / "server")
    yield running
    running.stop()


def dashboard(server: Server, open_id: str | None = None) -> DashboardApp:
    """The app on ``server`` with a frozen clock."""
    return DashboardApp(stable_client(server), REFRESH, open_id, clock=Clock())


def test_list_80x24(snap_compare: Callable[..., bool], stable: Server) -> None:
    """The list of both optimizations at 80×24, the first row highlighted."""
    app = dashboard(stable)
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)


def test_detail_80x24_after_down_and_enter(snap_compare: Callable[..., bool], stable: Server) -> None:
    """The second row (Pricing page CTA) opened with ↓ and enter: the panels stack and scroll."""
    app = dashboard(stable)
    assert snap_compare(app, press=["down", "enter"], terminal_size=(80, 24), run_before=settle)


def test_detail_wide_160x48(snap_compare: Callable[..., bool], stable: Server) -> None:
    """Landing page hero (cmab, 4 variants) opened with enter at 160×48: panels side by side."""
    app = dashboard(stable)
    assert snap_compare(app, press=["down", "up", "enter"], terminal_size=(160, 48), run_before=settle)


def test_detail_started_on_one_optimization(snap_compare: Callable[..., bool], stable: Server) -> None:
    """``levered dashboard ID``: the detail first, at a common 100×40."""
    app = dashboard(stable, open_id=SHOWN_IDS["Landing page hero"][0])
    assert snap_compare(app, terminal_size=(100, 40), run_before=settle)


def test_keys_overlay(snap_compare: Callable[..., bool], stable: Server) -> None:
    """``?`` over the list."""
    app = dashboard(stable)
    assert snap_compare(app, press=["question_mark"], terminal_size=(80, 24), run_before=settle)


def test_no_color(snap_compare: Callable[..., bool], stable: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """``NO_COLOR`` set: the same list in greys only."""
    monkeypatch.setenv("NO_COLOR", "1")  # read (and removed) by Textual when the app is built
    app = dashboard(stable)
    assert app.no_color
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)


def test_server_down_keeps_the_data(snap_compare: Callable[..., bool], own_stable: Server) -> None:
    """The server stopped after a round: the red status line, the last data still on screen."""
    app = dashboard(own_stable)

    async def stop_then_refresh(pilot: Any) -> None:
        await wait_for(pilot, lambda: app.rounds >= 1)
        own_stable.stop()
        await pilot.press("r")
        await wait_for(pilot, lambda: app.snapshot.problem is not None)
        await settle(pilot, rounds=2, seconds=65)

    assert snap_compare(app, terminal_size=(80, 24), run_before=stop_then_refresh)
    assert app.snapshot.problem_kind == "unreachable"


def trained_dashboard(api: StubAPI, open_id: str | None = None) -> DashboardApp:
    """The app on the scripted API, its clock at the example's ``generated_at``."""
    return DashboardApp(masked_client(api.url, "lvk_test"), REFRESH, open_id, clock=example_clock())


def test_trained_list_wide_140x24(snap_compare: Callable[..., bool], trained: StubAPI) -> None:
    """A trained model's leader, lift and P(best) in the list's wide cells (140 columns and more)."""
    assert snap_compare(trained_dashboard(trained), terminal_size=(140, 24), run_before=settle)


def test_trained_detail_wide_160x48(snap_compare: Callable[..., bool], trained: StubAPI) -> None:
    """Every panel of a trained model side by side."""
    app = trained_dashboard(trained, open_id=OPT_ID)
    assert snap_compare(app, terminal_size=(160, 48), run_before=settle)


def test_trained_detail_with_lift_history_and_a_guardrail_stop(snap_compare: Callable[..., bool],
                                                              trained: StubAPI) -> None:
    """The Lift panel with the stored daily lift as sparklines and a guardrail's automatic stop
    (server extensions: the screens above come from a server without them)."""
    points = [{"date": f"2026-11-{day:02d}", "policy_lift_percent": lift, "best_lift_percent": lift * 1.3}
              for day, lift in zip(range(8, 22), (0, 2, 1, 4, 6, 5, 8, 9, 11, 10, 12, 14, 13, 14.8), strict=True)]
    trained.add("GET", f"/api/v2/optimizations/{OPT_ID}/lift-history", 200,
                {"optimization_id": OPT_ID, "points": points})
    trained.add("GET", f"/api/v2/optimizations/{OPT_ID}/guardrails", 200, {
        "optimization_id": OPT_ID, "guardrails": [], "auto_stop": True, "stop_reason": {
            "metric_name": "Revenue per user", "lift_percent": -6.2, "p_value": 0.003,
            "stopped_at": "2026-11-21T11:00:00Z"}})
    app = trained_dashboard(trained, open_id=OPT_ID)
    assert snap_compare(app, terminal_size=(160, 48), run_before=settle)
