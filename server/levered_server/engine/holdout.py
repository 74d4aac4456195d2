"""Measured lift against the holdout (delta method, API.md 16.2) and the SRM check (16.3).

Inputs are per-user aggregates per arm, one small query: over the users of 16.2 step 1, grouped
by the ``in_holdout`` of their first exposure, ``count(*)`` users, ``sum(y)`` and ``sum(y * y)``
with y_u as in 16.2 step 2 (not the last-touch rewards of the training cells).
"""

from __future__ import annotations

import dataclasses
import math

MIN_USERS = 100
SRM_ALPHA = 0.001


@dataclasses.dataclass(frozen=True)
class ArmStats:
    """Users of one arm: count, Σy and Σy² of their per-user values y_u."""

    users: int
    total: float
    total_sq: float = 0.0

    @property
    def rate(self) -> float | None:
        """Mean of y_u; None for an arm without users."""
        return self.total / self.users if self.users else None

    def variance_of_mean(self, boolean: bool) -> float:
        """p(1 − p)/n for bool metrics; s²/n (n − 1 denominator) for numeric ones."""
        n = self.users
        if n == 0:
            return 0.0
        p = self.total / n
        if boolean:
            return p * (1 - p) / n
        if n < 2:
            return 0.0
        return max(0.0, (self.total_sq - n * p * p) / (n - 1)) / n


@dataclasses.dataclass(frozen=True)
class MeasuredLift:
    """6.6 ``primary_metric_vs_holdout`` without ``metric_name``."""

    holdout_rate: float | None
    holdout_exposures: int
    optimization_rate: float | None
    optimization_exposures: int
    lift_percent: float | None
    lift_ci: tuple[float, float] | None
    p_value: float | None
    se: float | None


@dataclasses.dataclass(frozen=True)
class SampleRatio:
    """6.6 ``srm``: expected and observed users per arm, χ² and its p-value."""

    expected_holdout: float
    expected_optimized: float
    observed_holdout: int
    observed_optimized: int
    chi2: float | None
    p_value: float | None
    ok: bool | None


def normal_cdf(x: float) -> float:
    """Return Φ(x)."""
    return 0.5 * math.erfc(-x / math.sqrt(2))


def measured_lift(holdout: ArmStats, optimized: ArmStats, *, boolean: bool,
                  min_users: int = MIN_USERS) -> MeasuredLift:
    """Return the lift of the optimized arm over the holdout with its 16.2 null rules."""
    p_h, p_m = holdout.rate, optimized.rate
    lift = se = p_value = None
    ci: tuple[float, float] | None = None
    if p_h and p_m is not None:  # p_H = 0 or an empty arm: nothing to divide by
        lift = 100 * (p_m - p_h) / p_h
        if holdout.users >= min_users and optimized.users >= min_users:
            var_m = optimized.variance_of_mean(boolean)
            var_h = holdout.variance_of_mean(boolean)
            se = 100 * math.sqrt(var_m / p_h**2 + p_m**2 * var_h / p_h**4)
            if se == 0:
                ci, p_value = (lift, lift), 1.0 if lift == 0 else 0.0
            else:
                ci = (lift - 1.96 * se, lift + 1.96 * se)
                p_value = 2 * (1 - normal_cdf(abs(lift / se)))
    return MeasuredLift(p_h, holdout.users, p_m, optimized.users, lift, ci, p_value, se)


def sample_ratio(holdout_users: int, optimized_users: int, holdout_share: float,
                 min_users: int = MIN_USERS) -> SampleRatio:
    """Return the χ² (1 df) test of the holdout split; p and ok are None when it cannot run."""
    n = holdout_users + optimized_users
    e_h, e_m = n * holdout_share, n * (1 - holdout_share)
    if holdout_share <= 0 or holdout_share >= 1 or n < min_users:
        return SampleRatio(e_h, e_m, holdout_users, optimized_users, None, None, None)
    chi2 = (holdout_users - e_h) ** 2 / e_h + (optimized_users - e_m) ** 2 / e_m
    p = math.erfc(math.sqrt(chi2 / 2))
    return SampleRatio(e_h, e_m, holdout_users, optimized_users, chi2, p, p >= SRM_ALPHA)
