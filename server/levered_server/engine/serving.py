"""The serving snapshot of one model version: allocation per context, then one draw (2.4)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from levered_server.engine import policy
from levered_server.engine.cmab import CmabDraws
from levered_server.engine.stats import context_text
from levered_server.engine.variants import Design


@dataclasses.dataclass(frozen=True)
class ServePolicy:
    """What serving needs: a fixed allocation (`mab`, untrained) or per-context draws (`cmab`).

    ``bias`` maps design-factor positions to their exploration bias (8.5); it only affects
    the allocation. The result for a given context is deterministic, so callers may cache it per
    (model version, context codes).
    """

    design: Design
    settings: policy.PolicySettings
    fixed: np.ndarray | None = None
    draws: CmabDraws | None = None
    context_factors: tuple[str, ...] = ()
    context_levels: tuple[tuple[str | None, ...], ...] = ()
    bias: Mapping[int, float] = dataclasses.field(default_factory=dict)

    @property
    def numbers(self) -> np.ndarray:
        """Servable variant numbers, aligned with every allocation."""
        return self.design.numbers

    def encode(self, context: Mapping[str, Any]) -> np.ndarray:
        """Return the context's level codes; unseen values → −1 (population effect)."""
        codes = np.full(len(self.context_factors), -1, dtype=np.int64)
        for j, name in enumerate(self.context_factors):
            value = context_text(context.get(name))
            if value in self.context_levels[j]:
                codes[j] = self.context_levels[j].index(value)
        return codes

    def allocation_for_codes(self, codes: np.ndarray) -> np.ndarray:
        """Return p over the servable variants for encoded context ``codes``."""
        if self.draws is None:
            assert self.fixed is not None
            return self.fixed
        eta = policy.widen(self.draws.eta(codes), self.design, self.bias)
        return policy.allocation(policy.prob_best(eta), self.settings)

    def allocation(self, context: Mapping[str, Any] | None = None) -> np.ndarray:
        """Return p over the servable variants for a request's context."""
        return self.allocation_for_codes(self.encode(context or {}))

    def choose(self, context: Mapping[str, Any] | None, rng: np.random.Generator) -> tuple[int, float]:
        """Sample a variant for a fresh assignment; return (variant number, propensity)."""
        return policy.draw_variant(self.numbers, self.allocation(context), rng)


def uniform_policy(design: Design, settings: policy.PolicySettings | None = None) -> ServePolicy:
    """Return the untrained policy: q_v = 1/K, so p_v = 1/K whatever ε."""
    return ServePolicy(design, settings or policy.PolicySettings(),
                       fixed=np.full(design.k, 1 / design.k))
