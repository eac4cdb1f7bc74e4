"""A pool admitted by Kueue: its flavor, cohort and tier queues, and each model's LocalQueue."""

from __future__ import annotations

from typing import Any

import pytest
from render_fixtures import NAMESPACE, check_golden, load_pool, uid_for

from gpupool.api.v1alpha1 import InferencePool, ModelDeployment, ModelDeploymentStatus, Scheduler, Tier
from gpupool.render import render_model_deployment, render_pool_queues
from gpupool.render.kueue import QUEUE_NAME_LABEL, admission, cluster_queue_name, inactive_queues
from gpupool.services.modeldeployment import awaiting_admission, plan_model

TOTAL = 32  # four H100 nodes of eight


def _pool(scheduler: Scheduler = Scheduler.KUEUE, **spec: Any) -> InferencePool:
    pool = load_pool("pool-nvidia-h100.yaml")
    return pool.model_copy(update={"spec": pool.spec.model_copy(update={"scheduler": scheduler, **spec})})


def _model(name: str = "llama-405b", model: str = "llama-3.1-405b", tier: str = "P1") -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": name, "namespace": NAMESPACE, "uid": uid_for(name)},
            "spec": {
                "model": {"name": model},
                "pool": "nvidia-h100",
                "tier": tier,
                "traffic": {"peakQps": 2},
            },
        }
    )


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        kinds.setdefault(obj["kind"], []).append(obj)
    return kinds


def _accelerator_quota(queue: dict[str, Any]) -> dict[str, Any]:
    (group,) = queue["spec"]["resourceGroups"]
    (flavor,) = group["flavors"]
    quota: dict[str, Any] = flavor["resources"][0]
    assert quota["name"] == group["coveredResources"][0] == "nvidia.com/gpu"
    return quota


def test_default_tiers_on_32_h100_match_golden() -> None:
    check_golden(render_pool_queues(_pool(), TOTAL), "pool-h100-kueue-queues")


def test_a_pool_of_the_default_scheduler_has_no_queues() -> None:
    assert render_pool_queues(_pool(Scheduler.DEFAULT), TOTAL) == []


def test_reserves_become_nominal_quotas_and_the_rest_the_cohorts() -> None:
    kinds = _by_kind(render_pool_queues(_pool(), TOTAL))
    (flavor,) = kinds["ResourceFlavor"]
    (cohort,) = kinds["Cohort"]
    queues = {q["metadata"]["name"]: q for q in kinds["ClusterQueue"]}
    # 40 / 30 / 30 % of 32: floor gives 12, 9, 9; the 2 left over belong to the cohort.
    nominal = {name: int(_accelerator_quota(q)["nominalQuota"]) for name, q in queues.items()}
    assert nominal == {"gpupool-nvidia-h100-p0": 12, "gpupool-nvidia-h100-p1": 9, "gpupool-nvidia-h100-p2": 9}
    assert int(_accelerator_quota(cohort)["nominalQuota"]) == TOTAL - sum(nominal.values()) == 2
    assert {q["spec"]["cohortName"] for q in queues.values()} == {cohort["metadata"]["name"]}
    assert flavor["spec"]["nodeLabels"] == _pool().spec.node_selector
    for obj in (flavor, cohort, *queues.values()):
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("InferencePool", "nvidia-h100", True)


def test_tier_semantics_become_limits_and_preemption() -> None:
    tiers = [
        Tier(name="P0", priority=1000, reserved_percent=50, lendable=False),
        Tier(name="P1", priority=100, reserved_percent=25, borrowing_limit_percent=25, reclaim=False),
        Tier(name="P2", priority=1, reserved_percent=25, preemptible=True),
    ]
    queues = {
        q["metadata"]["name"]: q
        for q in _by_kind(render_pool_queues(_pool(tiers=tiers), TOTAL))["ClusterQueue"]
    }
    p0, p1, p2 = (queues[cluster_queue_name("nvidia-h100", t)] for t in ("P0", "P1", "P2"))
    assert _accelerator_quota(p0) == {"name": "nvidia.com/gpu", "nominalQuota": "16", "lendingLimit": "0"}
    assert _accelerator_quota(p1) == {"name": "nvidia.com/gpu", "nominalQuota": "8", "borrowingLimit": "8"}
    # A preemptible tier lends all of its reserve and may borrow whatever is idle.
    assert _accelerator_quota(p2) == {"name": "nvidia.com/gpu", "nominalQuota": "8"}
    assert p0["spec"]["preemption"] == {"withinClusterQueue": "LowerPriority", "reclaimWithinCohort": "Any"}
    assert p1["spec"]["preemption"] == {"withinClusterQueue": "LowerPriority", "reclaimWithinCohort": "Never"}
    assert p2["spec"]["preemption"] == {"withinClusterQueue": "Never", "reclaimWithinCohort": "Never"}


def test_every_resource_the_pods_request_is_covered() -> None:
    pool = _pool(inter_node=_pool().spec.inter_node.model_copy(update={"rdma_resource": "rdma/ib"}))
    md = _model()
    _, plan = plan_model(md, pool)
    objects = render_model_deployment(md, pool, plan, 1)
    (group,) = _by_kind(objects)["LeaderWorkerSet"]
    requested = set(
        group["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]["resources"][
            "requests"
        ]
    )
    for queue in _by_kind(render_pool_queues(pool, TOTAL))["ClusterQueue"]:
        (resource_group,) = queue["spec"]["resourceGroups"]
        assert requested <= set(resource_group["coveredResources"])


@pytest.mark.parametrize(
    ("model", "kind"), [("llama-3.1-405b", "LeaderWorkerSet"), ("llama-3.1-8b", "Deployment")]
)
def test_a_model_on_a_kueue_pool_names_its_own_local_queue(model: str, kind: str) -> None:
    pool = _pool()
    md = _model(name="m", model=model, tier="P0")
    _, plan = plan_model(md, pool)
    kinds = _by_kind(render_model_deployment(md, pool, plan, 2))
    (workload,) = kinds[kind]
    (queue,) = kinds["LocalQueue"]
    assert workload["metadata"]["labels"][QUEUE_NAME_LABEL] == queue["metadata"]["name"]
    assert queue["metadata"]["namespace"] == NAMESPACE
    assert queue["spec"] == {"clusterQueue": "gpupool-nvidia-h100-p0"}
    (owner,) = queue["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("ModelDeployment", "m")


def test_a_model_on_a_default_pool_has_no_queue() -> None:
    pool = _pool(Scheduler.DEFAULT)
    md = _model()
    _, plan = plan_model(md, pool)
    objects = render_model_deployment(md, pool, plan, 1)
    assert "LocalQueue" not in _by_kind(objects)
    assert all(QUEUE_NAME_LABEL not in o["metadata"].get("labels", {}) for o in objects)


def _workload(name: str, **conditions: tuple[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {
            "conditions": [{"type": t, "status": s, "message": m} for t, (s, m) in conditions.items()]
        },
    }


def test_admission_reports_kueues_message_for_workloads_not_admitted() -> None:
    held = (
        "couldn't assign flavors to pod set leader: insufficient quota for nvidia.com/gpu "
        "in flavor gpupool-h100"
    )
    result = admission(
        [
            _workload("b", QuotaReserved=("False", held)),
            _workload("a", QuotaReserved=("True", "reserved"), Admitted=("True", "admitted")),
            _workload("c", Finished=("True", "done")),
            _workload("d"),
        ]
    )
    assert (result.workloads, result.admitted) == (3, 1)
    assert result.waiting == (f"b: {held}", "d: not yet considered by Kueue")
    assert "2 of 3 instance(s) wait for Kueue" in result.message("q")


def test_inactive_queues_carry_kueues_message() -> None:
    active = {"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Active", "status": "True"}]}}
    flavorless = {
        "metadata": {"name": "b"},
        "status": {"conditions": [{"type": "Active", "status": "False", "message": "flavor not found"}]},
    }
    assert inactive_queues([active, flavorless, {"metadata": {"name": "c"}}]) == [
        "b: flavor not found",
        "c: Kueue has not reported on it yet",
    ]


def test_a_model_waiting_for_admission_keeps_its_transition_time() -> None:
    waiting = {"q": admission([_workload("w", QuotaReserved=("False", "insufficient quota"))])}
    first = awaiting_admission(ModelDeploymentStatus(), waiting, "2026-01-01T00:00:00Z")
    (placed,) = first.conditions
    assert (placed.status, placed.reason) == ("False", "AwaitingAdmission")
    assert "w: insufficient quota" in placed.message
    again = awaiting_admission(ModelDeploymentStatus(), waiting, "2026-01-01T00:05:00Z", first.conditions)
    assert again.conditions == first.conditions
    admitted = {"q": admission([_workload("w", Admitted=("True", "ok"))])}
    assert awaiting_admission(first, admitted, "2026-01-01T00:06:00Z") is first
