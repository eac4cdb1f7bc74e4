"""Sharing pools, end to end: tiers, tenant quotas, preemption, overflow across vendors, fragmentation.

A scripted scenario on the local control plane (real API server, controller-manager and scheduler;
kwok kubelets). Two H100 nodes (16 GPUs) and one Ascend 910B node (8 NPUs) are labelled for this
module's pools, so nothing else competes for them. At every step the pools' status must equal what
the pods on their nodes request, counted here from the pods themselves.

The H100 pool has the default tiers: P0 reserves 40% (6 of 16), P1 30% (4), P2 30% (4, preemptible),
and 2 accelerators are reserved by no tier. Every model is llama-3.1-8b, one GPU per instance.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster, h100_pool_spec
from harness import condition, fresh_namespaces, running_operator
from operator_process import audit_writes, wait_for

ROOT = Path(__file__).resolve().parents[2]
LABEL = "gpupool.io/e2e-placement"
H100_NODES = ("kwok-nvidia-0", "kwok-nvidia-1")
ASCEND_NODES = ("kwok-ascend-0",)
GPU = "nvidia.com/gpu"
NPU = "huawei.com/Ascend910"
STEP_SECONDS = 150.0

pytestmark = pytest.mark.e2e


def get(cluster: Cluster, *args: str) -> Any:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


@pytest.fixture(scope="module")
def world(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cluster.install_crds()
    suffix = uuid.uuid4().hex[:6]
    names = {
        "h100": f"place-h100-{suffix}",
        "ascend": f"place-ascend-{suffix}",
        "team": f"team-a-{suffix}",
        "other": f"other-{suffix}",
    }
    for node in H100_NODES:
        cluster.kubectl("label", "node", node, f"{LABEL}=h100", "--overwrite")
    for node in ASCEND_NODES:
        cluster.kubectl("label", "node", node, f"{LABEL}=ascend", "--overwrite")
    try:
        with ExitStack() as stack:
            operator = stack.enter_context(running_operator(cluster, tmp_path_factory.mktemp("placement")))
            stack.enter_context(fresh_namespaces(cluster, names["team"], names["other"]))
            cluster.apply(
                [
                    {
                        "apiVersion": "gpupool.io/v1alpha1",
                        "kind": "InferencePool",
                        "metadata": {"name": names["h100"]},
                        "spec": {
                            **h100_pool_spec(pricePerAcceleratorHour=2.5),
                            "nodeSelector": {LABEL: "h100"},
                            "tenants": [
                                {"name": "team-a", "namespaces": [names["team"]], "maxAccelerators": 6}
                            ],
                        },
                    },
                    {
                        "apiVersion": "gpupool.io/v1alpha1",
                        "kind": "InferencePool",
                        "metadata": {"name": names["ascend"]},
                        "spec": {
                            "vendor": "ascend",
                            "accelerator": "Ascend910B",
                            "nodeSelector": {LABEL: "ascend"},
                            "tolerations": [{"key": NPU, "operator": "Exists", "effect": "NoSchedule"}],
                            "pricePerAcceleratorHour": 1.5,
                        },
                    },
                ]
            )
            yield {**names, "operator": operator}
    finally:
        cluster.kubectl("delete", "inferencepool", names["h100"], names["ascend"], check=False)
        for node in (*H100_NODES, *ASCEND_NODES):
            cluster.kubectl("label", "node", node, f"{LABEL}-", check=False)
            cluster.kubectl("uncordon", node, check=False)


def model(
    cluster: Cluster, namespace: str, name: str, tier: str, replicas: int, pool: str, **spec: Any
) -> None:
    body: dict[str, Any] = {
        "model": {"name": "llama-3.1-8b"},
        "tier": tier,
        "replicas": replicas,
        "traffic": {"peakQps": 1},
        **({"pool": pool} if pool else {}),
        **spec,
    }
    cluster.apply(
        {
            "apiVersion": "gpupool.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": body,
        }
    )


def mdep(cluster: Cluster, namespace: str, name: str) -> Any:
    return get(cluster, "mdep", name, "-n", namespace)


def settled(cluster: Cluster, namespace: str, name: str, replicas: int, reason: str) -> Any:
    """Wait until the model wants `replicas` instances, all ready, and Placed says `reason`."""

    def probe() -> Any:
        md = mdep(cluster, namespace, name)
        status = (md or {}).get("status") or {}
        if (
            status.get("replicas") == replicas
            and status.get("readyReplicas") == replicas
            and condition(md, "Placed").get("reason") == reason
        ):
            return md
        return None

    return wait_for(f"{namespace}/{name}: {replicas} ready, Placed={reason}", probe, timeout=STEP_SECONDS)


def pod_requests(cluster: Cluster, resource: str, nodes: tuple[str, ...]) -> dict[str, int]:
    """What the live pods bound to `nodes` request of `resource`, counted from the pods."""
    pods = get(cluster, "pods", "-A")["items"]
    held = dict.fromkeys(nodes, 0)
    for pod in pods:
        node = pod["spec"].get("nodeName")
        if node not in held or pod["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        containers = sum(
            int((c.get("resources", {}).get("requests") or {}).get(resource, 0))
            for c in pod["spec"]["containers"]
        )
        init = max(
            (
                int((c.get("resources", {}).get("requests") or {}).get(resource, 0))
                for c in pod["spec"].get("initContainers") or []
            ),
            default=0,
        )
        held[node] += max(containers, init)
    return held


def accounting_matches(cluster: Cluster, pool: str, resource: str, nodes: tuple[str, ...]) -> dict[str, Any]:
    """Wait until the pool's status equals the pods' requests, node by node, and check the totals
    and the fragmentation against the same count."""

    def probe() -> Any:
        body = get(cluster, "ipool", pool)
        status = (body or {}).get("status") or {}
        reported = {n["name"]: n["requested"] for n in status.get("nodeAccelerators", [])}
        if reported != pod_requests(cluster, resource, nodes):
            return None
        return body

    body = wait_for(f"pool {pool} accounting equals the pods' requests", probe, timeout=STEP_SECONDS)
    status = body["status"]
    per_node = {n["name"]: n for n in status["nodeAccelerators"]}
    held = sum(n["requested"] for n in per_node.values())
    total = sum(n["allocatable"] for n in per_node.values())
    assert status["accelerators"]["allocated"] == held
    assert status["accelerators"]["total"] == total
    assert status["accelerators"]["free"] == total - held
    tiers = sum(t["allocated"] for t in status["tiers"])
    assert tiers + status["accelerators"]["unmanaged"] == held
    free = [n["allocatable"] - n["requested"] for n in per_node.values()]
    for fit in status["fragmentation"]:
        tp = fit["tensorParallel"]
        assert fit["instances"] == sum(f // tp for f in free)
        assert fit["strandedAccelerators"] == sum(f % tp for f in free)
    return dict(body)


def events(cluster: Cluster, namespace: str, name: str) -> list[str]:
    items = get(cluster, "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")[
        "items"
    ]
    return [e["reason"] for e in items]


def test_tiers_quotas_preemption_and_overflow_hold_and_explain_themselves(
    cluster: Cluster, world: dict[str, Any]
) -> None:
    h100, ascend, team, other = world["h100"], world["ascend"], world["team"], world["other"]
    nvidia = (h100, GPU, H100_NODES)

    # 1. A P2 batch model fills half the pool; everything is placed.
    model(cluster, other, "batch", "P2", 8, h100)
    settled(cluster, other, "batch", 8, "Placed")
    accounting_matches(cluster, *nvidia)

    # 2. Tenant team-a may hold 6 GPUs: a model asking for 8 gets 6, and status says why.
    model(cluster, team, "chat", "P1", 8, h100)
    chat = settled(cluster, team, "chat", 6, "QuotaExceeded")
    placed = condition(chat, "Placed")
    assert placed["status"] == "False"
    assert "tenant team-a may hold 6 accelerators" in placed["message"], placed["message"]
    assert chat["status"]["askedReplicas"] == 8
    assert [(c["kind"], c["asked"], c["allowed"]) for c in chat["status"]["limits"]] == [("Tenant", 8, 6)]
    pool = accounting_matches(cluster, *nvidia)
    tenant = next(t for t in pool["status"]["tenants"] if t["name"] == "team-a")
    assert (tenant["accelerators"], tenant["limit"]) == (6, 6)
    assert tenant["costPerHour"] == 6 * 2.5
    # Kubernetes holds the same line for pods gpupool does not create.
    quota = get(cluster, "resourcequota", "gpupool-nvidia-com-gpu", "-n", team)
    assert quota["spec"]["hard"] == {f"requests.{GPU}": "6"}
    assert [o["name"] for o in quota["metadata"]["ownerReferences"]] == [h100]
    stray = cluster.kubectl(
        "run",
        "stray",
        "-n",
        team,
        "--image=busybox",
        "--restart=Never",
        f'--overrides={{"spec":{{"containers":[{{"name":"stray","image":"busybox","resources":'
        f'{{"limits":{{"{GPU}":"1"}}}}}}]}}}}',
        check=False,
    )
    assert stray.returncode != 0 and "exceeded quota" in stray.stderr, stray.stderr

    # 3. A P0 model asks for 12: the pool's allocation gives it its reserve (6) back from the
    #    tiers holding more than theirs. P2 gives way first (its pods are preempted and it is
    #    scaled down to its own reserve); P1 keeps the 2 it holds beyond its reserve, which come
    #    from the unreserved rest, not from P0's reserve.
    model(cluster, other, "online", "P0", 12, h100)
    online = settled(cluster, other, "online", 6, "TierCapped")
    message = condition(online, "Placed")["message"]
    assert "tier P0" in message and "gets 6" in message and "its reserve of 6" in message, message
    settled(cluster, team, "chat", 6, "QuotaExceeded")
    batch = settled_or_preempted(cluster, other, "batch", 4)
    assert condition(batch, "Placed")["reason"] in ("Preempted", "TierCapped")
    pool = accounting_matches(cluster, *nvidia)
    tiers = {t["name"]: t for t in pool["status"]["tiers"]}
    assert (tiers["P0"]["allocated"], tiers["P1"]["allocated"], tiers["P2"]["allocated"]) == (6, 6, 4)
    assert tiers["P1"]["borrowed"] == 2  # the 2 accelerators no tier reserves

    # 4. P0 shrinks: the preempted instances come back, and P1 gets its quota again.
    cluster.kubectl("patch", "mdep", "online", "-n", other, "--type=merge", "-p", '{"spec":{"replicas":2}}')
    settled(cluster, other, "online", 2, "Placed")
    settled(cluster, other, "batch", 8, "Placed")
    assert "Restored" in events(cluster, other, "batch") or "Placed" in events(cluster, other, "batch")
    settled(cluster, team, "chat", 6, "QuotaExceeded")
    accounting_matches(cluster, *nvidia)

    # 5. A P2 model that allows both vendors: the H100 pool has no room for P2, so it overflows to
    #    Ascend as its own Deployment with the Ascend resources; status shows where and the cost.
    model(
        cluster,
        other,
        "burst",
        "P2",
        3,
        "",
        pools=[{"name": h100, "priority": 10}, {"name": ascend}],
        traffic={"peakQps": 1, "qpsPerInstance": 5, "latencySloMs": 2000},
    )
    burst = settled(cluster, other, "burst", 3, "Overflowed")
    shares = {p["pool"]: p["instances"] for p in burst["status"]["placements"]}
    assert shares == {h100: 0, ascend: 3}
    assert burst["status"]["costPerHour"] == 3 * 1.5
    workload = get(cluster, "deployment", f"burst-{ascend}", "-n", other)
    container = workload["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"][NPU] == "1"
    pods = get(cluster, "pods", "-n", other, "-l", "gpupool.io/model-deployment=burst")["items"]
    assert {p["spec"].get("nodeName") for p in pods} == set(ASCEND_NODES)
    accounting_matches(cluster, ascend, NPU, ASCEND_NODES)

    # 6. Room returns on the preferred pool (batch goes away): the instances move back.
    cluster.kubectl("delete", "mdep", "batch", "-n", other)
    burst = settled(cluster, other, "burst", 3, "Placed")
    shares = {p["pool"]: p["instances"] for p in burst["status"]["placements"]}
    assert shares == {h100: 3, ascend: 0}
    wait_for(
        "burst's Ascend pods gone",
        lambda: (
            not [
                p
                for p in get(cluster, "pods", "-n", other, "-l", "gpupool.io/model-deployment=burst")["items"]
                if p["spec"].get("nodeName") in ASCEND_NODES
            ]
        ),
        timeout=STEP_SECONDS,
    )
    accounting_matches(cluster, *nvidia)
    accounting_matches(cluster, ascend, NPU, ASCEND_NODES)


def settled_or_preempted(cluster: Cluster, namespace: str, name: str, replicas: int) -> Any:
    """Wait until the model runs `replicas` ready instances after a preemption."""

    def probe() -> Any:
        md = mdep(cluster, namespace, name)
        status = (md or {}).get("status") or {}
        if status.get("replicas") == replicas and status.get("readyReplicas") == replicas:
            return md
        return None

    return wait_for(f"{namespace}/{name}: {replicas} ready after preemption", probe, timeout=STEP_SECONDS)


def empty_pool(cluster: Cluster, world: dict[str, Any]) -> None:
    """Delete every model of the module and wait until the H100 nodes hold nothing."""
    for namespace in (world["team"], world["other"]):
        cluster.kubectl("delete", "mdep", "--all", "-n", namespace, "--wait=true")
    wait_for(
        "the pool's nodes are empty",
        lambda: not any(pod_requests(cluster, GPU, H100_NODES).values()),
        timeout=STEP_SECONDS,
    )


def test_a_cordoned_node_leaves_the_pool_and_fragmentation_follows(
    cluster: Cluster, world: dict[str, Any]
) -> None:
    h100, other = world["h100"], world["other"]
    empty_pool(cluster, world)
    # Three instances of TP=4 (llama-3.1-70b at bf16) on two 8-GPU nodes: one node is full, the
    # other has 4 free, which fit one more TP=4 instance and no TP=8 one.
    model(cluster, other, "big", "P2", 3, h100, model={"name": "llama-3.1-70b"})
    big = settled(cluster, other, "big", 3, "Placed")
    assert big["status"]["plan"]["tensorParallel"] == 4
    pool = accounting_matches(cluster, h100, GPU, H100_NODES)
    assert sorted(pod_requests(cluster, GPU, H100_NODES).values()) == [4, 8]
    fits = {
        f["tensorParallel"]: (f["instances"], f["strandedAccelerators"])
        for f in pool["status"]["fragmentation"]
    }
    assert fits == {1: (4, 0), 2: (2, 0), 4: (1, 0), 8: (0, 4)}

    cluster.kubectl("cordon", H100_NODES[1])
    try:
        pool = wait_for(
            "the cordoned node leaves the pool",
            lambda: (
                (body := get(cluster, "ipool", h100))
                and body["status"].get("excludedNodes") == [{"name": H100_NODES[1], "reason": "cordoned"}]
                and body
            ),
            timeout=STEP_SECONDS,
        )
        assert pool["status"]["nodes"] == 1
        assert [n["name"] for n in pool["status"]["nodeAccelerators"]] == [H100_NODES[0]]
        assert pool["status"]["accelerators"]["total"] == 8
    finally:
        cluster.kubectl("uncordon", H100_NODES[1])
    wait_for(
        "the node is back",
        lambda: (get(cluster, "ipool", h100) or {}).get("status", {}).get("nodes") == 2,
        timeout=STEP_SECONDS,
    )


def test_a_model_that_leaves_a_pool_loses_its_workload_there(cluster: Cluster, world: dict[str, Any]) -> None:
    h100, ascend, other = world["h100"], world["ascend"], world["other"]

    def deployments() -> set[str]:
        items = get(cluster, "deployments", "-n", other, "-l", "gpupool.io/model-deployment=move")["items"]
        return {d["metadata"]["name"] for d in items if not d["metadata"].get("deletionTimestamp")}

    model(cluster, other, "move", "P2", 1, h100)
    wait_for("the single-pool Deployment", lambda: deployments() == {"move"}, timeout=STEP_SECONDS)
    # From one pool to several: one Deployment per pool, the single-pool one deleted.
    cluster.kubectl(
        "patch",
        "mdep",
        "move",
        "-n",
        other,
        "--type=json",
        "-p",
        json.dumps(
            [
                {"op": "remove", "path": "/spec/pool"},
                {
                    "op": "add",
                    "path": "/spec/pools",
                    "value": [{"name": h100, "priority": 10}, {"name": ascend}],
                },
                {"op": "add", "path": "/spec/traffic/qpsPerInstance", "value": 5},
                {"op": "add", "path": "/spec/traffic/latencySloMs", "value": 2000},
            ]
        ),
    )
    wait_for(
        "one Deployment per pool",
        lambda: deployments() == {f"move-{h100}", f"move-{ascend}"},
        timeout=STEP_SECONDS,
    )
    # A pool taken off the list loses its Deployment.
    cluster.kubectl(
        "patch",
        "mdep",
        "move",
        "-n",
        other,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"pools": [{"name": h100}]}}),
    )
    wait_for("the Ascend Deployment deleted", lambda: deployments() == {f"move-{h100}"}, timeout=STEP_SECONDS)
    md = settled(cluster, other, "move", 1, "Placed")
    assert [p["pool"] for p in md["status"]["placements"]] == [h100]


# How long an oversubscribed pool is watched for writes once it has settled.
QUIET_SECONDS = 60.0


def test_oversubscribed_models_of_one_tier_settle_and_then_write_nothing(
    cluster: Cluster, world: dict[str, Any]
) -> None:
    """Three llama-3.1-70b models of one tier ask for 12 instances each (TP=4, 144 GPUs) of a
    16-GPU pool: the pool's allocation gives them its 16 once, and then nothing moves."""
    h100, other = world["h100"], world["other"]
    empty_pool(cluster, world)
    names = [f"llama-{i}" for i in range(3)]
    for name in names:
        model(cluster, other, name, "P1", 12, h100, model={"name": "llama-3.1-70b"})

    def shared() -> Any:
        mds = [mdep(cluster, other, name) for name in names]
        statuses = [(md or {}).get("status") or {} for md in mds]
        counts = [s.get("replicas") for s in statuses]
        ready = [s.get("readyReplicas") for s in statuses]
        return mds if sum(c or 0 for c in counts) == 4 and counts == ready else None

    mds = wait_for("the three models share the pool's 16 GPUs", shared, timeout=STEP_SECONDS)
    for md in mds:
        assert md["status"]["plan"]["tensorParallel"] == 4
        if md["status"]["replicas"] < 12:
            assert condition(md, "Placed")["reason"] == "TierCapped"
        if md["status"]["replicas"] == 0:
            ready = condition(md, "Ready")
            assert (ready["status"], ready["reason"]) == ("False", "TierCapped"), ready
    accounting_matches(cluster, h100, GPU, H100_NODES)
    # Settled: over the window, no Deployment is written and no event is posted.
    offset = cluster.audit_offset()
    time.sleep(QUIET_SECONDS)
    writes = [
        w["objectRef"]
        for w in audit_writes(cluster.audit_log, offset)
        if w["objectRef"].get("resource") in ("deployments", "events")
        and w["objectRef"].get("namespace") == other
    ]
    assert writes == [], writes
    assert [mdep(cluster, other, n)["status"]["replicas"] for n in names] == [
        md["status"]["replicas"] for md in mds
    ]
    for name in names:
        cluster.kubectl("delete", "mdep", name, "-n", other, "--wait=true")


def test_p0_grows_into_an_idle_pool_then_p1_and_p2_take_their_reserves_back(
    cluster: Cluster, world: dict[str, Any]
) -> None:
    """Reserves of 6, 4 and 4 (P0, P1, P2) and 2 unreserved on 16 GPUs. P0 alone takes them all;
    P1 and P2 then ask for their reserves and gpupool shrinks P0 for them (the scheduler would not
    preempt P0 for a lower tier), its least busy instances first."""
    h100, other = world["h100"], world["other"]
    empty_pool(cluster, world)
    model(cluster, other, "online", "P0", 16, h100)
    settled(cluster, other, "online", 16, "Placed")
    model(cluster, other, "rag", "P1", 4, h100)
    settled(cluster, other, "rag", 4, "Placed")
    settled(cluster, other, "online", 12, "TierCapped")
    model(cluster, other, "batch", "P2", 4, h100)
    settled(cluster, other, "batch", 4, "Placed")
    online = settled(cluster, other, "online", 8, "TierCapped")
    message = condition(online, "Placed")["message"]
    assert "its reserve of 6" in message and "2 borrowed" in message, message
    pool = accounting_matches(cluster, h100, GPU, H100_NODES)
    tiers = {t["name"]: t for t in pool["status"]["tiers"]}
    held = [(tiers[t]["allocated"], tiers[t]["granted"]) for t in ("P0", "P1", "P2")]
    assert held == [(8, 8), (4, 4), (4, 4)]
    empty_pool(cluster, world)


def test_a_deleted_model_gives_its_share_back(cluster: Cluster, world: dict[str, Any]) -> None:
    """P0 holds the idle pool, P1 takes its reserve back, then P1's model goes: its demand leaves
    the allocation with it and P0 grows into the pool again."""
    h100, other = world["h100"], world["other"]
    empty_pool(cluster, world)
    model(cluster, other, "online", "P0", 16, h100)
    settled(cluster, other, "online", 16, "Placed")
    model(cluster, other, "rag", "P1", 4, h100)
    settled(cluster, other, "rag", 4, "Placed")
    settled(cluster, other, "online", 12, "TierCapped")
    cluster.kubectl("delete", "mdep", "rag", "-n", other, "--wait=true")
    settled(cluster, other, "online", 16, "Placed")
    empty_pool(cluster, world)


def test_a_deleted_node_is_reported_by_its_models_and_spares_the_others(
    cluster: Cluster, world: dict[str, Any]
) -> None:
    h100, other = world["h100"], world["other"]
    empty_pool(cluster, world)
    # One instance on each node: the scheduler spreads them (LeastAllocated).
    model(cluster, other, "spread", "P1", 2, h100)
    settled(cluster, other, "spread", 2, "Placed")
    pods = get(cluster, "pods", "-n", other, "-l", "gpupool.io/model-deployment=spread")["items"]
    nodes = {p["spec"]["nodeName"] for p in pods}
    gone = sorted(nodes)[0]
    saved = get(cluster, "node", gone)
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        saved["metadata"].pop(key, None)
    # Nodes are created with their capacity (as the local cluster creates them); kwok does the rest.
    saved["status"] = {key: saved["status"][key] for key in ("capacity", "allocatable")}
    cluster.kubectl("delete", "node", gone, "--wait=true")
    try:

        def lost() -> Any:
            md = mdep(cluster, other, "spread")
            placed = condition(md, "Placed")
            return md if placed.get("reason") == "InstancesLost" else None

        md = wait_for("the model reports the instance lost with its node", lost, timeout=30)
        assert f"on {gone} (gone)" in condition(md, "Placed")["message"]
        assert "InstancesLost" in events(cluster, other, "spread")
        assert md["status"]["replicas"] == 2  # the instance elsewhere keeps running; none is cut
    finally:
        cluster.apply(saved)
    wait_for(
        "the node is back in the pool",
        lambda: (get(cluster, "ipool", h100) or {}).get("status", {}).get("nodes") == 2,
        timeout=STEP_SECONDS,
    )
    settled(cluster, other, "spread", 2, "Placed")
    cluster.kubectl("delete", "mdep", "spread", "-n", other, "--wait=true")


def test_a_not_ready_node_costs_only_its_own_instances(cluster: Cluster, world: dict[str, Any]) -> None:
    """A NotReady node leaves the pool's capacity and its instances are reported lost; nothing that
    runs elsewhere is cut, and no model's count shrinks for it."""
    h100, other = world["h100"], world["other"]
    empty_pool(cluster, world)
    model(cluster, other, "spread", "P1", 2, h100)
    settled(cluster, other, "spread", 2, "Placed")
    model(cluster, other, "bystander", "P0", 1, h100)
    settled(cluster, other, "bystander", 1, "Placed")

    def node_of(name: str) -> set[str]:
        pods = get(cluster, "pods", "-n", other, "-l", f"gpupool.io/model-deployment={name}")["items"]
        return {p["spec"]["nodeName"] for p in pods}

    # One instance of `spread` on each node; the node without the bystander's instance falls ill.
    assert node_of("spread") == set(H100_NODES)
    sick = next(n for n in H100_NODES if n not in node_of("bystander"))
    # kwok lets go of the node (no more heartbeats), and its Ready condition turns False.
    cluster.kubectl("annotate", "node", sick, "kwok.x-k8s.io/node-")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ready = {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "test",
             "lastHeartbeatTime": now, "lastTransitionTime": now}  # fmt: skip
    cluster.kubectl(
        "patch", "node", sick, "--subresource=status", "--type=strategic",
        "-p", json.dumps({"status": {"conditions": [ready]}}),
    )  # fmt: skip
    try:

        def lost() -> Any:
            md = mdep(cluster, other, "spread")
            return md if condition(md, "Placed").get("reason") == "InstancesLost" else None

        md = wait_for("the model reports the instance on the NotReady node", lost, timeout=30)
        assert f"on {sick} (not ready)" in condition(md, "Placed")["message"]
        assert "InstancesLost" in events(cluster, other, "spread")
        assert md["status"]["replicas"] == 2
        deployment = get(cluster, "deployment", "spread", "-n", other)
        assert deployment["spec"]["replicas"] == 2
        bystander = mdep(cluster, other, "bystander")
        assert bystander["status"]["replicas"] == 1
        assert condition(bystander, "Placed")["reason"] == "Placed"
        assert condition(bystander, "Ready")["status"] == "True"
    finally:
        cluster.kubectl("annotate", "node", sick, "kwok.x-k8s.io/node=fake", "--overwrite")
    wait_for(
        "the node is ready and back in the pool",
        lambda: (get(cluster, "ipool", h100) or {}).get("status", {}).get("nodes") == 2,
        timeout=STEP_SECONDS,
    )
    settled(cluster, other, "spread", 2, "Placed")
    settled(cluster, other, "bystander", 1, "Placed")
    for name in ("spread", "bystander"):
        cluster.kubectl("delete", "mdep", name, "-n", other, "--wait=true")


def test_a_pool_of_cce_dies_counts_requests_and_quotas_the_resource_its_nodes_advertise(
    cluster: Cluster, world: dict[str, Any]
) -> None:
    # Huawei Cloud CCE advertises Atlas A3 (Ascend 910C) dies as huawei.com/ascend-1980, 16 a node.
    suffix = world["team"].rsplit("-", 1)[1]
    node, pool, team = f"kwok-cce-a3-{suffix}", f"place-a3-{suffix}", f"a3-team-{suffix}"
    die = "huawei.com/ascend-1980"
    capacity = {"cpu": "320", "memory": "1536Gi", "pods": "110", die: "16"}
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node,
                "labels": {
                    "kubernetes.io/hostname": node,
                    LABEL: "a3",
                    "node.kubernetes.io/npu.chip.name": "910C",
                },
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {"podCIDR": "10.250.0.0/24", "podCIDRs": ["10.250.0.0/24"]},
            "status": {"capacity": capacity, "allocatable": dict(capacity)},
        }
    )
    cluster.create_model_namespace(team)
    try:
        cluster.apply(
            {
                "apiVersion": "gpupool.io/v1alpha1",
                "kind": "InferencePool",
                "metadata": {"name": pool},
                "spec": {
                    "vendor": "ascend",
                    "accelerator": "Ascend910C",
                    "acceleratorsPerNode": 16,
                    "acceleratorResource": die,
                    "nodeSelector": {LABEL: "a3"},
                    "tenants": [{"name": "a3-team", "namespaces": [team], "maxAccelerators": 4}],
                },
            }
        )
        # Huawei publishes no 910C bandwidth to estimate QPS from: the model gives a measured one.
        model(cluster, team, "a3-chat", "P0", 2, pool, traffic={"peakQps": 1, "qpsPerInstance": 2})
        settled(cluster, team, "a3-chat", 2, "Placed")
        pods = get(cluster, "pods", "-n", team, "-l", "gpupool.io/model-deployment=a3-chat")["items"]
        assert {p["spec"]["nodeName"] for p in pods} == {node}
        for p in pods:
            (container,) = p["spec"]["containers"]
            assert container["resources"]["requests"][die] == container["resources"]["limits"][die] == "1"
            assert "huawei.com/Ascend910" not in container["resources"]["requests"]
        body = accounting_matches(cluster, pool, die, (node,))
        assert body["status"]["accelerators"]["total"] == 16
        assert body["status"]["accelerators"]["allocated"] == 2
        assert condition(body, "Ready")["reason"] == "NodesFound"
        quota = get(cluster, "resourcequota", "-n", team, "gpupool-huawei-com-ascend-1980")
        assert quota["spec"]["hard"] == {f"requests.{die}": "4"}
    finally:
        cluster.kubectl("delete", "namespace", team, "--wait=true", "--timeout=120s", check=False)
        cluster.kubectl("delete", "inferencepool", pool, check=False)
        cluster.kubectl("delete", "node", node, check=False)
