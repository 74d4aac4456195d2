"""The Textual app driven headless (Pilot) against a real server with seeded data."""

from __future__ import annotations

from levered_dashboard.app import DashboardApp
from levered_dashboard.screens import DetailScreen, HelpScreen, ListScreen

from tests.dashboard.conftest import cells, client_for, drive, screen_text, wait_for


def test_list_then_detail_then_back_then_keys_then_quit(server):
    app = DashboardApp(client_for(server), refresh_seconds=30)

    async def script(pilot):
        await wait_for(pilot, lambda: app.rounds >= 1)
        await pilot.pause()
        text = screen_text(app)
        assert "Landing pag" in text and "Pricing pag" in text  # cut to fit 80 columns
        assert "Optimization" in text and "Lift [95%]" in text and "updated" in text
        assert isinstance(app.screen, ListScreen)
        first = app.screen.highlighted()
        await pilot.press("down")
        second = app.screen.highlighted()
        assert second != first
        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen) and app.screen.optimization_id == second
        name = app.snapshot.item(second).optimization["name"]
        await pilot.pause()
        detail = screen_text(app)
        assert name in detail and "Allocation" in detail and "traffic" in detail and "P(best)" in detail
        assert "Reward rate" in detail
        await pilot.press("escape")
        assert isinstance(app.screen, ListScreen) and app.screen.highlighted() == second
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "refresh now" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, ListScreen)
        await pilot.press("q")

    drive(app, script)
    assert app.return_code == 0


def test_refresh_shows_new_exposures(own_server):
    app = DashboardApp(client_for(own_server), refresh_seconds=2)

    async def script(pilot):
        await wait_for(pilot, lambda: app.rounds >= 1)
        before = cells(app)["Pricing page CTA"][3]
        rounds = app.rounds
        own_server.serve("Pricing page CTA", range(100, 160))
        await pilot.press("r")
        await wait_for(pilot, lambda: app.rounds > rounds and cells(app)["Pricing page CTA"][3] != before)
        assert int(cells(app)["Pricing page CTA"][3]) >= int(before) + 60
        # and the interval alone refreshes too
        rounds = app.rounds
        await wait_for(pilot, lambda: app.rounds > rounds, timeout=10)

    drive(app, script)


def test_server_down_says_so_keeps_the_data_and_recovers(own_server):
    app = DashboardApp(client_for(own_server), refresh_seconds=2)

    async def script(pilot):
        await wait_for(pilot, lambda: app.rounds >= 1)
        shown = cells(app)
        own_server.stop()
        await pilot.press("r")
        await wait_for(pilot, lambda: app.snapshot.problem is not None)
        await pilot.pause(1.1)  # the status line ticks every second
        text = screen_text(app)
        assert "Server unreachable" in text and "retrying every 2s" in text, text
        assert cells(app) == shown  # the last data stays on screen
        await pilot.press("down", "enter")
        assert isinstance(app.screen, DetailScreen)
        assert "Server unreachable" in screen_text(app)
        own_server.start()
        await wait_for(pilot, lambda: app.snapshot.problem is None, timeout=30)
        await pilot.pause(1.1)
        assert "updated" in screen_text(app) and "unreachable" not in screen_text(app)

    drive(app, script)
    assert app.return_code in (0, None)


def test_a_refused_credential_is_on_screen_not_a_traceback(server):
    app = DashboardApp(client_for(server, key="lvk_" + "x" * 43), refresh_seconds=30)

    async def script(pilot):
        await wait_for(pilot, lambda: app.rounds >= 1)
        await pilot.pause(1.1)
        assert app.snapshot.problem_kind == "auth"
        assert "Not authenticated" in screen_text(app) and "levered login" in screen_text(app)
        await pilot.press("q")

    drive(app, script)
