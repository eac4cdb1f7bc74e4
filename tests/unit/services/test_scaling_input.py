"""The autoscaler as a pure service: its decision is the `scaling` input that drives decide()'s count."""

from __future__ import annotations

from typing import Any

from gpupool.api.conditions import ConditionType, Reason, find_condition
from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.scaling import MetricsWindow
from gpupool.services.autoscaling import autoscaled, scale, standing_replicas
from gpupool.services.modeldeployment import PoolContext, WorkloadObservation, decide

NOW = 1_700_000_000.0
POLICY = {"enabled": True, "evaluationIntervalSeconds": 5, "predictive": False}


def contexts() -> dict[str, PoolContext | None]:
    pool = InferencePool.model_validate(
        {"metadata": {"name": "h100"}, "spec": {"vendor": "nvidia", "accelerator": "H100-80GB"}}
    )
    return {"h100": PoolContext(pool)}


def model(**spec: Any) -> ModelDeployment:
    body: dict[str, Any] = {
        "model": {"name": "llama-3.1-8b"},
        "pool": "h100",
        "traffic": {"peakQps": 1, "qpsPerInstance": 10},
        "scaling": {"minReplicas": 1, "maxReplicas": 6},
        "autoscaling": POLICY,
        **spec,
    }
    md = ModelDeployment.model_validate(
        {"metadata": {"name": "chat", "namespace": "a", "generation": 1}, "spec": body}
    )
    first = decide(md, contexts(), {}, "2026-01-01T00:00:00Z")
    return md.model_copy(update={"status": first.status})


def busy(qps: float) -> MetricsWindow:
    """A minute of samples every 5 s: `qps` served, no queue, half the KV cache used."""
    times = [NOW - 60 + 5 * i for i in range(13)]
    return MetricsWindow(
        model="a/chat",
        timestamps=times,
        qps=[qps] * len(times),
        waiting_requests=[0.0] * len(times),
        kv_cache_usage=[0.5] * len(times),
        accelerator_utilization=[0.9] * len(times),
        ttft_p99_seconds=[0.1] * len(times),
        error_rate=[0.0] * len(times),
    )


def test_the_decided_count_is_the_count_rendered_and_recorded() -> None:
    md = model()
    assert md.status is not None and md.status.replicas == 1
    scaling = scale(md, 1, busy(40.0), None, None, NOW, 60.0)
    assert scaling is not None and scaling.replicas > 1
    seen = {"h100": WorkloadObservation(1, 1, 1)}
    outcome = decide(md, contexts(), seen, "2026-01-01T00:01:00Z", scaling=scaling)
    assert outcome.status.replicas == scaling.replicas
    deployment = next(o for o in outcome.objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == scaling.replicas
    assert outcome.status.autoscaling == scaling.autoscaling
    fresh = find_condition(outcome.status.conditions, ConditionType.METRICS_AVAILABLE)
    assert fresh is not None and (fresh.status, fresh.reason) == ("True", "MetricsFresh")
    # Without an evaluation the count holds at what the autoscaler decided last.
    after = md.model_copy(update={"status": outcome.status})
    assert standing_replicas(after) == scaling.replicas
    assert decide(after, contexts(), seen, "2026-01-01T00:02:00Z").status.replicas == scaling.replicas


def test_a_different_decision_gives_a_different_count_from_the_same_status() -> None:
    md = model()
    counts = {}
    for qps in (5.0, 40.0):
        scaling = scale(md, 1, busy(qps), None, None, NOW, 60.0)
        assert scaling is not None
        counts[qps] = decide(md, contexts(), {}, "t", scaling=scaling).status.replicas
    assert counts[5.0] == 1 and counts[40.0] > 1


def test_unreadable_metrics_hold_the_count_and_say_why() -> None:
    md = model()
    unavailable = (Reason.PROMETHEUS_NOT_CONFIGURED, "the pool has no spec.prometheus.url; the count is held")
    scaling = scale(md, 1, MetricsWindow(model="a/chat"), unavailable, None, NOW, 60.0)
    assert scaling is not None and scaling.replicas == 1
    outcome = decide(md, contexts(), {}, "t", scaling=scaling)
    condition = find_condition(outcome.status.conditions, ConditionType.METRICS_AVAILABLE)
    assert condition is not None and (condition.status, condition.reason) == (
        "False",
        "PrometheusNotConfigured",
    )
    assert condition.message == unavailable[1]


def test_no_decision_before_a_plan_or_without_ownership() -> None:
    md = model()
    unplanned = md.model_copy(update={"status": None})
    assert scale(unplanned, 0, busy(40.0), None, None, NOW, 60.0) is None
    fixed = model(replicas=2)
    assert not autoscaled(fixed) and scale(fixed, 2, busy(40.0), None, None, NOW, 60.0) is None
    several = md.model_copy(
        update={"spec": md.spec.model_copy(update={"pool": None, "pools": [{"name": "h100"}]})}
    )
    assert not autoscaled(several)
