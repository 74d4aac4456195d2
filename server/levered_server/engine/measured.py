"""Measured lift against the holdout and the sample-ratio check (API.md 16.2, 16.3).

Pure arithmetic on per-arm sufficient statistics (n, Σy, Σy²); no web, no database.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Arm:
    """Users of one arm: count, sum of y, sum of y²."""

    n: int
    total: float
    total_sq: float

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def variance_of_mean(self, boolean: bool) -> float:
        """p(1−p)/n for bool metrics, s²/n (n−1 denominator) for numeric ones."""
        if self.n == 0:
            return 0.0
        p = self.total / self.n
        if boolean:
            return p * (1 - p) / self.n
        if self.n < 2:
            return 0.0
        s2 = max(0.0, (self.total_sq - self.n * p * p) / (self.n - 1))
        return s2 / self.n


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def measured_lift(holdout: Arm, optimized: Arm, *, boolean: bool,
                  min_users: int = 100) -> dict[str, float | list[float] | int | None]:
    """`primary_metric_vs_holdout` without `metric_name` (16.2, delta method)."""
    p_h, p_m = holdout.mean, optimized.mean
    out: dict[str, float | list[float] | int | None] = {
        "holdout_rate": p_h, "holdout_exposures": holdout.n, "optimization_rate": p_m,
        "optimization_exposures": optimized.n, "lift_percent": None, "lift_ci": None,
        "p_value": None}
    if p_h is None or p_m is None or p_h == 0:
        return out
    lift = 100 * (p_m - p_h) / p_h
    out["lift_percent"] = lift
    if holdout.n < min_users or optimized.n < min_users:
        return out
    var_m, var_h = optimized.variance_of_mean(boolean), holdout.variance_of_mean(boolean)
    se = 100 * math.sqrt(var_m / p_h**2 + p_m**2 * var_h / p_h**4)
    if se == 0:
        out["lift_ci"], out["p_value"] = [lift, lift], 1.0 if lift == 0 else 0.0
    else:
        out["lift_ci"] = [lift - 1.96 * se, lift + 1.96 * se]
        out["p_value"] = 2 * (1 - _phi(abs(lift / se)))
    return out


def sample_ratio(n_holdout: int, n_optimized: int, holdout_share: float,
                 min_users: int = 100) -> dict[str, object]:
    """`srm`: χ² test (1 degree of freedom) of the holdout split (16.3)."""
    n = n_holdout + n_optimized
    e_h, e_m = n * holdout_share, n * (1 - holdout_share)
    out: dict[str, object] = {"p_value": None, "expected": {"holdout": e_h, "optimized": e_m},
                              "observed": {"holdout": n_holdout, "optimized": n_optimized},
                              "ok": None}
    if holdout_share <= 0 or n < min_users:
        return out
    chi2 = (n_holdout - e_h) ** 2 / e_h + (n_optimized - e_m) ** 2 / e_m
    p = math.erfc(math.sqrt(chi2 / 2))
    out["p_value"], out["ok"] = p, p >= 0.001
    return out
