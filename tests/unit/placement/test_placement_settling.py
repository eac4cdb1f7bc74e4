"""The operator's loop over one pool, without a cluster: every model reads its count from one
allocation, pods follow the counts, the pool is recounted, and the models settle."""

from __future__ import annotations

from typing import Any

from placement_fixtures import node, pod

from gpupool.api.conditions import ConditionType, find_condition
from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.placement import Allocation, recount
from gpupool.services.modeldeployment import ModelOutcome, PoolContext, WorkloadObservation, decide
from gpupool.services.pool import pool_state, status_of

NOW = "2026-01-01T00:00:00Z"


def h100() -> InferencePool:
    spec = {"vendor": "nvidia", "accelerator": "H100-80GB", "nodeSelector": {"pool": "h100"}}
    return InferencePool.model_validate({"metadata": {"name": "h100", "generation": 1}, "spec": spec})


def model(name: str, replicas: int, tier: str = "P1", catalog: str = "llama-3.1-70b") -> ModelDeployment:
    spec = {"model": {"name": catalog}, "pool": "h100", "tier": tier, "replicas": replicas}
    return ModelDeployment.model_validate(
        {"metadata": {"name": name, "namespace": "ns", "uid": name, "generation": 1}, "spec": spec}
    )


class Pool:
    """A pool whose pods follow the models' counts: kept pods stay on their nodes, new ones go to
    the first node with room (or wait Pending), the cut ones go."""

    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.nodes = nodes
        self.pods: list[dict[str, Any]] = []
        self.allocation: Allocation | None = None
        self.models: dict[str, ModelDeployment] = {}
        self.outcomes: dict[str, ModelOutcome] = {}

    def free(self) -> dict[str, int]:
        free = {
            n["metadata"]["name"]: int(n["status"]["allocatable"]["nvidia.com/gpu"])
            for n in self.nodes
            if n["status"]["conditions"][-1]["status"] == "True"
        }
        for p in self.pods:
            where = p["spec"].get("nodeName")
            if where in free:
                free[where] -= int(p["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"])
        return free

    def follow(self, name: str, replicas: int, tp: int) -> None:
        mine = [p for p in self.pods if p["metadata"]["labels"]["gpupool.io/model-deployment"] == name]
        for extra in mine[replicas:]:
            self.pods.remove(extra)
        for i in range(len(mine), replicas):
            room = next((n for n, f in sorted(self.free().items()) if f >= tp), None)
            tier = self.models[name].spec.tier
            self.pods.append(pod(f"{name}-{i}", tp, node_name=room, model=name, tier=tier, namespace="ns"))

    def recount_and_decide(self) -> dict[str, int]:
        """One recount and a pass over every model, as the operator's resync makes it: models the
        allocation does not know yet register their demand first."""
        pool = h100()
        state = pool_state(pool, self.nodes, self.pods)
        self.allocation = recount(state, self.allocation)
        for name, md in self.models.items():
            if self.allocation is None or f"ns/{name}" not in self.allocation.demands:
                self.allocation = decide(
                    md, {"h100": PoolContext(pool, state, None, self.allocation)}, {}, NOW
                ).allocations["h100"]
        for name, md in self.models.items():
            previous = self.outcomes.get(name)
            status = previous.status if previous else None
            replicas = status.replicas if status else 0
            seen = WorkloadObservation(replicas=replicas, ready_replicas=replicas, updated_replicas=replicas)
            outcome = decide(
                md.model_copy(update={"status": status}),
                {"h100": PoolContext(pool, state, None, self.allocation)},
                {"h100": seen},
                NOW,
            )
            self.allocation = outcome.allocations["h100"]
            self.outcomes[name] = outcome
        # As the operator does, models whose count a later demand moved take theirs at once.
        for name, md in self.models.items():
            if self.outcomes[name].status.replicas != self.allocation.count(f"ns/{name}"):
                status = self.outcomes[name].status
                seen = WorkloadObservation(
                    replicas=status.replicas, ready_replicas=status.replicas, updated_replicas=status.replicas
                )
                context = PoolContext(pool, state, None, self.allocation)
                self.outcomes[name] = decide(
                    md.model_copy(update={"status": status}), {"h100": context}, {"h100": seen}, NOW
                )
        for name, outcome in self.outcomes.items():
            assert outcome.status.plan is not None
            self.follow(name, outcome.status.replicas, outcome.status.plan.tensor_parallel)
        return {name: o.status.replicas for name, o in self.outcomes.items()}


def test_three_oversubscribed_models_of_one_tier_settle_and_then_write_nothing() -> None:
    cluster = Pool([node(f"n{i}", pool="h100") for i in range(12)])  # 96 GPUs
    cluster.models = {f"llama-{i}": model(f"llama-{i}", 12) for i in range(3)}
    history = [cluster.recount_and_decide() for _ in range(6)]
    tp = cluster.outcomes["llama-0"].status.plan.tensor_parallel  # type: ignore[union-attr]
    # All 96 accelerators shared evenly, within one instance, and nothing moves after the first pass.
    final = history[-1]
    assert sum(final.values()) * tp == 96
    assert max(final.values()) - min(final.values()) <= 1
    assert all(h == final for h in history[1:])
    # Once the statuses are written, a pass posts no event and changes no status.
    statuses = {n: o.status for n, o in cluster.outcomes.items()}
    cluster.recount_and_decide()
    assert all(not o.events for o in cluster.outcomes.values())
    assert {n: o.status for n, o in cluster.outcomes.items()} == statuses
    placed = find_condition(cluster.outcomes["llama-0"].status.conditions, ConditionType.PLACED)
    assert placed is not None and placed.reason == "TierCapped"


def test_a_node_that_goes_not_ready_takes_only_its_own_instances() -> None:
    nodes = [node(f"n{i}", pool="h100") for i in range(6)]  # 48 GPUs
    cluster = Pool(nodes)
    cluster.models = {
        "chat": model("chat", 2, tier="P0", catalog="llama-3.1-8b"),
        "rag": model("rag", 4, tier="P1", catalog="llama-3.1-8b"),
    }
    for _ in range(2):
        before = cluster.recount_and_decide()
    sick = next(p["spec"]["nodeName"] for p in cluster.pods if p["metadata"]["name"].startswith("rag"))
    next(n for n in nodes if n["metadata"]["name"] == sick)["status"]["conditions"][-1]["status"] = "False"
    after = cluster.recount_and_decide()
    assert after == before  # nobody is scaled down
    rag = cluster.outcomes["rag"].status
    placed = find_condition(rag.conditions, ConditionType.PLACED)
    assert placed is not None and placed.reason == "InstancesLost" and sick in placed.message
    assert any(e.reason == "InstancesLost" and e.type == "Warning" for e in cluster.outcomes["rag"].events)
    chat = find_condition(cluster.outcomes["chat"].status.conditions, ConditionType.PLACED)
    assert chat is not None and (chat.reason != "InstancesLost" or sick in chat.message)


def test_a_model_capped_to_zero_is_not_ready() -> None:
    cluster = Pool([node("n0", pool="h100")])  # 8 GPUs, two TP=4 instances of llama-3.1-70b
    cluster.models = {
        "big": model("big", 2, tier="P0"),
        "late": model("late", 1, tier="P2"),
    }
    assert cluster.recount_and_decide() == {"big": 2, "late": 0}
    late = cluster.outcomes["late"].status
    ready = find_condition(late.conditions, ConditionType.READY)
    assert ready is not None and (ready.status, ready.reason) == ("False", "TierCapped")
    assert ready.message.startswith("0 instances: tier P2 of pool h100 gets 0")


def test_a_node_that_disappears_is_reported_by_its_models() -> None:
    nodes = [node(f"n{i}", pool="h100") for i in range(2)]
    cluster = Pool(nodes)
    cluster.models = {"rag": model("rag", 2, catalog="llama-3.1-8b")}
    cluster.recount_and_decide()
    where = cluster.pods[0]["spec"]["nodeName"]
    cluster.nodes = [n for n in nodes if n["metadata"]["name"] != where]
    cluster.recount_and_decide()
    placed = find_condition(cluster.outcomes["rag"].status.conditions, ConditionType.PLACED)
    assert placed is not None and placed.reason == "InstancesLost"
    assert f"on {where} (gone)" in placed.message


def test_p0_grows_into_an_idle_pool_and_gives_p1_its_reserve_back_with_the_numbers() -> None:
    cluster = Pool([node(f"n{i}", pool="h100") for i in range(4)])  # 32 GPUs: P0 12, P1 9, P2 9
    cluster.models = {"chat": model("chat", 4, tier="P0")}  # TP=4: 16 GPUs, beyond its reserve
    assert cluster.recount_and_decide() == {"chat": 4}
    cluster.models["rag"] = model("rag", 8, tier="P1", catalog="llama-3.1-8b")  # TP=1
    # rag takes what is idle (16), and nothing of P0's.
    assert cluster.recount_and_decide() == {"chat": 4, "rag": 8}
    cluster.models["chat"] = model("chat", 8, tier="P0")
    # P0 asks for 32: it gets the 16 rag does not hold.
    assert cluster.recount_and_decide() == {"chat": 6, "rag": 8}
    cluster.models["rag"] = model("rag", 16, tier="P1", catalog="llama-3.1-8b")
    # P1 asks for more than its reserve of 9: it gets its reserve back from P0, whole instances.
    counts = cluster.recount_and_decide()
    assert counts == {"chat": 5, "rag": 12}
    state = pool_state(h100(), cluster.nodes, cluster.pods)
    tiers = {t.name: t for t in status_of(h100(), state, NOW, cluster.allocation).tiers}
    assert (tiers["P0"].granted, tiers["P1"].granted) == (20, 12)
    assert cluster.recount_and_decide() == counts
