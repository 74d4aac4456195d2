"""The Textual application: a refresh loop over :func:`~levered_dashboard.data.fetch_round`.

Requests run on a daemon thread (one round at a time), so the screen stays responsive while
the core client waits or retries, and quitting never waits for a hung server. Each finished
round replaces the snapshot and every open screen updates its widgets in place.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.app import App
from textual.binding import Binding
from textual.message import Message

from levered_dashboard.data import Snapshot, fetch_round
from levered_dashboard.screens import DashboardScreen, DetailScreen, HelpScreen, ListScreen

if TYPE_CHECKING:
    from textual.timer import Timer

    from levered_core.plugin_api import LeveredClient

CSS = """
#title { height: 1; padding: 0 1; background: $primary; color: $text; text-style: bold; }
#status { height: 1; padding: 0 1; background: $panel; color: $text; }
#status.-problem { background: $error; color: $text; text-style: bold; }
#optimizations { height: 1fr; }
#empty { padding: 1 2; }
#panels { height: 1fr; }
#panels.-wide { layout: grid; grid-size: 2; grid-gutter: 0 1; grid-rows: auto; }
Panel { height: auto; border: round $primary; border-title-color: $text; padding: 0 1; text-wrap: nowrap; }
HelpScreen { align: center middle; }
#keys { width: auto; max-width: 90%; height: auto; border: round $primary; padding: 1 2; background: $surface; }
"""


class RoundDone(Message):
    """A round of requests finished (posted from the fetching thread)."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class DashboardApp(App[None]):
    """``levered dashboard``: optimizations learning, refreshed every few seconds."""

    CSS = CSS
    TITLE = "Levered dashboard"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("r", "refresh_now", "Refresh"),
        Binding("question_mark", "keys", "Keys", key_display="?"),
        Binding("ctrl+c", "quit", show=False, priority=True),
    ]

    def __init__(self, client: LeveredClient, refresh_seconds: float, open_id: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """Build the app.

        :param client: the core's API client; only ``GET`` requests are sent.
        :param refresh_seconds: seconds between rounds of requests.
        :param open_id: an optimization ID to open on start (its detail screen).
        :param clock: the wall clock (seconds since the epoch) behind every "ago" on screen;
            snapshot tests pass a fixed one.
        """
        super().__init__()
        self.client = client
        self.refresh_seconds = refresh_seconds
        self.open_id = open_id
        self.clock = clock
        #: the refresh and the one-second status timers (snapshot tests pause them)
        self.timers: list[Timer] = []
        self.snapshot = Snapshot(client.api_url)
        self.rounds = 0
        self._busy = False
        self._again = False

    def on_mount(self) -> None:
        self.push_screen(ListScreen())
        if self.open_id:
            self.push_screen(DetailScreen(self.open_id))
        self.timers = [self.set_interval(self.refresh_seconds, self._scheduled), self.set_interval(1.0, self._tick)]
        self.action_refresh_now()

    def now(self) -> dt.datetime:
        """The app's clock as an aware UTC datetime (what relative times are measured from)."""
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def action_refresh_now(self) -> None:
        """Start a round now, or right after the one in flight."""
        if self._busy:
            self._again = True
            return
        self._busy = True
        threading.Thread(target=self._round, name="levered-dashboard-fetch", daemon=True).start()

    def _scheduled(self) -> None:
        # a round still in flight (a slow or unreachable server) makes this tick's round
        if not self._busy:
            self.action_refresh_now()

    def _round(self) -> None:
        # post_message is thread-safe and a no-op once the app has closed
        self.post_message(RoundDone(fetch_round(self.client, self.snapshot, self.clock)))

    def on_round_done(self, message: RoundDone) -> None:
        snapshot = message.snapshot
        self.snapshot = snapshot
        self.rounds += 1
        self._busy = False
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen) and screen.is_mounted and screen.composed:
                screen.show(snapshot)
        if self._again:
            self._again = False
            self.action_refresh_now()

    def _tick(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen) and screen.is_mounted and screen.composed:
                screen.tick()

    def action_keys(self) -> None:
        """Show the keys (``?``)."""
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
        else:
            self.push_screen(HelpScreen())
