"""Render the screenshots of docs/dashboard.md: ``python -m tests.dashboard.make_screenshots``.

The app runs headless against a scripted API (``levered_core.testing.StubAPI``) that answers
with the example bodies of docs/api.md (6.6 results, 8.4 model state), so the pictures
show a trained model. With the snapshot tests' clock and URL (:mod:`tests.dashboard.stable`)
they are the same on every run.
"""

from __future__ import annotations

import asyncio
import copy
import pathlib
import re
import sys

from levered_dashboard.app import DashboardApp

from levered_core.testing import StubAPI
from tests.dashboard.examples import MODEL_ID, OPT_ID, bodies
from tests.dashboard.stable import example_clock, masked_client, settle

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: The URL the pictures show: the server's default.
DOCS_URL = "http://localhost:3100"
SECOND_ID, SECOND_MODEL = "5f0c3a77-0d1e-4b8a-9c55-7f1e2d3c4b5a", "0b6e8d21-7c3f-4e59-a1d2-3e4f5a6b7c8d"


def script(api: StubAPI) -> None:
    """Two optimizations: the docs/api.md example, and a MAB still in burn-in."""
    optimization, results, state = bodies()
    pricing = {**copy.deepcopy(optimization), "id": SECOND_ID, "model_id": SECOND_MODEL, "name": "Pricing page CTA",
               "model_type": "mab", "model_status": "untrained", "variants_count": 3, "summary": None}
    levels = ["Start free trial", "Get started", "See plans"]
    variants = [{"number": i + 1, "variant": {"cta_text": level}, "variant_key": f'{{"cta_text":"{level}"}}',
                 "exposures": 0, "expected_reward_mean": None, "expected_reward_lo": None, "expected_reward_hi": None,
                 "prob_best": 1 / 3, "weight": 0.3, "allocation": 1 / 3} for i, level in enumerate(levels)]
    pricing_state = {**copy.deepcopy(state), "model_id": SECOND_MODEL, "optimization_id": SECOND_ID, "status": "untrained",
                     "model_type": "mab", "version": 0, "trained_at": None, "observations": 0, "variants": variants,
                     "factor_importance": [], "last_run": {**state["last_run"], "outcome": "skipped", "observations": 42}}
    pricing_results = {**copy.deepcopy(results), "optimization_id": SECOND_ID, "model_id": SECOND_MODEL,
                       "model_version": 0, "trained_at": None, "stats": None, "factor_importance": [],
                       "interaction_importance": None, "time_series": [], "srm": None, "primary_metric_vs_holdout": None,
                       "variants": [{**v, "exposures": 14, "conversions": 1, "rate": 1 / 14} for v in variants]}
    api.add("GET", "/api/v2/optimizations", 200, {"optimizations": [optimization, pricing]})
    api.add("GET", f"/api/v2/optimizations/{OPT_ID}/results", 200, results)
    api.add("GET", f"/api/v2/models/{MODEL_ID}/state", 200, state)
    api.add("GET", f"/api/v2/optimizations/{SECOND_ID}/results", 200, pricing_results)
    api.add("GET", f"/api/v2/models/{SECOND_MODEL}/state", 200, pricing_state)


async def shoot(url: str, out: pathlib.Path, size: tuple[int, int], open_id: str | None, name: str) -> None:
    """Write ``out/name.svg``: the dashboard at ``size``, on the list or on ``open_id``."""
    app = DashboardApp(masked_client(url, "lvk_docs", shown_url=DOCS_URL), 10, open_id, clock=example_clock())
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        svg = app.export_screenshot(simplify=True)
    # Rich gives each export a random ID; a fixed one keeps unchanged pictures unchanged in git
    (out / f"{name}.svg").write_text(re.sub(r"\bterminal-\d+-", "terminal-docs-", svg), encoding="utf-8")


def main(out: pathlib.Path = ROOT / "docs" / "img") -> None:
    out.mkdir(parents=True, exist_ok=True)
    with StubAPI() as api:
        script(api)
        for name, size, open_id in (("dashboard-list", (100, 24), None), ("dashboard-detail", (100, 50), OPT_ID),
                                    ("dashboard-detail-80x24", (80, 24), OPT_ID),
                                    ("dashboard-detail-wide", (180, 40), OPT_ID)):
            asyncio.run(shoot(api.url, out, size, open_id, name))
            print(out / f"{name}.svg")


if __name__ == "__main__":
    main(*(pathlib.Path(a) for a in sys.argv[1:]))
