"""decide() and decide_pools() with pool state: tier and quota caps, capacity, preemption, overflow."""

from __future__ import annotations

from typing import Any

from placement_fixtures import node, pod

from gpupool.api.conditions import ConditionType, find_condition
from gpupool.api.v1alpha1 import MAX_INSTANCES, InferencePool, ModelDeployment
from gpupool.placement import MAX_INSTANCES_WITHOUT_NODES
from gpupool.services.modeldeployment import (
    PoolContext,
    WorkloadObservation,
    decide,
)
from gpupool.services.pool import pool_state

NOW = "2026-01-01T00:00:00Z"
SOON = "2026-01-01T00:00:05Z"
LATER = "2026-01-01T01:00:00Z"


def h100(name: str = "h100", **spec: Any) -> InferencePool:
    return InferencePool.model_validate(
        {
            "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
            "spec": {
                "vendor": "nvidia",
                "accelerator": "H100-80GB",
                "nodeSelector": {"pool": name},
                "pricePerAcceleratorHour": 2.5,
                **spec,
            },
        }
    )


def ascend(name: str = "ascend") -> InferencePool:
    return InferencePool.model_validate(
        {
            "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
            "spec": {
                "vendor": "ascend",
                "accelerator": "Ascend910B",
                "nodeSelector": {"pool": name},
                "pricePerAcceleratorHour": 1.2,
            },
        }
    )


def model(replicas: int, tier: str = "P1", namespace: str = "team-a", **spec: Any) -> ModelDeployment:
    body: dict[str, Any] = {
        "model": {"name": "llama-3.1-8b"},
        "pool": "h100",
        "tier": tier,
        "replicas": replicas,
        **spec,
    }
    return ModelDeployment.model_validate(
        {"metadata": {"name": "chat", "namespace": namespace, "uid": "md-uid", "generation": 1}, "spec": body}
    )


def context(pool: InferencePool, nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> PoolContext:
    return PoolContext(pool, pool_state(pool, nodes, pods))


def placed(outcome: Any) -> Any:
    found = find_condition(outcome.status.conditions, ConditionType.PLACED)
    assert found is not None
    return found


def test_a_model_within_its_tier_is_placed_and_reports_cost() -> None:
    ctx = context(h100(), [node("n1"), node("n2")], [])
    outcome = decide(model(3), {"h100": ctx}, {}, NOW)
    assert outcome.status.replicas == 3 and outcome.status.asked_replicas == 3
    condition = placed(outcome)
    assert (condition.status, condition.reason) == ("True", "Placed")
    assert outcome.status.limits == []
    assert outcome.status.cost_per_hour == 3 * 2.5  # TP=1 on H100
    [share] = outcome.status.placements
    assert (share.pool, share.workload, share.instances, share.tensor_parallel) == ("h100", "chat", 3, 1)


def test_the_tier_share_caps_the_count_and_the_condition_gives_the_numbers() -> None:
    # 16 accelerators: P1 reserves 30% (4) and may borrow whatever the others leave idle. Another
    # P1 workload already holds 8, so this one gets the other 8 of the 12 it asks for.
    pods = [pod(f"rag-{i}", 1, node_name="n1", model="rag", tier="P1") for i in range(8)]
    ctx = context(h100(), [node("n1"), node("n2")], pods)
    outcome = decide(model(12), {"h100": ctx}, {}, NOW)
    assert outcome.status.replicas == 8
    assert outcome.status.asked_replicas == 12
    deployment = next(o for o in outcome.objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 8
    condition = placed(outcome)
    assert (condition.status, condition.reason) == ("False", "TierCapped")
    assert "tier P1 of pool h100 gets 16 of the 16 accelerators" in condition.message
    assert "its reserve of 4" in condition.message and "12 borrowed" in condition.message
    limit = outcome.status.limits[0]  # the pool's capacity, 8 more, binds too
    assert (limit.kind, limit.asked, limit.allowed) == ("Tier", 12, 8)
    assert any(e.reason == "TierCapped" and e.type == "Warning" for e in outcome.events)


def test_a_borrowing_limit_caps_the_tier() -> None:
    tiers = [
        {"name": "P0", "priority": 1000, "reservedPercent": 50},
        {"name": "P1", "priority": 100, "reservedPercent": 25, "borrowingLimitPercent": 25},
    ]
    ctx = context(h100(tiers=tiers), [node("n1"), node("n2")], [])
    outcome = decide(model(16), {"h100": ctx}, {}, NOW)
    assert outcome.status.replicas == 8  # its 4, and 4 borrowed at most
    assert "at most 8 with borrowing" in placed(outcome).message


def test_a_tenant_quota_caps_the_count() -> None:
    pool = h100(tenants=[{"name": "team-a", "namespaces": ["team-a"], "maxAccelerators": 3}])
    pods = [pod("other-0", 1, node_name="n1", model="other", tier="P0")]
    ctx = context(pool, [node("n1"), node("n2")], pods)
    outcome = decide(model(4, tier="P0"), {"h100": ctx}, {}, NOW)
    assert outcome.status.replicas == 2  # the tenant's other workload holds 1 of its 3
    condition = placed(outcome)
    assert condition.reason == "QuotaExceeded"
    assert "tenant team-a may hold 3 accelerators" in condition.message


def test_no_room_on_the_nodes_is_reported_but_the_count_is_kept_for_pending_pods() -> None:
    # Three 8-GPU nodes, 2 GPUs of each held outside gpupool: the tier may hold 18 accelerators,
    # but a TP=4 instance needs 4 on one node, so only 3 of 4 fit and 6 GPUs are stranded.
    pool = h100(tiers=[{"name": "P0", "priority": 1000, "reservedPercent": 100}])
    pods = [
        pod(f"x-{n}-{i}", 1, node_name=n, model=None, tier=None, pool=None)
        for n in ("n1", "n2", "n3")
        for i in range(2)
    ]
    ctx = context(pool, [node("n1"), node("n2"), node("n3")], pods)
    big = {"model": {"name": "llama-3.1-70b"}}
    outcome = decide(model(3, tier="P0", **big), {"h100": ctx}, {}, NOW)
    assert outcome.status.plan is not None and outcome.status.plan.tensor_parallel == 4
    assert placed(outcome).reason == "Placed"
    outcome = decide(model(4, tier="P0", **big), {"h100": ctx}, {}, NOW)
    assert outcome.status.replicas == 4  # a cluster autoscaler may add a node for the pending one
    condition = placed(outcome)
    assert (condition.status, condition.reason) == ("False", "InsufficientCapacity")
    assert "wait Pending" in condition.message


def test_preemption_holds_until_every_instance_is_back_then_restores_with_an_event() -> None:
    ctx = context(h100(), [node("n1")], [])
    md = model(2, tier="P2")
    first = decide(md, {"h100": ctx}, {"h100": WorkloadObservation(2, 2, 2)}, NOW)
    evicted = decide(
        md.model_copy(update={"status": first.status}),
        {"h100": ctx},
        {"h100": WorkloadObservation(2, 1, 2)},
        SOON,
        preemption="preempted for a higher tier (pod chat-1 on n1)",
    )
    condition = placed(evicted)
    assert (condition.status, condition.reason) == ("False", "Preempted")
    assert any(e.reason == "Preempted" and e.type == "Warning" for e in evicted.events)
    # Still one short: the condition holds without a new report.
    holding = decide(
        md.model_copy(update={"status": evicted.status}),
        {"h100": ctx},
        {"h100": WorkloadObservation(2, 1, 2)},
        LATER,
    )
    assert placed(holding).reason == "Preempted"
    assert holding.events == []
    back = decide(
        md.model_copy(update={"status": holding.status}),
        {"h100": ctx},
        {"h100": WorkloadObservation(2, 2, 2)},
        LATER,
    )
    assert placed(back).reason == "Placed"
    assert [e.reason for e in back.events if e.reason == "Restored"] == ["Restored"]


def test_a_stale_all_ready_right_after_a_preemption_does_not_end_it() -> None:
    ctx = context(h100(), [node("n1")], [])
    md = model(2, tier="P2")
    evicted = decide(md, {"h100": ctx}, {"h100": WorkloadObservation(2, 2, 2)}, NOW, preemption="preempted")
    again = decide(
        md.model_copy(update={"status": evicted.status}),
        {"h100": ctx},
        {"h100": WorkloadObservation(2, 2, 2)},
        SOON,
    )
    assert placed(again).reason == "Preempted"


def test_the_same_state_gives_the_same_status_so_a_resync_writes_nothing() -> None:
    pods = [pod(f"rag-{i}", 1, node_name="n1", model="rag", tier="P1") for i in range(6)]
    ctx = context(h100(), [node("n1"), node("n2")], pods)
    first = decide(model(8), {"h100": ctx}, {}, NOW)
    second = decide(model(8).model_copy(update={"status": first.status}), {"h100": ctx}, {}, LATER)
    assert second.status == first.status and second.events == []


# --------------------------------------------------------------------------------------------------
# Several pools


def multi(replicas: int | None = None, **spec: Any) -> ModelDeployment:
    body: dict[str, Any] = {
        "model": {"name": "llama-3.1-8b"},
        "pools": [{"name": "h100", "priority": 10}, {"name": "ascend"}],
        "tier": "P0",
        "traffic": {"peakQps": 1, "qpsPerInstance": 5, "latencySloMs": 2000},
        **({"replicas": replicas} if replicas is not None else {}),
        **spec,
    }
    return ModelDeployment.model_validate(
        {"metadata": {"name": "chat", "namespace": "team-a", "uid": "md-uid", "generation": 1}, "spec": body}
    )


def test_overflow_goes_to_the_next_pool_as_its_own_workload_and_status_shows_the_total() -> None:
    # The H100 pool has one node with 2 free GPUs (TP=1 instances): 2 instances, the rest overflow.
    busy = [pod(f"x-{i}", 1, node_name="h1", model=None, tier=None, pool=None) for i in range(6)]
    nvidia = context(h100(), [node("h1")], busy)
    npu = context(ascend(), [node("a1", resource="huawei.com/Ascend910", pool="ascend")], [])
    outcome = decide(multi(replicas=5), {"h100": nvidia, "ascend": npu}, {}, NOW)
    shares = {p.pool: p.instances for p in outcome.status.placements}
    assert shares["h100"] == 2 and shares["ascend"] >= 3
    assert outcome.status.replicas == sum(shares.values())
    condition = placed(outcome)
    assert (condition.status, condition.reason) == ("True", "Overflowed")
    deployments = {o["metadata"]["name"]: o for o in outcome.objects if o["kind"] == "Deployment"}
    assert set(deployments) == {"chat-h100", "chat-ascend"}
    assert deployments["chat-ascend"]["spec"]["selector"]["matchLabels"] == {
        "gpupool.io/model-deployment": "chat",
        "gpupool.io/pool": "ascend",
    }
    resources = deployments["chat-ascend"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert "huawei.com/Ascend910" in resources["requests"]
    services = [o for o in outcome.objects if o["kind"] == "Service"]
    assert len(services) == 1 and services[0]["spec"]["selector"] == {"gpupool.io/model-deployment": "chat"}
    costs = [p.cost_per_hour for p in outcome.status.placements if p.instances]
    assert outcome.status.cost_per_hour == round(sum(c for c in costs if c is not None), 4)
    assert any(e.reason == "Overflowed" for e in outcome.events)


def test_with_room_on_the_preferred_pool_everything_goes_there() -> None:
    nvidia = context(h100(), [node("h1")], [])
    npu = context(ascend(), [node("a1", resource="huawei.com/Ascend910", pool="ascend")], [])
    outcome = decide(multi(replicas=3), {"h100": nvidia, "ascend": npu}, {}, NOW)
    shares = {p.pool: p.instances for p in outcome.status.placements}
    assert shares == {"h100": 3, "ascend": 0}
    assert placed(outcome).reason == "Placed"
    # The idle pool keeps a Deployment at zero, ready to take an overflow.
    zero = next(o for o in outcome.objects if o["metadata"]["name"] == "chat-ascend")
    assert zero["spec"]["replicas"] == 0


def test_a_missing_pool_is_skipped_and_no_usable_pool_is_an_error_with_reasons() -> None:
    nvidia = context(h100(), [node("h1")], [])
    outcome = decide(multi(replicas=1), {"h100": nvidia, "ascend": None}, {}, NOW)
    assert "skipped ascend (InferencePool ascend does not exist)" in placed(outcome).message
    failed = decide(multi(replicas=1), {"h100": None, "ascend": None}, {}, NOW)
    assert not failed.apply
    condition = find_condition(failed.status.conditions, ConditionType.READY)
    assert condition is not None and condition.reason == "PoolSkipped"
    assert "h100: InferencePool h100 does not exist" in condition.message


def test_a_pool_without_nodes_keeps_the_count_so_pending_pods_can_bring_nodes() -> None:
    ctx = context(h100(), [], [])
    outcome = decide(model(2), {"h100": ctx}, {}, NOW)
    assert outcome.status.replicas == 2
    condition = placed(outcome)
    assert (condition.status, condition.reason) == ("False", "InsufficientCapacity")
    assert "no schedulable node" in condition.message


def test_every_count_is_bounded_by_the_pool_or_by_a_fixed_cap_without_nodes() -> None:
    huge = model(MAX_INSTANCES)  # the most the schema admits
    empty = decide(huge, {"h100": context(h100(), [], [])}, {}, NOW)
    assert empty.status.replicas == MAX_INSTANCES_WITHOUT_NODES
    assert placed(empty).reason == "InsufficientCapacity"
    nodes = [node("n1"), node("n2"), node("n3")]
    counted = decide(huge, {"h100": context(h100(), nodes, [])}, {}, NOW)
    assert counted.status.replicas == 24  # every GPU of the pool, one instance each
