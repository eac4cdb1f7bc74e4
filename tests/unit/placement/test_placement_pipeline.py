"""One decide() for every model: spec.pool is read as a one-element spec.pools, and a model of
several pools reports preemption, lost instances, its asked count and a count capped to zero as a
model of one pool does."""

from __future__ import annotations

from typing import Any

import pytest
from placement_fixtures import make_pool, node, pod

from gpupool.api.conditions import ConditionType, find_condition
from gpupool.api.v1alpha1 import ModelDeployment, ModelDeploymentStatus
from gpupool.services.modeldeployment import ModelOutcome, PoolContext, WorkloadObservation, decide
from gpupool.services.pool import pool_state

NOW = "2026-01-01T00:00:00Z"
SOON = "2026-01-01T00:00:05Z"
LATER = "2026-01-01T01:00:00Z"
PREEMPTED = "the scheduler preempted 1 instance(s) (chat-1) to make room for a higher tier"


def model(pools: list[dict[str, Any]] | None = None, **spec: Any) -> ModelDeployment:
    body: dict[str, Any] = {
        "model": {"name": "llama-3.1-8b"},
        "tier": "P1",
        "traffic": {"peakQps": 1, "qpsPerInstance": 5},
        **spec,
    }
    if pools is None:
        body["pool"] = "h100"
    else:
        body["pools"] = pools
    return ModelDeployment.model_validate(
        {"metadata": {"name": "chat", "namespace": "team-a", "uid": "md-uid", "generation": 1}, "spec": body}
    )


def counted(nodes: list[dict[str, Any]], pods: list[dict[str, Any]], name: str = "h100") -> PoolContext:
    pool = make_pool(name, pricePerAcceleratorHour=2.5)
    return PoolContext(pool, pool_state(pool, nodes, pods))


def placed(outcome: ModelOutcome) -> Any:
    found = find_condition(outcome.status.conditions, ConditionType.PLACED)
    assert found is not None
    return found


def without_workload_names(status: ModelDeploymentStatus) -> ModelDeploymentStatus:
    return status.model_copy(
        update={"placements": [p.model_copy(update={"workload": None}) for p in status.placements]}
    )


def running_pods(count: int, node_name: str = "n1") -> list[dict[str, Any]]:
    return [pod(f"chat-{i}", 1, node_name=node_name) for i in range(count)]


SCENARIOS: dict[str, tuple[dict[str, Any], PoolContext | None, WorkloadObservation | None, str | None]] = {
    "room for every instance": ({"replicas": 3}, counted([node("n1"), node("n2")], []), None, None),
    "sized from the traffic": (
        {"traffic": {"peakQps": 12, "qpsPerInstance": 5}},
        counted([node("n1")], []),
        None,
        None,
    ),
    "tier-capped": (
        {"replicas": 12, "tier": "P2"},
        counted([node("n1")], []),
        WorkloadObservation(2, 2, 2),
        None,
    ),
    "a pool without nodes": ({"replicas": 2}, counted([], []), None, None),
    "not counted (the command line)": ({"replicas": 2}, PoolContext(make_pool("h100")), None, None),
    "preempted": (
        {"replicas": 2},
        counted([node("n1")], running_pods(2)),
        WorkloadObservation(2, 1, 2),
        PREEMPTED,
    ),
    "an instance lost with its node": (
        {"replicas": 2},
        counted([node("n1", ready="False"), node("n2")], [*running_pods(1), *running_pods(1, "n2")]),
        WorkloadObservation(2, 1, 2),
        None,
    ),
    "capped to zero": (
        {"replicas": 2},
        counted([node("n1", gpus=1)], [pod("other", 1, node_name="n1", model=None, tier=None, pool=None)]),
        None,
        None,
    ),
    "no such pool": ({"replicas": 2}, None, None, None),
    "does not fit": ({"model": {"name": "llama-3.1-405b"}}, counted([node("n1")], []), None, None),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_one_element_pools_list_decides_as_spec_pool_does_but_for_the_workload_name(scenario: str) -> None:
    spec, context, workload, preemption = SCENARIOS[scenario]
    observed = {"h100": workload}
    single = decide(model(**spec), {"h100": context}, observed, NOW, preemption=preemption)
    listed = decide(
        model([{"name": "h100"}], **spec), {"h100": context}, observed, NOW, preemption=preemption
    )
    assert (listed.apply, listed.asks, listed.allocations) == (single.apply, single.asks, single.allocations)
    if scenario == "no such pool":
        # The message names the field to fix: spec.pool, or the pool's entry in spec.pools.
        assert [c.reason for c in listed.status.conditions] == [c.reason for c in single.status.conditions]
        assert "spec.pool to an existing pool" in placed_or_ready(single).message
        return
    assert without_workload_names(listed.status) == without_workload_names(single.status)
    assert listed.events == single.events
    assert [p.workload for p in single.status.placements] == (["chat"] if single.apply else [])
    assert [p.workload for p in listed.status.placements] == (["chat-h100"] if listed.apply else [])
    assert [(o["kind"], o["spec"].get("replicas")) for o in listed.objects] == [
        (o["kind"], o["spec"].get("replicas")) for o in single.objects
    ]


def placed_or_ready(outcome: ModelOutcome) -> Any:
    found = find_condition(outcome.status.conditions, ConditionType.READY)
    assert found is not None
    return found


def test_the_scenarios_cover_what_they_claim() -> None:
    outcomes = {
        name: decide(model(**spec), {"h100": context}, {"h100": workload}, NOW, preemption=preemption)
        for name, (spec, context, workload, preemption) in SCENARIOS.items()
    }
    reasons = {
        name: getattr(find_condition(o.status.conditions, ConditionType.PLACED), "reason", None)
        for name, o in outcomes.items()
    }
    assert reasons["room for every instance"] == "Placed"
    assert reasons["tier-capped"] == "TierCapped"
    assert reasons["a pool without nodes"] == "InsufficientCapacity"
    assert reasons["preempted"] == "Preempted"
    assert reasons["an instance lost with its node"] == "InstancesLost"
    assert outcomes["sized from the traffic"].status.replicas == 3  # ceil(12 x 1.2 / 5)
    assert (
        find_condition(outcomes["not counted (the command line)"].status.conditions, ConditionType.PLACED)
        is None
    )
    zero = outcomes["capped to zero"].status
    ready = find_condition(zero.conditions, ConditionType.READY)
    assert zero.replicas == 0 and ready is not None and ready.status == "False"
    assert not outcomes["no such pool"].apply and not outcomes["does not fit"].apply


# --------------------------------------------------------------------------------------------------
# What a model of several pools gains


PAIR = [{"name": "h100", "priority": 10}, {"name": "spare"}]


def test_preemption_reaches_a_model_of_several_pools_and_ends_with_restored() -> None:
    contexts = {
        "h100": counted([node("n1")], running_pods(2)),
        "spare": counted([node("s1", pool="spare")], [], "spare"),
    }
    md = model(PAIR, replicas=2)
    first = decide(md, contexts, {"h100": WorkloadObservation(2, 2, 2)}, NOW)
    assert placed(first).reason == "Placed"
    evicted = decide(
        md.model_copy(update={"status": first.status}),
        contexts,
        {"h100": WorkloadObservation(2, 1, 2)},
        SOON,
        preemption=PREEMPTED,
    )
    assert (placed(evicted).status, placed(evicted).reason, placed(evicted).message) == (
        "False",
        "Preempted",
        PREEMPTED,
    )
    assert [(e.type, e.reason) for e in evicted.events] == [("Warning", "Preempted")]
    # The pod watch's report is consumed; the condition holds until every instance is back.
    holding = decide(
        md.model_copy(update={"status": evicted.status}),
        contexts,
        {"h100": WorkloadObservation(2, 1, 2)},
        LATER,
    )
    assert placed(holding).reason == "Preempted" and holding.events == []
    back = decide(
        md.model_copy(update={"status": holding.status}),
        contexts,
        {"h100": WorkloadObservation(2, 2, 2)},
        LATER,
    )
    assert placed(back).reason == "Placed"
    assert any(e.reason == "Restored" for e in back.events)


def test_instances_lost_with_their_node_are_reported_by_a_model_of_several_pools() -> None:
    pods = [*running_pods(1), *running_pods(1, "n2")]
    contexts = {
        "h100": counted([node("n1", cordoned=True), node("n2")], pods),
        "spare": counted([node("s1", pool="spare")], [], "spare"),
    }
    outcome = decide(model(PAIR, replicas=2), contexts, {"h100": WorkloadObservation(2, 1, 2)}, NOW)
    condition = placed(outcome)
    assert (condition.status, condition.reason) == ("False", "InstancesLost")
    assert condition.message.startswith("1 instance(s) lost with their node: chat-0 on n1 (cordoned);")
    # The count is not cut: the instance on the healthy node keeps running, the lost one comes back.
    assert outcome.status.replicas == 2
    assert any(e.type == "Warning" and e.reason == "InstancesLost" for e in outcome.events)


def test_a_model_of_several_pools_reports_what_it_asked_and_a_count_capped_to_zero() -> None:
    full = [pod(f"x-{i}", 1, node_name="n1", model=None, tier=None, pool=None) for i in range(8)]
    contexts = {
        "h100": counted([node("n1")], full),
        "spare": counted(
            [node("s1", pool="spare")],
            [pod("y", 8, node_name="s1", model=None, tier=None, pool="spare")],
            "spare",
        ),
    }
    outcome = decide(model(PAIR, replicas=3), contexts, {}, NOW)
    assert outcome.status.asked_replicas == 3
    assert outcome.status.replicas == 0
    ready = find_condition(outcome.status.conditions, ConditionType.READY)
    assert ready is not None and (ready.status, ready.reason) == ("False", "InsufficientCapacity")
    assert ready.message.startswith("0 instances: ")
    roomy = decide(
        model(PAIR, traffic={"peakQps": 12, "qpsPerInstance": 5}),
        {"h100": counted([node("n1")], [])},
        {},
        NOW,
    )
    assert roomy.status.asked_replicas == 3  # ceil(12 x 1.2 / 5) on the first choice
