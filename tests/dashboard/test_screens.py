"""The screens' widgets: every panel at 80×24 and wide, and a trained model's numbers on screen."""

from __future__ import annotations

from levered_dashboard.app import DashboardApp
from levered_dashboard.screens import DetailScreen

from tests.dashboard.conftest import cells, client_for, drive, screen_text, wait_for


def test_detail_shows_every_panel_at_80x24_and_wide(server):
    hero = server.ids["Landing page hero"]["id"]
    for size in ((80, 24), (200, 60)):
        app = DashboardApp(client_for(server), refresh_seconds=30, open_id=hero)

        async def script(pilot, app=app):
            await wait_for(pilot, lambda: app.rounds >= 1)
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, DetailScreen)
            texts = {panel.border_title: str(panel.render()) for panel in screen.query("Panel")}
            assert list(texts) == ["Allocation", "Reward rate", "Lift", "Factor importance", "Over time", "Model"]
            assert "#1 Ship faster / Get started" in texts["Allocation"]
            assert "exposures/day" in texts["Over time"] or "not available" in texts["Over time"]
            assert "Version      0" in texts["Model"] and "untrained" in texts["Model"]
            width = app.size.width
            assert all(len(line) <= width for text in texts.values() for line in text.splitlines())
            assert screen.query_one("#panels").has_class("-wide") is (width >= 160)

        drive(app, script, size=size)


def test_a_trained_model_shows_leader_lift_and_panels():
    """The server cannot train yet, so the docs/api.md example bodies come from a scripted API."""
    from levered_core.client import LeveredClient
    from levered_core.testing import StubAPI
    from tests.dashboard.examples import OPT_ID
    from tests.dashboard.make_screenshots import script

    with StubAPI() as api:
        script(api)
        app = DashboardApp(LeveredClient(api.url, "lvk_test"), refresh_seconds=30)

        async def run(pilot):
            await wait_for(pilot, lambda: app.rounds >= 1)
            await pilot.pause()
            row = cells(app)["Landing Page Hero"]
            assert row[4:7] == ["#3 Buil…", "+18% [+4,+33]", "62%"]
            await pilot.press("enter")
            assert app.screen.optimization_id == OPT_ID
            await pilot.pause()
            text = screen_text(app)
            assert "> #3 Build better / Get started" in text or ">#3 Build better / Get started" in text
            assert "60.5%" in text and "62.0%" in text and "55.8%" not in text
            assert "Measured vs holdout  +21.8% [-22.0%, +65.6%]" in text
            assert "Version      12" not in text  # below the fold at 80×24
            await pilot.press("end")
            await pilot.pause(0.3)
            assert "Version      12" in screen_text(app)

        drive(app, run)
    assert all(r["method"] == "GET" for r in api.requests)
