"""API types of `ModelDeployment.spec.rollout`: how a change of what the engine runs is rolled out.

A change of the weights' revision, the image, the engine arguments or the precision makes a new
version of the model. `Canary` (the default) sends it a growing share of the traffic, step by step
(5%, 25%, 100% by default, the platform guides' ladder), and goes on only while it holds against
the stable version: its p99 time to first token at most 20% above the stable one's and an error
rate of at most 1%, over at least a minimum time and number of requests per step. `RollingUpdate`
replaces instances in place; `Recreate` stops every instance before starting the new ones (for a
model whose two versions cannot run side by side, or a pool with no room for a spare instance).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, model_validator

from gpupool.api.base import ApiModel
from gpupool.api.schema import cel, with_rules

DEFAULT_STEPS = (5, 25, 100)
MAX_STEPS = 10
DEFAULT_MIN_STEP_SECONDS = 300
DEFAULT_MIN_STEP_REQUESTS = 100
MAX_STEP_SECONDS = 7 * 86_400
MAX_STEP_REQUESTS = 1_000_000_000
# From the platform guides' rollback rule: p99 latency more than 20% above stable, errors over 1%.
DEFAULT_MAX_TTFT_P99_INCREASE_PERCENT = 20.0
DEFAULT_MAX_ERROR_RATE_PERCENT = 1.0
MAX_TTFT_P99_INCREASE_PERCENT = 1000.0


class RolloutStrategy(StrEnum):
    CANARY = "Canary"
    ROLLING_UPDATE = "RollingUpdate"
    RECREATE = "Recreate"


class CanaryAnalysis(ApiModel):
    """Limits a canary step must hold to go on; breaking one rolls the canary back."""

    max_ttft_p99_increase_percent: float = Field(
        default=DEFAULT_MAX_TTFT_P99_INCREASE_PERCENT,
        ge=0,
        le=MAX_TTFT_P99_INCREASE_PERCENT,
        description="Largest rise of the canary's p99 time to first token over the stable "
        "version's, in percent.",
    )
    max_error_rate_percent: float = Field(
        default=DEFAULT_MAX_ERROR_RATE_PERCENT,
        ge=0,
        le=100,
        description="Largest share of the canary's requests that may fail, in percent.",
    )


class RolloutSpec(ApiModel):
    model_config = with_rules(
        cel(
            "!has(self.steps) || (self.steps.isSorted() && self.steps[size(self.steps) - 1] == 100)",
            "rollout.steps must increase and end at 100, e.g. [5, 25, 100]",
            field_path=".steps",
        ),
        cel(
            "!has(self.paused) || !has(self.abort) || !(self.paused && self.abort)",
            "rollout: set paused or abort, not both",
            field_path=".abort",
        ),
    )

    strategy: RolloutStrategy = Field(
        default=RolloutStrategy.CANARY,
        description="Canary (traffic shifted to the new version step by step, checked against the "
        "stable one), RollingUpdate (instances replaced in place) or Recreate (all stopped, then "
        "started again).",
    )
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: list(DEFAULT_STEPS),
        min_length=1,
        max_length=MAX_STEPS,
        description="Canary: the percentages of traffic the new version receives, in order, the "
        "last 100 (promotion).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    min_step_seconds: int = Field(
        default=DEFAULT_MIN_STEP_SECONDS,
        ge=0,
        le=MAX_STEP_SECONDS,
        description="Canary: the least time a step lasts before the next.",
    )
    min_step_requests: int = Field(
        default=DEFAULT_MIN_STEP_REQUESTS,
        ge=0,
        le=MAX_STEP_REQUESTS,
        description="Canary: the least number of requests the new version serves in a step before "
        "it is judged.",
    )
    analysis: CanaryAnalysis = Field(default_factory=CanaryAnalysis, description="Canary: the limits.")
    paused: bool = Field(default=False, description="Canary: hold the current step.")
    abort: bool = Field(default=False, description="Canary: roll back to the stable version now.")

    @model_validator(mode="after")
    def _steps(self) -> Self:
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)) or self.steps[-1] != 100:
            raise ValueError("rollout.steps must increase and end at 100, e.g. [5, 25, 100]")
        if self.paused and self.abort:
            raise ValueError("rollout: set paused or abort, not both")
        return self


class CanaryAnalysisStatus(ApiModel):
    """What the analysis measured of the current step, against its limits (None: not measured)."""

    canary_requests: int | None = Field(
        default=None, ge=0, description="Requests the canary served in the step."
    )
    canary_error_rate_percent: float | None = Field(
        default=None, ge=0, description="Share of the canary's requests that failed, in percent."
    )
    canary_ttft_p99_seconds: float | None = Field(
        default=None, ge=0, description="The canary's p99 time to first token over the step."
    )
    stable_ttft_p99_seconds: float | None = Field(
        default=None, ge=0, description="The stable version's p99 time to first token over the step."
    )
    max_error_rate_percent: float = Field(ge=0, description="The limit on the canary's error rate.")
    max_ttft_p99_seconds: float | None = Field(
        default=None,
        ge=0,
        description="The limit on the canary's p99 time to first token (stable's plus the allowed rise).",
    )


class RolloutStatus(ApiModel):
    """Where a rollout stands: the two versions, the step, the traffic split and the decision."""

    stable_revision: str | None = Field(
        default=None, description="The version serving the stable traffic (the pods' gpupool.io/revision)."
    )
    canary_revision: str | None = Field(default=None, description="The new version under analysis.")
    step: int | None = Field(
        default=None, ge=0, description="Index of the current step in spec.rollout.steps."
    )
    step_started_at: str | None = Field(default=None, description="When the current step began (RFC 3339).")
    weight: int = Field(default=0, ge=0, le=100, description="The canary's share of the traffic, in percent.")
    split: str | None = Field(
        default=None,
        description="How the traffic is split: HTTPRoute (exact backend weights) or Instances (the "
        "Service spreads requests over every instance, so the canary's share is its share of the "
        "instances, approximate).",
    )
    stable_instances: int = Field(default=0, ge=0, description="Instances of the stable version.")
    canary_instances: int = Field(default=0, ge=0, description="Instances of the canary.")
    analysis: CanaryAnalysisStatus | None = Field(default=None, description="The step's measurements.")
    decision: str | None = Field(
        default=None,
        description="The last decision: Wait, Hold, Step, Promote, Promoting, RollBack, RolledBack, InPlace.",
    )
    message: str | None = Field(default=None, description="Why, with the numbers.")
    rolled_back_revision: str | None = Field(
        default=None, description="A version rolled back: not tried again until the spec changes."
    )
    rolled_back_by_abort: bool = Field(
        default=False,
        description="The rollback came from rollout.abort: clearing abort tries the version again.",
    )
