"""The autoscaler's decision for one ModelDeployment, an explicit input of `decide(..., scaling=)`.

Pure: it takes the model (its policy, plan and the `status.autoscaling` it persisted), the ready
instances, the model's metrics window, the newest scaler state the operator holds and the clock,
and returns a `Scaling`: the count the autoscaler owns, what `status.autoscaling` records of it and
the `MetricsAvailable` condition. Reading Prometheus, the in-process state cache, the operator's
own metrics and the pods' deletion costs stay in `gpupool.controller.autoscaler`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from gpupool.api.conditions import ConditionStatus, Reason
from gpupool.api.v1alpha1 import AutoscalingDecision, AutoscalingStatus, ModelDeployment
from gpupool.scaling import MetricsWindow, ScalerState, ScalingDecision, decide_replicas

# The MetricsAvailable condition: status, reason, message.
MetricsVerdict = tuple[ConditionStatus, Reason, str]


@dataclass(frozen=True)
class Scaling:
    """What the autoscaler decided in one evaluation: the pipeline renders `replicas`."""

    replicas: int
    autoscaling: AutoscalingStatus  # status.autoscaling as it goes on the wire
    metrics: MetricsVerdict  # the MetricsAvailable condition
    time: str  # when it was decided (RFC 3339), the condition's transition time
    decision: ScalingDecision


def autoscaled(md: ModelDeployment) -> bool:
    """The autoscaler owns the count: autoscaling is on, spec.replicas is not set, and the model runs
    on one pool (spec.pool), whose Prometheus the autoscaler reads."""
    policy = md.spec.autoscaling
    return policy is not None and policy.enabled and md.spec.replicas is None and md.spec.pool is not None


def standing_replicas(md: ModelDeployment) -> int | None:
    """The count the autoscaler decided last, which holds between its evaluations (None: it has
    decided nothing yet, or does not own the count). It lives in status.autoscaling, so a restarted
    operator keeps it."""
    if not autoscaled(md) or md.status is None or md.status.autoscaling is None:
        return None
    last = md.status.autoscaling.last_decision
    return last.to_replicas if last is not None else None


def scale(
    md: ModelDeployment,
    ready_replicas: int,
    window: MetricsWindow,
    unavailable: tuple[Reason, str] | None,
    cached: ScalerState | None,
    now: float,
    persist_seconds: float,
) -> Scaling | None:
    """The autoscaler's decision for `md`, or None when it does not own the count or the model is
    not planned yet (the next evaluation decides).

    `unavailable` says why the metrics cannot be read at all (no Prometheus, an error, no series);
    `cached` is the newest state the operator holds, which may be newer than the persisted one. The
    recorded decision is refreshed only when it says something new or is `persist_seconds` old, so a
    decision that changes nothing writes nothing.
    """
    status = md.status
    if not autoscaled(md) or status is None or status.plan is None or not status.plan.qps_per_instance:
        return None
    policy = md.spec.autoscaling
    assert policy is not None  # autoscaled(md)
    previous = status.autoscaling or AutoscalingStatus()
    state = cached
    if state is None or _newest(state) < _newest(previous.state):
        state = previous.state
    current = status.replicas
    decision = decide_replicas(
        window,
        state,
        current,
        min(ready_replicas, current),
        status.plan.qps_per_instance,
        status.plan.load_time_seconds,
        policy,
        now,
        min_replicas=md.spec.scaling.min_replicas,
        max_replicas=md.spec.scaling.max_replicas,
        latency_slo_seconds=md.spec.traffic.latency_slo_ms / 1000,
    )
    recorded = AutoscalingDecision(
        time=rfc3339(now),
        from_replicas=decision.current,
        to_replicas=decision.desired,
        ready=decision.ready,
        recommendation=decision.recommendation,
        direction=decision.direction,
        reason=decision.reason,
        metrics_available=decision.metrics_available,
        missing=decision.missing,
        overload=decision.overload,
        limits=decision.limits,
        rules=decision.rules,
        signals=decision.signals,
    )
    last = previous.last_decision
    stale = last is None or now - _parse_time(last.time) >= persist_seconds
    autoscaling = previous
    if stale or decision.desired != current or last is None or _shape(last) != _shape(recorded):
        autoscaling = AutoscalingStatus(last_decision=recorded, state=decision.state)
    verdict: MetricsVerdict = (
        (ConditionStatus.FALSE, *unavailable) if unavailable is not None else _availability(decision)
    )
    return Scaling(
        replicas=decision.desired,
        autoscaling=autoscaling,
        metrics=verdict,
        time=rfc3339(now),
        decision=decision,
    )


def _availability(decision: ScalingDecision) -> MetricsVerdict:
    if not decision.metrics_available:
        # Without the ages and values in parentheses, so that the message is stable while it lasts.
        missing = ", ".join(re.sub(r" \(.*\)$", "", m) for m in decision.missing)
        return (
            ConditionStatus.FALSE,
            Reason.METRICS_INCOMPLETE,
            f"missing: {missing}; the count never goes down while any is missing",
        )
    return (ConditionStatus.TRUE, Reason.METRICS_FRESH, "every signal the autoscaler reads is fresh")


def _newest(state: ScalerState) -> float:
    return max((r.time for r in state.recommendations), default=float("-inf"))


def _shape(decision: AutoscalingDecision) -> tuple[object, ...]:
    """What a decision says, without its clock, wording and numbers."""
    return (
        decision.from_replicas,
        decision.to_replicas,
        decision.recommendation,
        decision.direction,
        decision.metrics_available,
        [re.sub(r" \(.*\)$", "", m) for m in decision.missing],
        decision.overload,
        decision.limits,
        [rule.split(":")[0] for rule in decision.rules],
    )


def rfc3339(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse_time(value: str) -> float:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
