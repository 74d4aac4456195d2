"""Guardrail tests that stay valid under continuous monitoring: the mixture SPRT (mSPRT).

Johari, Pekelis, Walsh, "Always valid inference: continuous monitoring of A/B tests" (2017/2022).
For an estimate d̂ of a difference with (estimated) variance V, and a normal mixing distribution
N(0, τ²) over the true difference under the alternative, the mixture likelihood ratio against
"difference = 0" is

    Λ = sqrt(V / (V + τ²)) · exp(τ² d̂² / (2 V (V + τ²)))

and 1/Λ is an always-valid p-value: by Ville's inequality, the chance that Λ *ever* reaches 1/α
while the data keep arriving and we keep looking is at most α. A guardrail asks one-sided questions
("did the bandit traffic lose more than the tolerance?"), so the tested difference is shifted by
the tolerance (:func:`shifted_difference`) and only a crossing in the harmful direction counts,
which keeps the false-alarm rate at or below α at the boundary of the tolerance and below it inside.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

#: Relative size of the harm the mixture is tuned to find (power peaks near it; 20 %): τ = MIXING_SHARE × |holdout mean|.
MIXING_SHARE = 0.2


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm's per-user values: users, Σy and Σy²."""

    users: int
    total: float
    total_sq: float

    @property
    def mean(self) -> float:
        return self.total / self.users if self.users else 0.0

    def variance_of_mean(self) -> float:
        """s²/n with the n − 1 denominator (0 below 2 users)."""
        n = self.users
        if n < 2:
            return 0.0
        return max(0.0, (self.total_sq - n * self.mean ** 2) / (n - 1)) / n


def shifted_difference(treated: Arm, holdout: Arm, direction: str, tolerance: float
                       ) -> tuple[float, float]:
    """Return (d̂, V): d̂ < 0 means worse than the tolerance allows; 0 at the boundary.

    higher is better: d = μ_T − (1 − tol) μ_H; lower is better: d = (1 + tol) μ_H − μ_T.
    """
    k = 1 - tolerance if direction == "higher" else 1 + tolerance
    d = treated.mean - k * holdout.mean
    if direction != "higher":
        d = -d
    return d, treated.variance_of_mean() + k * k * holdout.variance_of_mean()


def msprt_p_value(d: float, variance: float, tau: float) -> float:
    """Return the always-valid p-value min(1, 1/Λ) of "difference = 0" (1.0 without variance)."""
    if variance <= 0 or tau <= 0:
        return 1.0
    t2 = tau * tau
    log_lambda = 0.5 * math.log(variance / (variance + t2)) + t2 * d * d / (2 * variance * (variance + t2))
    return 1.0 if log_lambda <= 0 else math.exp(-log_lambda)


def harmed(treated: Arm, holdout: Arm, direction: str, tolerance: float, alpha: float
           ) -> tuple[bool, float]:
    """Return (violated, always-valid p-value) of a guardrail's one-sided harm test."""
    d, variance = shifted_difference(treated, holdout, direction, tolerance)
    tau = MIXING_SHARE * abs(holdout.mean) or MIXING_SHARE
    p = msprt_p_value(d, variance, tau)
    return d < 0 and p <= alpha, p


def false_alarm_rate(*, runs: int, looks: int, users_per_look: int, rate: float, alpha: float,
                     tolerance: float = 0.0, holdout_share: float = 0.1, seed: int = 7,
                     harm: float | None = None) -> tuple[float, float]:
    """Simulate conversions, checked after every batch of users.

    :param harm: the treated arm's true relative loss; by default exactly the tolerance (the
        boundary of the null, where false alarms are likeliest). A larger one measures power.
    :returns: (share of runs the mSPRT ever flags, share a naive fixed-α z-test ever flags),
        both under monitoring after each of ``looks`` batches of ``users_per_look`` users.
    """
    rng = np.random.default_rng(seed)
    n_h = max(1, round(users_per_look * holdout_share))
    n_t = users_per_look - n_h
    treated_rate = rate * (1 - (tolerance if harm is None else harm))
    conv_t = rng.binomial(n_t, treated_rate, size=(runs, looks)).cumsum(axis=1)
    conv_h = rng.binomial(n_h, rate, size=(runs, looks)).cumsum(axis=1)
    msprt = naive = 0
    for r in range(runs):
        flagged_m = flagged_n = False
        for j in range(looks):
            t = Arm((j + 1) * n_t, float(conv_t[r, j]), float(conv_t[r, j]))
            h = Arm((j + 1) * n_h, float(conv_h[r, j]), float(conv_h[r, j]))
            if h.total == 0 or t.total == 0:
                continue
            violated, _ = harmed(t, h, "higher", tolerance, alpha)
            flagged_m = flagged_m or violated
            d, v = shifted_difference(t, h, "higher", tolerance)
            flagged_n = flagged_n or (v > 0 and d / math.sqrt(v) < -_z(alpha))
        msprt += flagged_m
        naive += flagged_n
    return msprt / runs, naive / runs


def _z(alpha: float) -> float:
    """The one-sided normal quantile z_{1−α} (bisection: no scipy at import)."""
    lo, hi = 0.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(mid / math.sqrt(2)) > alpha:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
