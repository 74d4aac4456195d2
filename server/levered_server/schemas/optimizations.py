"""Optimization and model schemas (API.md 6, 8)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from levered_server.schemas.common import Meta, RequestModel, WeightedEstimate

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


def _trim(v: object) -> object:
    return v.strip() if isinstance(v, str) else v


class DesignFactorIn(RequestModel):
    name: Identifier
    dtype: Literal["str", "bool"] | None = None
    levels: list[Any] = Field(min_length=2)


class ContextFactorIn(RequestModel):
    name: Identifier
    dtype: Literal["str", "bool"] | None = None
    levels: list[Any] = []


class RewardIn(RequestModel):
    name: str = Field("reward", min_length=1, max_length=100)
    type: Literal["bool", "numeric"] | None = None


class AttributionIn(RequestModel):
    type: Literal["last_touch"] = "last_touch"
    conversion_window_hours: int = Field(24, ge=1, le=2160)


class TrainingDataConfigIn(RequestModel):
    design_factors: list[DesignFactorIn] = Field(min_length=1)
    context_factors: list[ContextFactorIn] = []
    reward: RewardIn | None = None
    attribution: AttributionIn | None = None


class GuardrailIn(RequestModel):
    """A guardrail of create and update (extension): a metric the bandit must not harm."""

    metric_id: str
    direction: Literal["higher", "lower"] = "higher"
    tolerance: float = Field(0.0, ge=0, lt=1)


class OptimizationCreate(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    model_type: Literal["mab", "cmab"] = "cmab"
    reward_metric_id: str
    holdout_percentage: int = Field(10, ge=0, le=50)
    excluded_combinations: list[Any] = []
    training_data_config: TrainingDataConfigIn
    guardrails: list[GuardrailIn] = Field([], max_length=10)  # extension
    auto_stop: bool = False  # extension

    @field_validator("name", mode="before")
    @classmethod
    def _trim_name(cls, v: object) -> object:
        return _trim(v)


class OptimizationUpdate(RequestModel):
    status: Literal["live", "completed", "archived"] | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    guardrails: list[GuardrailIn] | None = Field(None, max_length=10)  # extension: replaces all
    auto_stop: bool | None = None  # extension

    @field_validator("name", mode="before")
    @classmethod
    def _trim_name(cls, v: object) -> object:
        return _trim(v)


class Factor(BaseModel):
    name: str
    dtype: Literal["str", "bool"]
    levels: list[Any]


class TrainingDataConfig(BaseModel):
    reward: dict[str, Any]
    design_factors: list[Factor]
    context_factors: list[Factor]
    attribution: dict[str, Any]


class Winner(BaseModel):
    variant_number: int
    variant: dict[str, Any]
    variant_key: str


class Summary(BaseModel):
    variants_count: int
    lift: float | None
    confidence: float | None
    exposures: int


class OptimizationPublic(BaseModel):
    id: str
    name: str
    status: Literal["live", "completed", "archived"]
    model_type: Literal["mab", "cmab"]
    model_id: str | None
    model_status: Literal["untrained", "training", "trained", "failed"] | None
    holdout_percentage: int
    reward_metric_id: str
    training_data_config: TrainingDataConfig
    excluded_combinations: list[dict[str, Any]]
    variants_count: int
    winner: Winner | None
    created_at: str
    updated_at: str
    summary: Summary | None


class OptimizationOut(OptimizationPublic):
    meta: Meta


class OptimizationList(BaseModel):
    optimizations: list[OptimizationPublic]
    meta: Meta


class Observation(BaseModel):
    exposure_id: str
    anonymous_id: str
    variant: dict[str, Any]
    variant_number: int
    context: dict[str, Any]
    in_holdout: bool
    propensity: float | None
    exposed_at: str
    reward: float | int | None
    rewarded_at: str | None


class ObservationList(BaseModel):
    observations: list[Observation]
    page: int
    size: int
    total: int
    meta: Meta


class ModelPublic(BaseModel):
    id: str
    optimization_id: str
    model_type: Literal["mab", "cmab"]
    status: Literal["untrained", "training", "trained", "failed"]
    version: int
    training_data_config: TrainingDataConfig
    bias: dict[str, float]
    trained_at: str | None
    error: dict[str, Any] | None
    last_run: dict[str, Any] | None
    created_at: str
    updated_at: str


class ModelOut(ModelPublic):
    meta: Meta


class ModelList(BaseModel):
    models: list[ModelPublic]
    meta: Meta


class TrainRequest(RequestModel):
    bias: dict[str, Any] | None = None


class VariantState(BaseModel):
    number: int
    variant: dict[str, Any]
    variant_key: str
    exposures: int
    expected_reward_mean: float | None
    expected_reward_lo: float | None
    expected_reward_hi: float | None
    prob_best: float
    weight: float
    allocation: float
    propensity_weighted: WeightedEstimate | None = None


class ModelState(BaseModel):
    model_id: str
    optimization_id: str
    model_type: Literal["mab", "cmab"]
    status: str
    version: int
    trained_at: str | None
    observations: int
    holdout_percentage: int
    bias: dict[str, float]
    error: dict[str, Any] | None
    last_run: dict[str, Any] | None
    variants: list[VariantState]
    factor_importance: list[dict[str, Any]]
    meta: Meta


class TrainResult(BaseModel):
    model_id: str
    status: str
    version: int
    trained_at: str | None
    observations: int
    in_sample_metrics: dict[str, Any]
    meta: Meta
