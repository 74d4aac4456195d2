"""What makes the dashboard's screens the same on every run, for its snapshot tests.

Three things on screen change from run to run although the dashboard works the same:

- **the clock**: "updated 4s ago", "data from 1m 5s ago". The app takes a ``clock``; the tests
  pass a :class:`Clock` that stands still until the test moves it, and :func:`settle` pauses the
  app's refresh and status timers before the screen is captured.
- **the server's random choices**: ``serve`` picks variants at random and the holdout hashes a
  random optimization ID, so the seeded traffic here is *ingested* instead (docs/api.md 11.2), with
  explicit variants, holdout flags and timestamps on fixed past days, and the two optimizations
  are created in different seconds (the list is newest first, ties broken by the random IDs).
  The models stay untrained: a trained model's posterior is drawn with a seed made from its
  random model ID, so its numbers would differ in the third digit on every run.
- **the server's random IDs and its free port**: :func:`stable_client` talks to
  ``http://levered.test`` through a transport adapter that sends each request to the real
  server and swaps the server's UUIDs for fixed ones in paths and bodies. Nothing else in the
  responses is touched.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import time
from typing import Any

import requests
from levered_dashboard.screens import DashboardScreen
from requests.adapters import HTTPAdapter

from levered_core.client import LeveredClient
from tests.dashboard.conftest import HERO, PRICING, Server, wait_for
from tests.dashboard.examples import RESULTS

#: The URL the dashboard is told (``.test`` never resolves, so nothing can leak past the adapter).
DISPLAY_URL = "http://levered.test"
#: The snapshot tests' "now": the morning after the last seeded day.
FROZEN = dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.UTC).timestamp()
#: The fixed IDs shown instead of the server's (those of docs/api.md's examples).
SHOWN_IDS = {"Landing page hero": ("699ede80-c94b-4f98-9c79-dd3e07748703", "4754cae0-9a5d-4691-91af-6d15ccc1f82e"),
             "Pricing page CTA": ("5f0c3a77-0d1e-4b8a-9c55-7f1e2d3c4b5a", "0b6e8d21-7c3f-4e59-a1d2-3e4f5a6b7c8d")}
#: No ``@start_date`` filter: the seeded events are dated before the optimizations were created.
SQL = "SELECT anonymous_id, timestamp_utc FROM rewards WHERE name = 'signup'"
#: Per optimization and day: optimized exposures per variant (the share moves as a bandit's would).
TRAFFIC = {"Pricing page CTA": {"2026-11-19": [12, 12], "2026-11-20": [15, 25], "2026-11-21": [16, 44]},
           "Landing page hero": {"2026-11-19": [6, 6, 6, 6], "2026-11-20": [8, 9, 13, 10],
                                 "2026-11-21": [7, 8, 26, 15]}}
#: Per optimization: every n-th exposure of variant k converts.
CONVERT_EVERY = {"Pricing page CTA": [5, 3], "Landing page hero": [7, 6, 3, 4]}
HOLDOUT_PER_DAY = 4


class Clock:
    """A wall clock that stands still until the test moves it."""

    def __init__(self, now: float = FROZEN) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


class Masked(HTTPAdapter):
    """Sends requests for ``shown_url`` to ``target`` and shows ``ids`` (real → shown) in place of the real IDs."""

    def __init__(self, target: str, ids: dict[str, str], shown_url: str = DISPLAY_URL) -> None:
        super().__init__()
        self.target = target
        self.ids = ids
        self.shown_url = shown_url

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        """Send to the real server; swap the IDs on the way out and back (UUIDs: same length)."""
        url = (request.url or "").replace(self.shown_url, self.target, 1)
        for real, shown in self.ids.items():
            url = url.replace(shown, real)
        request.url = url
        response = super().send(request, *args, **kwargs)
        body = response.content
        for real, shown in self.ids.items():
            body = body.replace(real.encode(), shown.encode())
        response._content = body  # what .content and .json() read from here on
        return response


async def settle(pilot: Any, rounds: int = 1, seconds: float = 4) -> None:
    """Wait for ``rounds`` rounds, stop the app's timers, then let ``seconds`` pass on its :class:`Clock`."""
    app = pilot.app
    await wait_for(pilot, lambda: app.rounds >= rounds)
    for timer in app.timers:  # no round and no tick while the screen is captured
        timer.pause()
    app.clock.advance(seconds)
    for screen in app.screen_stack:
        if isinstance(screen, DashboardScreen) and screen.is_mounted:
            screen.tick()
    await pilot.pause()


def example_clock() -> Clock:
    """A clock at the ``generated_at`` of docs/api.md's results example (trained 3 minutes before)."""
    return Clock(dt.datetime.fromisoformat(RESULTS["generated_at"].replace("Z", "+00:00")).timestamp())


def masked_client(target: str, key: str, ids: dict[str, str] | None = None,
                  shown_url: str = DISPLAY_URL) -> LeveredClient:
    """A client that shows ``shown_url`` but talks to ``target``, shows ``ids`` (real → shown), never waits to retry."""
    client = LeveredClient(shown_url, key, timeout=10, sleep=lambda _: None)
    client.session.mount(client.api_url, Masked(target, ids or {}, client.api_url))
    return client


def stable_client(server: Server) -> LeveredClient:
    """A client of a :func:`start_stable_server` server, showing :data:`DISPLAY_URL` and the fixed IDs."""
    ids = {}
    for name, (opt_id, model_id) in SHOWN_IDS.items():
        ids[server.ids[name]["id"]] = opt_id
        ids[server.ids[name]["model_id"]] = model_id
    return masked_client(server.url, server.api_key, ids)


def _traffic(server: Server, name: str, design: list[dict[str, Any]]) -> None:
    opt = server.ids[name]
    levels = [dict(zip((f["name"] for f in design), combo, strict=True)) for combo in _combinations(design)]
    context = {"country": ["US", "DE"]} if opt.get("training_data_config", {}).get("context_factors") else None
    exposures, rewards = [], []
    seen = [0] * len(levels)
    for day, counts in TRAFFIC[name].items():
        visitors = [(0, True)] * HOLDOUT_PER_DAY + [(k, False) for k, n in enumerate(counts) for _ in range(n)]
        for i, (k, holdout) in enumerate(visitors):
            anon = f"{name[:4].lower()}-{day}-{i}"
            at = dt.datetime.fromisoformat(f"{day}T08:00:00+00:00") + dt.timedelta(minutes=7 * i)
            event: dict[str, Any] = {"anonymous_id": anon, "optimization_id": opt["id"], "variant": levels[k],
                                     "in_holdout": holdout, "timestamp": at.isoformat().replace("+00:00", "Z")}
            if context:
                event["context"] = {"country": context["country"][i % 2]}
            exposures.append(event)
            seen[k] += 1
            if seen[k] % CONVERT_EVERY[name][k] == 0:
                rewards.append({"anonymous_id": anon, "name": "signup",
                                "timestamp": (at + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")})
    for path, events in (("exposures", exposures), ("rewards", rewards)):
        status, answer = server.api("POST", f"/api/v2/ingest/{path}", {"events": events})
        assert status == 200, answer


def _combinations(design: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    # variant numbering (docs/api.md 2.1): the first factor varies slowest
    combos: list[tuple[Any, ...]] = [()]
    for factor in design:
        combos = [(*c, level) for c in combos for level in factor["levels"]]
    return combos


def start_stable_server(data_dir: pathlib.Path) -> Server:
    """Start a fresh server and seed the two optimizations of ``conftest`` with fixed traffic."""
    server = Server.launch(data_dir)
    status, metric = server.api("POST", "/api/v2/warehouse/metrics", {
        "name": "Sign-ups", "sql": SQL, "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc"}})
    assert status == 201, metric
    for spec in (PRICING, HERO):
        if server.ids:  # lifecycle times are whole seconds: make "newest first" unambiguous
            time.sleep(1.05 - time.time() % 1)
        status, created = server.api("POST", "/api/v2/optimizations", {**spec, "reward_metric_id": metric["id"]})
        assert status == 201, created
        server.ids[spec["name"]] = created
        _traffic(server, spec["name"], spec["training_data_config"]["design_factors"])
    return server
