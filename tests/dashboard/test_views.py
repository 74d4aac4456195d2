"""The list rows, the status line and the text helpers, on docs/api.md's example bodies."""

from __future__ import annotations

import datetime as dt

import pytest
from levered_dashboard import views
from levered_dashboard.data import Item, Snapshot

from tests.dashboard.examples import bodies

NOW = dt.datetime(2026, 11, 21, 12, 5, tzinfo=dt.UTC)


@pytest.fixture
def item() -> Item:
    optimization, results, state = bodies()
    return Item(optimization, results, state)



def test_the_list_row_has_leader_lift_interval_and_p_best(item):
    snapshot = Snapshot("http://x", [item], updated_at=0)
    wide = dict(zip([c for c, _ in views.list_columns(200)], views.list_rows(snapshot, 200, NOW)[0], strict=True))
    assert wide == {"Optimization": "Landing Page Hero", "Status": "live", "Variants": "5", "Exposures": "4100",
                    "Leader": "#3 Build better / Get started", "Lift (best) [95%]": "+18.0% [+4.2%, +32.9%]",
                    "P(best)": "62.0%", "Trained": "5m ago"}
    narrow = views.list_rows(snapshot, 80, NOW)[0]
    assert narrow[4:7] == ("#3 Buil…", "+18% [+4,+33]", "62%")


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_the_list_fits_the_terminal(width):
    used = sum(w for _, w in views.list_columns(width)) + 2 * views.CELL_PADDING * 8 + 1
    assert used <= width


def test_status_line_says_how_old_the_data_is():
    snapshot = Snapshot("http://x", [], updated_at=100.0)
    assert views.status_line(snapshot, 10, 104.2).startswith("updated 4s ago · every 10s")
    snapshot.problem, snapshot.problem_detail = "Server unreachable", "cannot reach http://x: refused"
    assert views.status_line(snapshot, 10, 225).startswith("Server unreachable · retrying every 10s · data from 2m 5s ago")


def test_sparkline_and_counts():
    assert views.sparkline([0, 1, 2, 4]) == " ▂▄█"
    assert views.sparkline([0.5], 1.0) == "▄"
    assert [views.count(n) for n in (950, 12345, 4_100_000, None)] == ["950", "12.3k", "4.1M", "-"]
