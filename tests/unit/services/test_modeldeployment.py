"""decide(): from a ModelDeployment, its pool and the observed workload to objects, status, events."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.api.conditions import ConditionType, find_condition
from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.services.modeldeployment import PoolContext, WorkloadObservation, decide, desired_replicas

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T01:00:00Z"


def pool(accelerator: str = "H100-80GB", vendor: str = "nvidia", **spec: Any) -> InferencePool:
    return InferencePool.model_validate(
        {
            "metadata": {"name": "h100", "uid": "pool-uid", "generation": 1},
            "spec": {
                "vendor": vendor,
                "accelerator": accelerator,
                "nodeSelector": {"gpu-type": vendor},
                "pricePerAcceleratorHour": 2.5,
                **spec,
            },
        }
    )


def on_pool(the_pool: InferencePool | None) -> dict[str, PoolContext | None]:
    """The model's one pool as the command line sees it: not counted (None: it does not exist)."""
    return {"h100": PoolContext(the_pool) if the_pool is not None else None}


def model(**spec: Any) -> ModelDeployment:
    body: dict[str, Any] = {"model": {"name": "llama-3.1-70b"}, "pool": "h100", "traffic": {"peakQps": 20}}
    body.update(spec)
    return ModelDeployment.model_validate(
        {"metadata": {"name": "chat", "namespace": "team-a", "uid": "md-uid", "generation": 3}, "spec": body}
    )


def condition(outcome: Any, type_: ConditionType) -> Any:
    found = find_condition(outcome.status.conditions, type_)
    assert found is not None
    return found


def test_catalog_model_is_planned_rendered_and_reported() -> None:
    outcome = decide(model(), on_pool(pool()), {}, NOW)
    assert outcome.apply
    plan = outcome.status.plan
    assert plan is not None and plan.tensor_parallel == 4
    assert outcome.status.replicas == plan.instances
    assert outcome.status.observed_generation == 3
    assert outcome.status.selector == "gpupool.io/model-deployment=chat"
    kinds = sorted(o["kind"] for o in outcome.objects)
    assert kinds == ["Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service"]
    deployment = next(o for o in outcome.objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == plan.instances
    assert condition(outcome, ConditionType.PLANNED).status == "True"
    assert condition(outcome, ConditionType.READY).status == "False"
    assert condition(outcome, ConditionType.PROGRESSING).reason == "RollingOut"
    assert [e.reason for e in outcome.events] == ["Planned", "Scaled"]


def test_ready_when_every_instance_is_ready() -> None:
    first = decide(model(), on_pool(pool()), {}, NOW)
    replicas = first.status.replicas
    running = WorkloadObservation(replicas=replicas, ready_replicas=replicas, updated_replicas=replicas)
    settled = decide(
        model().model_copy(update={"status": first.status}), on_pool(pool()), {"h100": running}, LATER
    )
    ready = condition(settled, ConditionType.READY)
    assert (ready.status, ready.reason) == ("True", "Available")
    assert condition(settled, ConditionType.PROGRESSING).status == "False"
    assert [e.reason for e in settled.events] == ["Available"]


def test_second_pass_with_its_own_status_changes_nothing() -> None:
    first = decide(model(), on_pool(pool()), {}, NOW)
    again = decide(model().model_copy(update={"status": first.status}), on_pool(pool()), {}, LATER)
    assert again.status == first.status
    assert again.objects == first.objects
    assert again.events == []


@pytest.mark.parametrize(
    ("md", "the_pool", "reason", "words"),
    [
        (model(), None, "PoolNotFound", "does not exist"),
        (model(model={"name": "llama-9"}), pool(), "UnknownModel", "llama-9"),
        (model(tier="P7"), pool(), "UnknownTier", "P0, P1, P2"),
        (model(model={"name": "llama-3.1-405b"}, engine={"tensorParallel": 4}), pool(), "DoesNotFit", "GiB"),
        (
            model(engine={"type": "triton"}, model={"name": "qwen2.5-7b"}),
            pool("Ascend910B", "ascend"),
            "UnsupportedEngine",
            "triton",
        ),
        (model(precision="fp8"), pool("A100-80GB"), "UnsupportedPrecision", "fp8"),
    ],
)
def test_unservable_specs_explain_themselves_and_write_no_workload(
    md: ModelDeployment, the_pool: InferencePool | None, reason: str, words: str
) -> None:
    outcome = decide(md, on_pool(the_pool), {}, NOW)
    assert not outcome.apply
    assert outcome.objects == []
    degraded = condition(outcome, ConditionType.DEGRADED)
    assert (degraded.status, degraded.reason) == ("True", reason)
    assert words.lower() in degraded.message.lower()
    assert condition(outcome, ConditionType.READY).status == "False"
    assert any(e.type == "Warning" and e.reason == reason for e in outcome.events)


def test_a_broken_update_keeps_the_running_workload_and_says_so() -> None:
    running = WorkloadObservation(replicas=2, ready_replicas=2, updated_replicas=2)
    good = decide(model(), on_pool(pool()), {"h100": running}, NOW)
    broken = model(model={"name": "no-such-model"}).model_copy(update={"status": good.status})
    outcome = decide(broken, on_pool(pool()), {"h100": running}, LATER)
    assert not outcome.apply
    assert outcome.status.plan == good.status.plan
    assert outcome.status.ready_replicas == 2
    assert "keeps serving" in condition(outcome, ConditionType.READY).message


def test_explicit_replicas_win_and_bounds_clamp_the_plan() -> None:
    planned = decide(model(), on_pool(pool()), {}, NOW).status.plan
    assert planned is not None and planned.instances > 1
    assert desired_replicas(model(replicas=0), planned) == 0
    assert desired_replicas(model(replicas=5), planned) == 5
    assert desired_replicas(model(scaling={"minReplicas": 1, "maxReplicas": 1}), planned) == 1
    assert desired_replicas(model(scaling={"minReplicas": 9}), planned) == 9


def test_scaled_to_zero_is_ready_and_settled() -> None:
    outcome = decide(model(replicas=0), on_pool(pool()), {}, NOW)
    assert condition(outcome, ConditionType.READY).reason == "ScaledToZero"
    assert condition(outcome, ConditionType.PROGRESSING).status == "False"


@settings(max_examples=40, deadline=None)
@given(
    qps=st.floats(min_value=0, max_value=500, allow_nan=False),
    replicas=st.one_of(st.none(), st.integers(min_value=0, max_value=20)),
    name=st.sampled_from(["llama-3.1-8b", "qwen2.5-32b", "glm-4-9b", "mixtral-8x7b", "llama-3.1-405b"]),
    ready=st.integers(min_value=0, max_value=20),
)
def test_decide_is_a_fixed_point(qps: float, replicas: int | None, name: str, ready: int) -> None:
    """Feeding a pass its own status back gives the same status, objects and no events."""
    md = model(model={"name": name}, traffic={"peakQps": qps}, replicas=replicas)
    observed = WorkloadObservation(replicas=ready, ready_replicas=ready, updated_replicas=ready)
    first = decide(md, on_pool(pool()), {"h100": observed}, NOW)
    second = decide(
        md.model_copy(update={"status": first.status}), on_pool(pool()), {"h100": observed}, LATER
    )
    assert second.status == first.status
    assert second.objects == first.objects
    assert second.events == []
