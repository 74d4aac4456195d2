"""Results schema (API.md 6.6)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from levered_server.schemas.common import Meta, WeightedEstimate


class VariantResult(BaseModel):
    number: int
    variant: dict[str, Any]
    variant_key: str
    exposures: int
    conversions: int
    reward_sum: float
    rate: float | None
    expected_reward_mean: float | None
    expected_reward_lo: float | None
    expected_reward_hi: float | None
    prob_best: float
    weight: float
    allocation: float
    propensity_weighted: WeightedEstimate | None = None


class Stats(BaseModel):
    estimated_improvement_percent: float | None
    estimated_improvement_interval: list[float] | None
    best_vs_baseline_percent: float | None
    best_vs_baseline_interval: list[float] | None
    estimated_progress: float | None
    best_vs_baseline_weighted_percent: float | None = None
    best_vs_baseline_weighted_interval: list[float] | None = None


class MeasuredLift(BaseModel):
    metric_name: str
    holdout_rate: float | None
    holdout_exposures: int
    optimization_rate: float | None
    optimization_exposures: int
    lift_percent: float | None
    lift_ci: list[float] | None
    p_value: float | None


class Srm(BaseModel):
    p_value: float | None
    expected: dict[str, float]
    observed: dict[str, int]
    ok: bool | None


class DayCounts(BaseModel):
    date: str
    exposures: int
    holdout_exposures: int
    variants: dict[str, dict[str, int]]


class Results(BaseModel):
    optimization_id: str
    status: str
    model_id: str | None
    model_version: int
    trained_at: str | None
    generated_at: str
    reward_type: str
    holdout_percentage: int
    conversion_window_hours: int
    variants: list[VariantResult]
    stats: Stats
    primary_metric_vs_holdout: MeasuredLift
    srm: Srm
    time_series: list[DayCounts]
    factor_importance: list[dict[str, Any]]
    interaction_importance: dict[str, float] | None
    context_importance: list[dict[str, Any]]
    meta: Meta
