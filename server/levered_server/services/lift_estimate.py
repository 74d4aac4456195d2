"""The lift estimates the lift history keeps of a version (`services/lift_history.py`).

Worked out from the version's state where the state is built (the fit worker), so the
serving process neither reads the state back nor decodes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def lift_estimate(state: Mapping[str, Any]) -> dict[str, Any]:
    """A version's lift estimates, from its state: the numbers of its results ``stats``
    (API.md 16.1) and the variant most likely best."""
    stats = state.get("stats") or {}
    variants = state.get("variants") or []
    best = max(variants, key=lambda v: (v.get("prob_best") or 0, -v["number"]), default=None)
    return {
        "policy_lift_percent": stats.get("estimated_improvement_percent"),
        "policy_lift_interval": stats.get("estimated_improvement_interval"),
        "best_number": best["number"] if best else None,
        "best_lift_percent": stats.get("best_vs_baseline_percent"),
        "best_lift_interval": stats.get("best_vs_baseline_interval"),
        "best_prob": best.get("prob_best") if best else None,
        "estimated_progress": stats.get("estimated_progress"),
    }
