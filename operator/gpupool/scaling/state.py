"""What the autoscaler remembers between evaluations, small enough to live in a status.

The HPA keeps its recommendation history in the controller's memory, so a restart forgets it and
may scale down at once; gpupool persists this state in `status.autoscaling.state` instead. Times are
Unix seconds. Only the history the policy's windows and periods can still see is kept.
"""

from __future__ import annotations

from pydantic import Field

from gpupool.api.base import ApiModel
from gpupool.scaling.history import DemandHistory


class Recommendation(ApiModel):
    time: float = Field(description="When the recommendation was made, Unix seconds.")
    replicas: int = Field(ge=0, description="Instances the metrics asked for, before stabilisation.")


class ScaleEvent(ApiModel):
    time: float = Field(description="When the instance count changed, Unix seconds.")
    from_replicas: int = Field(ge=0, description="Instances before.")
    to_replicas: int = Field(ge=0, description="Instances after.")

    @property
    def change(self) -> int:
        return self.to_replicas - self.from_replicas


class ScalerState(ApiModel):
    recommendations: list[Recommendation] = Field(
        default_factory=list, description="Recent recommendations, oldest first, for stabilisation."
    )
    events: list[ScaleEvent] = Field(
        default_factory=list, description="Recent changes of the instance count, for rate limits."
    )
    last_scale_up_time: float | None = Field(default=None, description="Last time instances were added.")
    last_scale_down_time: float | None = Field(default=None, description="Last time instances were removed.")
    demand_history: DemandHistory | None = Field(
        default=None, description="Demand per minute over the last day, for the period and the headroom."
    )
    learned_at: float | None = Field(
        default=None, description="When the period and the burst rise were last learned from the history."
    )
    period_seconds: float | None = Field(default=None, description="Period of the traffic, when it repeats.")
    burst_rise_qps: float | None = Field(
        default=None, description="Rise of demand within one load time at the SLO's quantile."
    )
    capacity_per_instance: float | None = Field(
        default=None, description="QPS one instance serves within the SLO, as measured (None: the plan's)."
    )
    batch_seconds: float | None = Field(
        default=None, description="Seconds a request spends running, as measured (running / QPS)."
    )
    ready_replicas: int | None = Field(
        default=None, ge=0, description="Instances serving at the last evaluation."
    )
    ready_rose_time: float | None = Field(
        default=None, description="Last time more instances were serving than at the evaluation before."
    )

    def added_since(self, since: float) -> int:
        """Instances added by scale-ups after `since`."""
        return sum(e.change for e in self.events if e.time > since and e.change > 0)

    def removed_since(self, since: float) -> int:
        """Instances removed by scale-downs after `since`."""
        return sum(-e.change for e in self.events if e.time > since and e.change < 0)

    def recorded(
        self,
        now: float,
        recommendation: int,
        current: int,
        desired: int,
        keep_seconds: float,
        ready: int | None = None,
    ) -> ScalerState:
        """This state plus one recommendation, the Ready count and, when the count changes, one
        event; trimmed."""
        cutoff = now - keep_seconds
        recommendations = [r for r in self.recommendations if r.time > cutoff]
        recommendations.append(Recommendation(time=now, replicas=recommendation))
        events = [e for e in self.events if e.time > cutoff]
        last_up, last_down = self.last_scale_up_time, self.last_scale_down_time
        if desired != current:
            events.append(ScaleEvent(time=now, from_replicas=current, to_replicas=desired))
            if desired > current:
                last_up = now
            else:
                last_down = now
        update: dict[str, object] = {
            "recommendations": recommendations,
            "events": events,
            "last_scale_up_time": last_up,
            "last_scale_down_time": last_down,
        }
        if ready is not None:
            update["ready_replicas"] = ready
            if self.ready_replicas is not None and ready > self.ready_replicas:
                update["ready_rose_time"] = now
        return self.model_copy(update=update)
