"""Run a policy against known reward rates and measure its regret (for tests and bench/regret)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence

import numpy as np

from levered_server.engine import policy
from levered_server.engine.cmab import CmabPrior, fit_cmab
from levered_server.engine.mab import fit_mab
from levered_server.engine.stats import CellStats
from levered_server.engine.variants import Design


@dataclasses.dataclass(frozen=True)
class Problem:
    """Bernoulli rewards: ``rates[c, k]`` for context cell c and servable variant k."""

    design: Design
    rates: np.ndarray
    context_probs: np.ndarray
    context_codes: np.ndarray
    context_factors: tuple[str, ...] = ()
    context_levels: tuple[tuple[str | None, ...], ...] = ()

    @classmethod
    def contextual(cls, design: Design, context_levels: Sequence[int], rates: np.ndarray,
                   context_probs: np.ndarray | None = None) -> Problem:
        """Build with every combination of context levels as a cell (row-major, like variants)."""
        combos = list(itertools.product(*[range(n) for n in context_levels]))
        codes = np.array(combos, dtype=np.int64).reshape(len(combos), len(context_levels))
        probs = np.full(len(codes), 1 / len(codes)) if context_probs is None else context_probs
        names = tuple(f"ctx_{j}" for j in range(len(context_levels)))
        levels = tuple(tuple(f"level_{k}" for k in range(n)) for n in context_levels)
        return cls(design, np.asarray(rates, float), np.asarray(probs, float), codes, names, levels)


Learner = Callable[[CellStats, Problem, np.random.Generator], np.ndarray]
"""Given the data so far, return the (cells, K) allocation to use until the next refit."""


@dataclasses.dataclass(frozen=True)
class SimulationResult:
    """Cumulative expected regret after each batch, against the per-context oracle."""

    regret: np.ndarray
    pulls: np.ndarray
    stats: CellStats

    @property
    def total_regret(self) -> float:
        """Expected regret over all rounds."""
        return float(self.regret[-1]) if self.regret.size else 0.0


def simulate(problem: Problem, learner: Learner, *, rounds: int, batch: int,
             rng: np.random.Generator) -> SimulationResult:
    """Serve ``rounds`` exposures, refitting ``learner`` every ``batch`` exposures."""
    cells, k = problem.rates.shape
    shape = (cells, k)
    sums = {name: np.zeros(shape) for name in ("exposures", "reward_count", "ipw_weight_sum",
                                              "ipw_weight_sq_sum", "ipw_reward_sum",
                                              "ipw_reward_w2_sum")}
    regret, total = [], 0.0
    best = problem.rates.max(axis=1)
    stats = _stats(problem, sums)
    for start in range(0, rounds, batch):
        alloc = learner(stats, problem, rng)
        size = min(batch, rounds - start)
        c = rng.choice(cells, size=size, p=problem.context_probs)
        cum = np.cumsum(alloc, axis=1)
        v = np.minimum((rng.random(size)[:, None] * cum[c, -1:] > cum[c]).sum(axis=1), k - 1)
        prop = alloc[c, v]
        r = (rng.random(size) < problem.rates[c, v]).astype(float)
        total += float((best[c] - problem.rates[c, v]).sum())
        regret.append(total)
        for name, values in (("exposures", np.ones(size)), ("reward_count", r),
                             ("ipw_weight_sum", 1 / prop), ("ipw_weight_sq_sum", 1 / prop**2),
                             ("ipw_reward_sum", r / prop), ("ipw_reward_w2_sum", r / prop**2)):
            np.add.at(sums[name], (c, v), values)
        stats = _stats(problem, sums)
    return SimulationResult(np.array(regret), sums["exposures"].sum(axis=0), stats)


def _stats(problem: Problem, sums: dict[str, np.ndarray]) -> CellStats:
    cells, k = problem.rates.shape
    c, v = np.nonzero(sums["exposures"])
    columns = {name: values[c, v] for name, values in sums.items()}
    # Bernoulli rewards: reward sum, its square and the count coincide.
    for alias in ("reward_sum", "reward_sum_sq"):
        columns[alias] = columns["reward_count"]
    columns["users"] = columns["propensity_count"] = columns["exposures"]
    columns["ipw_reward_sq_sum"] = columns["ipw_reward_sum"]
    columns["ipw_reward_sq_w2_sum"] = columns["ipw_reward_w2_sum"]
    return CellStats.build(problem.design.numbers[v], problem.context_codes[c], None, columns,
                           problem.context_factors, problem.context_levels)


def uniform_learner(stats: CellStats, problem: Problem, rng: np.random.Generator) -> np.ndarray:
    """A/B/n: every variant 1/K in every context."""
    return np.full(problem.rates.shape, 1 / problem.rates.shape[1])


def mab_learner(settings: policy.PolicySettings | None = None) -> Learner:
    """The `mab` model: Beta–Bernoulli Thompson sampling, one allocation for all contexts."""
    settings = settings or policy.PolicySettings(min_observations=0)

    def learn(stats: CellStats, problem: Problem, rng: np.random.Generator) -> np.ndarray:
        if not policy.publishes(stats.observations, settings):
            return uniform_learner(stats, problem, rng)
        draws = fit_mab(stats, problem.design, "bool").draw(rng, settings.serve_draws)
        p = policy.allocation(policy.prob_best(policy.narrow(draws, settings.thompson_scale)),
                              settings)
        return np.tile(p, (problem.rates.shape[0], 1))

    return learn


def cmab_learner(settings: policy.PolicySettings | None = None,
                 prior: CmabPrior | None = None) -> Learner:
    """The `cmab` model: Laplace-logistic Thompson sampling per context cell."""
    settings = settings or policy.PolicySettings(min_observations=0)
    scales: dict[str, float] = {}  # carried from fit to fit, as the server carries them

    def learn(stats: CellStats, problem: Problem, rng: np.random.Generator) -> np.ndarray:
        if not policy.publishes(stats.observations, settings):
            return uniform_learner(stats, problem, rng)
        posterior = fit_cmab(stats, problem.design, "bool", prior, rounds=2, start=scales)
        scales.update(posterior.scales)
        draws = posterior.sample(rng, settings.serve_draws, spread=settings.thompson_scale)
        return np.array([policy.allocation(policy.prob_best(draws.eta(codes)), settings)
                         for codes in problem.context_codes])

    return learn


def cell_counts(stats: CellStats, problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """Return (cells, K) exposures and rewards from the cells (for learners outside the engine)."""
    cells, k = problem.rates.shape
    n, s = np.zeros((cells, k)), np.zeros((cells, k))
    if stats.n_rows:
        dims = tuple(len(levels) for levels in problem.context_levels)
        cell = (np.ravel_multi_index(tuple(np.asarray(stats.context).T), dims) if dims
                else np.zeros(stats.n_rows, dtype=np.int64))
        pos = np.searchsorted(problem.design.numbers, stats.variant)
        np.add.at(n, (cell, pos), stats.sums["exposures"])
        np.add.at(s, (cell, pos), stats.sums["reward_sum"])
    return n, s


@dataclasses.dataclass(frozen=True)
class LiftCheck:
    """The reported best-vs-baseline lift against the truth, after a simulation.

    ``chosen`` is the variant the estimates rank first (population level, context mix of the
    problem); its lift over variant #1 has the 95 % interval (lo, hi); ``truth`` is its true lift.
    """

    chosen: int
    lo: float
    hi: float
    truth: float
    ranked_first: bool

    @property
    def covered(self) -> bool:
        """Whether the interval contains the true lift."""
        return bool(self.lo <= self.truth <= self.hi)


def _check(problem: Problem, chosen: int, lo: float, hi: float) -> LiftCheck:
    pop = problem.context_probs @ problem.rates
    return LiftCheck(chosen, lo, hi, float(pop[chosen] / pop[0] - 1),
                     chosen == int(np.argmax(pop)))


def lift_check(kind: str, stats: CellStats, problem: Problem, rng: np.random.Generator,
               draws: int = 4000, prior: CmabPrior | None = None) -> LiftCheck:
    """Best-vs-baseline lift interval from the final data: ``cmab`` (posterior draws averaged
    over the context mix), ``mab`` (its Beta posterior, as results report it) or ``naive`` (pooled
    rates, delta-method interval on the log ratio, ignoring how the allocation moved)."""
    if kind in ("cmab", "mab"):
        if kind == "cmab":
            post = fit_cmab(stats, problem.design, "bool", prior).sample(rng, draws)
            pop = sum(p * post.reward(codes)
                      for p, codes in zip(problem.context_probs, problem.context_codes,
                                          strict=True))
        else:
            pop = fit_mab(stats, problem.design, "bool").draw(rng, draws)
        chosen = int(np.argmax(pop.mean(axis=0)))
        lift = pop[:, chosen] / pop[:, 0] - 1
        lo, hi = np.quantile(lift, [0.025, 0.975])
        return _check(problem, chosen, float(lo), float(hi))
    if kind != "naive":
        raise ValueError(f"unknown lift estimate {kind!r}")
    n, s = (m.sum(axis=0) for m in cell_counts(stats, problem))
    rate = (s + 0.5) / (n + 1)
    chosen = int(np.argmax(rate))
    if chosen == 0:
        return _check(problem, 0, 0.0, 0.0)
    se = np.sqrt((1 - rate[chosen]) / (s[chosen] + 0.5) + (1 - rate[0]) / (s[0] + 0.5))
    log_ratio = np.log(rate[chosen] / rate[0])
    return _check(problem, chosen, float(np.expm1(log_ratio - 1.96 * se)),
                  float(np.expm1(log_ratio + 1.96 * se)))
