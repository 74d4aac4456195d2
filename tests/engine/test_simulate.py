"""The regret harness: Thompson sampling beats uniform; cmab exploits context where mab cannot."""

from __future__ import annotations

import numpy as np

from levered_server.engine.simulate import Problem, cmab_learner, mab_learner, simulate, uniform_learner
from levered_server.engine.variants import Design


def small_problem() -> Problem:
    design = Design.build([2, 2])
    return Problem.contextual(design, [], np.array([[0.05, 0.06, 0.05, 0.08]]))


def contextual_problem() -> Problem:
    """Two devices whose best variants differ (#2 on the first, #3 on the second)."""
    design = Design.build([2, 2])
    rates = np.array([[0.05, 0.09, 0.05, 0.05], [0.05, 0.05, 0.09, 0.05]])
    return Problem.contextual(design, [2], rates)


def regret(problem: Problem, learner, seeds=range(3), rounds=20_000) -> list[float]:
    return [simulate(problem, learner, rounds=rounds, batch=500,
                     rng=np.random.default_rng(seed)).total_regret for seed in seeds]


def test_thompson_sampling_regret_is_well_below_uniform():
    problem = small_problem()
    uniform, mab = regret(problem, uniform_learner), regret(problem, mab_learner())
    # Uniform loses (0.08 − mean rate) = 0.02 per exposure: 400 over 20,000.
    assert np.mean(uniform) > 350
    assert max(mab) < 0.5 * min(uniform)


def test_cmab_regret_is_below_mab_when_the_best_variant_depends_on_context():
    problem = contextual_problem()
    mab, cmab = regret(problem, mab_learner()), regret(problem, cmab_learner())
    assert max(cmab) < 0.6 * min(mab)


def test_the_harness_logs_what_it_served():
    problem = small_problem()
    out = simulate(problem, uniform_learner, rounds=1000, batch=300, rng=np.random.default_rng(0))
    assert out.regret.shape == (4,) and out.pulls.sum() == 1000
    assert out.stats.observations == 1000
    assert out.stats.ipw_weight_sum.sum() == 4000  # propensity 1/4 everywhere
