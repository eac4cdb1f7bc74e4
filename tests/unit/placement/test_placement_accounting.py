"""Capacity accounting: per node, per tier, per tenant, and fragmentation."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from placement_fixtures import make_pool, node, pod

from gpupool.api.tenancy import LabelSelector, Tenant
from gpupool.placement import (
    Instance,
    account_pool,
    accounted_node,
    accounted_pod,
    fits_all,
    fragmentation,
    pack_best_fit,
    pod_accelerators,
    workload_key,
)

POOL = make_pool()


def test_members_exclude_cordoned_not_ready_and_other_pools_nodes() -> None:
    nodes = [
        node("a"),
        node("b", 4),
        node("c", cordoned=True),
        node("d", ready="False"),
        node("e", ready="Unknown"),
        node("f", pool="ascend"),
        node("g", ready=None),  # no Ready condition reported: taken as ready
    ]
    state = account_pool(POOL, nodes, [])
    assert [n.name for n in state.nodes] == ["a", "b", "g"]
    assert state.total == 20
    assert state.excluded_nodes == (("c", "cordoned"), ("d", "not ready"), ("e", "not ready"))


def test_pods_count_as_allocation_demand_or_nothing() -> None:
    nodes = [node("a"), node("b"), node("c", cordoned=True)]
    pods = [
        pod("chat-0", 4, node_name="a", tier="P0"),
        pod("chat-1", 2, node_name="a", tier="P0", phase="Succeeded"),  # finished: holds nothing
        pod("rag-0", 2, node_name="b", model="rag", tier="P2", phase="Failed"),  # finished
        pod("rag-1", 2, node_name="b", model="rag", tier="P2", limits_only=True),
        pod("other", 1, node_name="b", pool=None, model=None, tier=None),  # not gpupool's
        pod("odd-tier", 1, node_name="b", tier="P9"),  # a tier the pool lacks: unmanaged
        pod("wait", 8, tier="P1"),  # pending: demand, not allocation
        pod("wait-elsewhere", 8, pool="a100"),  # pending for another pool: ignored
        pod("on-cordoned", 4, node_name="c"),  # the cordoned node left the pool with its pods
    ]
    state = account_pool(POOL, nodes, pods)
    assert {n.name: (n.allocatable, n.requested, n.free) for n in state.nodes} == {
        "a": (8, 4, 4),
        "b": (8, 4, 4),
    }
    assert (state.total, state.allocated, state.free, state.pending) == (16, 8, 8, 8)
    tiers = {t.name: (t.reserved, t.allocated, t.pending) for t in state.tier_accounts()}
    # 40/30/30 of 16, rounded down; the unreserved rest is 16 - 6 - 4 - 4 = 2.
    assert tiers == {"P0": (6, 4, 0), "P1": (4, 0, 8), "P2": (4, 2, 0)}
    assert state.unreserved == 2
    assert state.unmanaged == 2


def test_a_pods_request_is_the_larger_of_its_containers_and_init_containers() -> None:
    body = pod("x", 1)
    body["spec"]["containers"].append({"name": "sidecar", "resources": {"requests": {"nvidia.com/gpu": "1"}}})
    assert pod_accelerators(body, "nvidia.com/gpu") == 2
    body["spec"]["initContainers"] = [{"name": "warm", "resources": {"limits": {"nvidia.com/gpu": "4"}}}]
    assert pod_accelerators(body, "nvidia.com/gpu") == 4
    assert pod_accelerators(body, "huawei.com/Ascend910") == 0


def test_preempted_pods_still_hold_their_accelerators_and_are_reported() -> None:
    pods = [pod("batch", 4, node_name="a", tier="P2", preempted=True)]
    state = account_pool(POOL, [node("a")], pods)
    p2 = next(t for t in state.tier_accounts() if t.name == "P2")
    assert (p2.allocated, p2.preempted) == (4, 4)
    assert state.free == 4


def test_tenants_by_listed_namespace_and_by_selector() -> None:
    tenants = [
        Tenant(name="search", namespaces=["search-prod"], max_accelerators=8),
        Tenant(
            name="labs",
            namespace_selector=LabelSelector(match_labels={"org": "labs"}),
            max_accelerator_memory="320Gi",
        ),
    ]
    pods = [
        pod("s", 4, node_name="a", namespace="search-prod"),
        pod("l1", 2, node_name="a", namespace="labs-1"),
        pod("l2", 2, namespace="labs-2"),  # pending
        pod("x", 1, node_name="b", namespace="misc"),
    ]
    labels = {"labs-1": {"org": "labs"}, "labs-2": {"org": "labs"}, "search-prod": {"org": "labs"}}
    state = account_pool(POOL, [node("a"), node("b")], pods, tenants=tenants, namespace_labels=labels)
    usage = {t.name: (t.namespaces, t.accelerators, t.pending, t.limit) for t in state.tenant_status()}
    # search-prod is listed by search, so labs' selector does not take it.
    # 320Gi over 81,559 MiB per H100 is 4.02: four whole accelerators.
    assert usage == {"search": (["search-prod"], 4, 0, 8), "labs": (["labs-1", "labs-2"], 2, 2, 4)}
    labs = next(t for t in state.tenant_status() if t.name == "labs")
    assert labs.accelerator_memory_bytes == 4 * 81_559 * 1024**2


def test_claims_name_their_workload_by_namespace_and_model_deployment() -> None:
    state = account_pool(POOL, [node("a")], [pod("chat-0", 2, node_name="a", namespace="ns", model="chat")])
    assert state.claims[0].workload == workload_key("ns", "chat") == "ns/chat"


def test_fragmentation_counts_instances_that_fit_one_node_each() -> None:
    fits = {f.tensor_parallel: (f.instances, f.stranded_accelerators) for f in fragmentation([3, 5, 8, 0])}
    # 16 free accelerators: 16 TP=1; 1+2+4 TP=2 (2 stranded); 0+1+2 TP=4 (3+1 stranded); 1 TP=8.
    assert fits == {1: (16, 0), 2: (7, 2), 4: (3, 4), 8: (1, 8)}


# --------------------------------------------------------------------------------------------------
# Properties

node_sizes = st.lists(st.sampled_from([4, 8, 8, 8, 16]), min_size=1, max_size=6)


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    sizes = draw(node_sizes)
    nodes = [
        node(
            f"n{i}",
            size,
            cordoned=draw(st.booleans()) and i > 0,
            pool=draw(st.sampled_from(["h100", "h100", "x"])),
        )
        for i, size in enumerate(sizes)
    ]
    pods = []
    for i in range(draw(st.integers(0, 12))):
        pods.append(
            pod(
                f"p{i}",
                draw(st.sampled_from([1, 2, 4, 8])),
                node_name=draw(st.sampled_from([None, *(f"n{j}" for j in range(len(sizes)))])),
                tier=draw(st.sampled_from(["P0", "P1", "P2", None])),
                pool=draw(st.sampled_from(["h100", "h100", None])),
                phase=draw(st.sampled_from([None, None, "Succeeded", "Failed"])),
                namespace=draw(st.sampled_from(["a", "b"])),
            )
        )
    return nodes, pods


def _live(p: dict[str, Any]) -> bool:
    return p["status"]["phase"] not in ("Succeeded", "Failed")


@settings(max_examples=150, deadline=None)
@given(clusters())
def test_accounting_equals_the_sum_of_pod_requests(cluster: tuple[list[Any], list[Any]]) -> None:
    nodes, pods = cluster
    state = account_pool(POOL, nodes, pods)
    members = {n.name for n in state.nodes}
    bound = [p for p in pods if _live(p) and p["spec"].get("nodeName") in members]
    pending = [
        p
        for p in pods
        if _live(p)
        and "nodeName" not in p["spec"]
        and p["metadata"]["labels"].get("gpupool.io/pool") == "h100"
    ]
    assert state.allocated == sum(pod_accelerators(p, "nvidia.com/gpu") for p in bound)
    assert state.pending == sum(pod_accelerators(p, "nvidia.com/gpu") for p in pending)
    for account in state.nodes:
        on_node = [p for p in bound if p["spec"]["nodeName"] == account.name]
        assert account.requested == sum(pod_accelerators(p, "nvidia.com/gpu") for p in on_node)
    tiers = state.tier_accounts()
    assert sum(t.allocated for t in tiers) + state.unmanaged == state.allocated
    assert sum(t.pending for t in tiers) <= state.pending
    assert sum(t.reserved for t in tiers) + state.unreserved == state.total


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 16), min_size=1, max_size=8))
def test_fragmentation_never_reports_an_instance_that_cannot_be_placed(free: list[int]) -> None:
    nodes = {f"n{i}": f for i, f in enumerate(free)}
    for fit in fragmentation(free):
        tp = fit.tensor_parallel
        reported = [Instance(f"i{j}", tp) for j in range(fit.instances)]
        assert fits_all(reported, nodes)
        assert not fits_all([*reported, Instance("one-more", tp)], nodes)
        assert fit.instances * tp + fit.stranded_accelerators == sum(free)
        # The packer agrees on what is left: exactly the stranded accelerators.
        assert sum(f for _, f in pack_best_fit(reported, nodes).leftover) == fit.stranded_accelerators


def _as_listed(obj: dict[str, Any], i: int) -> dict[str, Any]:
    """The object with what a real listing also carries and the accounting never reads."""
    listed = {
        **obj,
        "metadata": {
            **obj["metadata"],
            "uid": f"uid-{i}",
            "resourceVersion": str(100 + i),
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            "managedFields": [{"manager": "kubelet", "operation": "Update"}],
        },
    }
    if "allocatable" in (obj.get("status") or {}):
        listed["status"] = {
            **obj["status"],
            "images": [{"names": [f"registry.example/engine:{j}"], "sizeBytes": 10**9} for j in range(3)],
            "addresses": [{"type": "InternalIP", "address": f"10.0.0.{i}"}],
            "nodeInfo": {"kubeletVersion": "v1.36.3"},
        }
    else:
        listed["spec"] = {
            **obj["spec"],
            "tolerations": [{"operator": "Exists"}],
            "volumes": [{"name": "cache"}],
        }
    return listed


@settings(max_examples=150, deadline=None)
@given(clusters(), st.lists(st.sampled_from(["True", "False", "Unknown"]), min_size=6, max_size=6))
def test_the_operators_cut_of_nodes_and_pods_accounts_as_the_whole_objects(
    cluster: tuple[list[Any], list[Any]], readiness: list[str]
) -> None:
    # The recount lists nodes and pods a page at a time and keeps only what the accounting reads.
    nodes, pods = cluster
    for n, ready in zip(nodes, readiness, strict=False):
        n["status"]["conditions"][-1]["status"] = ready
    nodes = [_as_listed(n, i) for i, n in enumerate(nodes)]
    pods = [_as_listed(p, i) for i, p in enumerate(pods)]
    whole = account_pool(POOL, nodes, pods)
    cut = account_pool(POOL, [accounted_node(n) for n in nodes], [accounted_pod(p) for p in pods])
    assert cut == whole
