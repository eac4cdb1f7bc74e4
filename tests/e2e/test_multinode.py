"""A model no node holds, end to end: one LeaderWorkerSet group of two nodes per instance.

Llama-3.1-405B in bf16 needs two nodes of eight H100 per instance (tensor parallel 8 within each,
pipeline parallel 2 across). The real LeaderWorkerSet controller (tools/localcluster/lws.sh, built
from sigs.k8s.io/lws) runs against the local control plane; the real scheduler places the group's
pods on kwok's simulated H100 nodes, four of which are labelled for this module's pool.

First the cluster has no LeaderWorkerSet CRD: the model says so in its Ready condition and
nothing is created. Then the controller is started: the operator applies the set, the group's
two pods land on two nodes, LeaderWorkerSet reports the group ready, and the model is Ready.
Scaling to two instances makes two groups on four nodes; deleting the model deletes the set and
its pods with it.

Then the pool is cut to exactly the two nodes one group needs, the model runs there at the
preemptible tier P2, and a P0 model of one accelerator arrives: P0 takes its reserve back, the
group is taken away whole (no pod of it left holding accelerators, not even the leader alone) and
the P0 model runs. When the P0 model goes, the group is placed again and the model is Ready.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cluster import Cluster, h100_pool_spec
from harness import (
    LWS_SH,
    condition,
    fresh_namespaces,
    get_json,
    local_controller,
    model_manifest,
    running_operator,
)
from operator_process import wait_for

LABEL = "gpupool.io/e2e-multinode"
NODES = ("kwok-nvidia-0", "kwok-nvidia-1", "kwok-nvidia-2", "kwok-nvidia-3")
# The two nodes the pool keeps for the preemption test: exactly one group's worth.
GROUP_NODES = NODES[:2]
GPU = "nvidia.com/gpu"
GROUP_LABEL = "leaderworkerset.sigs.k8s.io/name"
STEP_SECONDS = 120.0

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    cluster.install_crds()
    suffix = uuid.uuid4().hex[:6]
    names = {"pool": f"multinode-{suffix}", "namespace": f"multinode-{suffix}", "model": "llama-405b"}
    for node in NODES:
        cluster.kubectl("label", "node", node, f"{LABEL}={suffix}", "--overwrite")
    try:
        with (
            running_operator(cluster, tmp_path_factory.mktemp("multinode")),
            fresh_namespaces(cluster, names["namespace"]),
        ):
            cluster.apply(
                {
                    "apiVersion": "gpupool.io/v1alpha1",
                    "kind": "InferencePool",
                    "metadata": {"name": names["pool"]},
                    "spec": {**h100_pool_spec(pricePerAcceleratorHour=2.0), "nodeSelector": {LABEL: suffix}},
                }
            )
            yield names
    finally:
        cluster.kubectl("delete", "inferencepool", names["pool"], "--wait=false", check=False)
        for node in NODES:
            cluster.kubectl("label", "node", node, f"{LABEL}-", check=False)
        if os.environ.get("GPUPOOL_KEEP_LWS") != "1":
            local_controller(cluster, LWS_SH, "stop")


def _llama_405b(names: dict[str, str], **spec: Any) -> dict[str, Any]:
    """The module's model: one instance of Llama-3.1-405B bf16, a group of two nodes."""
    return model_manifest(
        names["model"],
        names["namespace"],
        model={"name": "llama-3.1-405b"},
        pool=names["pool"],
        traffic={"peakQps": 1, "qpsPerInstance": 2},
        **spec,
    )


def _model(cluster: Cluster, names: dict[str, str]) -> Any:
    return get_json(cluster, "modeldeployment", names["model"], "-n", names["namespace"])


def _group_pods(cluster: Cluster, names: dict[str, str]) -> list[dict[str, Any]]:
    pods = get_json(cluster, "pods", "-n", names["namespace"], "-l", f"{GROUP_LABEL}={names['model']}")
    return list((pods or {}).get("items") or [])


def _ready_on_distinct_nodes(pods: list[dict[str, Any]], count: int) -> bool:
    ready = [
        p
        for p in pods
        if any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in p["status"].get("conditions", [])
        )
    ]
    return len(ready) == count and len({p["spec"].get("nodeName") for p in ready}) == count


def test_without_the_crd_the_model_says_what_is_missing(cluster: Cluster, world: dict[str, str]) -> None:
    if get_json(cluster, "crd", "leaderworkersets.leaderworkerset.x-k8s.io") is not None:
        local_controller(cluster, LWS_SH, "stop")
        wait_for(
            "the LeaderWorkerSet CRD to go",
            lambda: get_json(cluster, "crd", "leaderworkersets.leaderworkerset.x-k8s.io") is None,
            timeout=STEP_SECONDS,
        )
    cluster.apply(_llama_405b(world))
    ready = wait_for(
        "Ready=False naming the missing LeaderWorkerSet CRD",
        lambda: (
            (c := condition(_model(cluster, world), "Ready")).get("status") == "False"
            and "no LeaderWorkerSet CRD" in c.get("message", "")
            and c
        ),
        timeout=STEP_SECONDS,
    )
    assert "2 nodes" in ready["message"]
    plan = _model(cluster, world)["status"]["plan"]
    assert (plan["nodesPerInstance"], plan["pipelineParallel"], plan["tensorParallel"]) == (2, 2, 8)
    assert get_json(cluster, "deployment", world["model"], "-n", world["namespace"]) is None


def test_a_group_runs_on_two_nodes_and_the_model_is_ready(cluster: Cluster, world: dict[str, str]) -> None:
    local_controller(cluster, LWS_SH, "start")
    group_set = wait_for(
        "the LeaderWorkerSet",
        lambda: get_json(cluster, "leaderworkerset", world["model"], "-n", world["namespace"]),
        timeout=STEP_SECONDS,
    )
    spec = group_set["spec"]
    assert spec["replicas"] == 1
    assert spec["leaderWorkerTemplate"]["size"] == 2
    owner = group_set["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("ModelDeployment", world["model"], True)
    pods = wait_for(
        "two Ready pods on two nodes",
        lambda: (p := _group_pods(cluster, world)) and _ready_on_distinct_nodes(p, 2) and p,
        timeout=STEP_SECONDS,
    )
    assert {p["spec"]["nodeName"] for p in pods} <= set(NODES)
    for pod in pods:
        (container,) = pod["spec"]["containers"]
        assert container["resources"]["requests"]["nvidia.com/gpu"] == "8"
    ready = wait_for(
        "the model Ready",
        lambda: (c := condition(_model(cluster, world), "Ready")).get("status") == "True" and c,
        timeout=STEP_SECONDS,
    )
    assert ready
    status = _model(cluster, world)["status"]
    (placement,) = status["placements"]
    assert placement["ready"] == 1
    # One instance of 16 accelerators at 2.0 an hour each.
    assert placement["costPerHour"] == pytest.approx(32.0)
    # Only the leader is behind the model's Service, which is the model's alone: the group's
    # headless Service, under which the workers find the leader, is LeaderWorkerSet's own.
    service = get_json(cluster, "service", world["model"], "-n", world["namespace"])
    assert service["spec"]["selector"]["leaderworkerset.sigs.k8s.io/worker-index"] == "0"
    assert [o["kind"] for o in service["metadata"]["ownerReferences"]] == ["ModelDeployment"]
    group = f"{world['model']}-0"
    headless = get_json(cluster, "service", group, "-n", world["namespace"])
    assert headless["spec"]["clusterIP"] == "None"
    for pod in pods:
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}
        assert env["LWS_LEADER_ADDRESS"] == f"{group}.{group}.{world['namespace']}", env
    assert get_json(cluster, "deployment", world["model"], "-n", world["namespace"]) is None


def test_scaling_counts_groups(cluster: Cluster, world: dict[str, str]) -> None:
    cluster.kubectl(
        "patch",
        "modeldeployment",
        world["model"],
        "-n",
        world["namespace"],
        "--type=merge",
        "-p",
        json.dumps({"spec": {"replicas": 2}}),
    )
    wait_for(
        "two groups on four nodes",
        lambda: _ready_on_distinct_nodes(_group_pods(cluster, world), 4),
        timeout=STEP_SECONDS,
    )
    group_set = get_json(cluster, "leaderworkerset", world["model"], "-n", world["namespace"])
    assert group_set["spec"]["replicas"] == 2
    wait_for(
        "the model Ready with two instances",
        lambda: (
            ((_model(cluster, world) or {}).get("status") or {}).get("readyReplicas") == 2
            and condition(_model(cluster, world), "Ready").get("status") == "True"
        ),
        timeout=STEP_SECONDS,
    )


def test_deleting_the_model_deletes_its_groups(cluster: Cluster, world: dict[str, str]) -> None:
    cluster.kubectl("delete", "modeldeployment", world["model"], "-n", world["namespace"])
    wait_for(
        "the LeaderWorkerSet and its pods gone",
        lambda: (
            get_json(cluster, "leaderworkerset", world["model"], "-n", world["namespace"]) is None
            and not _group_pods(cluster, world)
        ),
        timeout=STEP_SECONDS,
    )


def _bound_group_pods(cluster: Cluster, names: dict[str, str]) -> list[dict[str, Any]]:
    """The group's live pods that the scheduler has bound to a node (and so hold accelerators)."""
    return [
        p
        for p in _group_pods(cluster, names)
        if p["spec"].get("nodeName") and p["status"].get("phase") not in ("Succeeded", "Failed")
    ]


def test_a_group_is_preempted_whole_by_a_higher_tier_and_restored(
    cluster: Cluster, world: dict[str, str]
) -> None:
    namespace = world["namespace"]
    # The pool keeps exactly the two nodes one group needs.
    for node in NODES[len(GROUP_NODES) :]:
        cluster.kubectl("label", "node", node, f"{LABEL}-")
    wait_for(
        "the pool counting two nodes",
        lambda: (
            len(
                ((get_json(cluster, "inferencepool", world["pool"]) or {}).get("status") or {}).get(
                    "nodeAccelerators", []
                )
            )
            == len(GROUP_NODES)
        ),
        timeout=STEP_SECONDS,
    )
    cluster.apply(_llama_405b(world, tier="P2"))
    wait_for(
        "the P2 group Ready on the pool's two nodes",
        lambda: (
            _ready_on_distinct_nodes(_group_pods(cluster, world), 2)
            and condition(_model(cluster, world), "Ready").get("status") == "True"
        ),
        timeout=STEP_SECONDS,
    )
    assert {p["spec"]["nodeName"] for p in _group_pods(cluster, world)} == set(GROUP_NODES)

    # A P0 model of one accelerator: P0 takes its reserve back and the group cannot stay.
    cluster.apply(
        model_manifest("online", namespace, pool=world["pool"], tier="P0", replicas=1, traffic={"peakQps": 1})
    )

    def online_ready() -> bool:
        online = get_json(cluster, "modeldeployment", "online", "-n", namespace)
        return ((online or {}).get("status") or {}).get("readyReplicas") == 1

    def group_away() -> bool:
        bound = _bound_group_pods(cluster, world)
        if online_ready() and not bound:
            return True
        group_set = get_json(cluster, "leaderworkerset", world["model"], "-n", namespace) or {}
        # Raised to be reported as the last state seen should the wait time out.
        raise AssertionError(
            f"online ready {online_ready()}, set replicas {group_set.get('spec', {}).get('replicas')}, "
            f"bound group pods {[(p['metadata']['name'], p['spec']['nodeName']) for p in bound]}, "
            f"Placed {condition(_model(cluster, world), 'Placed')}"
        )

    wait_for("the P0 model ready and no pod of the group bound to a node", group_away, timeout=STEP_SECONDS)
    # And it stays away: over three resyncs (5 s each) no pod of a recreated group is bound, so no
    # leader alone holds the node the P0 pod left free.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert not _bound_group_pods(cluster, world), [
            p["metadata"]["name"] for p in _bound_group_pods(cluster, world)
        ]
        time.sleep(1)
    preempted = _model(cluster, world)
    assert preempted["status"].get("readyReplicas", 0) == 0
    assert condition(preempted, "Ready").get("status") == "False"
    placed = condition(preempted, "Placed")
    assert placed.get("status") == "False" and placed.get("reason") in ("Preempted", "TierCapped"), placed
    group_set = get_json(cluster, "leaderworkerset", world["model"], "-n", namespace)
    assert group_set["spec"]["replicas"] == 0, group_set["spec"]
    # The P0 pod is the only one holding accelerators on the pool's nodes.
    pods = get_json(cluster, "pods", "-n", namespace)["items"]
    holding = [
        p["metadata"]["name"]
        for p in pods
        if p["spec"].get("nodeName") in GROUP_NODES
        and p["status"].get("phase") not in ("Succeeded", "Failed")
        and any(GPU in ((c.get("resources") or {}).get("requests") or {}) for c in p["spec"]["containers"])
    ]
    assert len(holding) == 1 and holding[0].startswith("online"), holding

    # The P0 model goes: the group is placed again, whole, and the model is Ready.
    cluster.kubectl("delete", "modeldeployment", "online", "-n", namespace)
    wait_for(
        "the group restored on two nodes and the model Ready",
        lambda: (
            _ready_on_distinct_nodes(_group_pods(cluster, world), 2)
            and condition(_model(cluster, world), "Ready").get("status") == "True"
            and (_model(cluster, world)["status"].get("readyReplicas") == 1)
        ),
        timeout=STEP_SECONDS,
    )
    group_set = get_json(cluster, "leaderworkerset", world["model"], "-n", namespace)
    assert group_set["spec"]["replicas"] == 1


def test_a_deepseek_group_runs_data_parallel_ranks_on_both_nodes(
    cluster: Cluster, world: dict[str, str]
) -> None:
    namespace = world["namespace"]
    cluster.kubectl("delete", "modeldeployment", world["model"], "-n", namespace)
    deepseek = {**world, "model": "deepseek-v3"}
    cluster.apply(
        model_manifest(
            "deepseek-v3",
            namespace,
            model={"name": "deepseek-v3"},
            pool=world["pool"],
            maxModelLen=8192,
            traffic={"peakQps": 1, "qpsPerInstance": 2},
        )
    )

    def deepseek_ready() -> bool:
        pods = _group_pods(cluster, deepseek)
        model = _model(cluster, deepseek) or {}
        if _ready_on_distinct_nodes(pods, 2) and condition(model, "Ready").get("status") == "True":
            return True
        group_set = get_json(cluster, "leaderworkerset", "deepseek-v3", "-n", namespace) or {}
        # Raised to be reported as the last state seen should the wait time out.
        conditions = [
            (c["type"], c["status"], c.get("reason"), c.get("message"))
            for c in (model.get("status") or {}).get("conditions", [])
        ]
        bound = [(p["metadata"]["name"], p["spec"].get("nodeName"), p["status"].get("phase")) for p in pods]
        others = [
            (p["metadata"]["name"], p["spec"].get("nodeName"), p["status"].get("phase"))
            for p in get_json(cluster, "pods", "-n", namespace)["items"]
        ]
        raise AssertionError(
            f"conditions {conditions}, set replicas {group_set.get('spec', {}).get('replicas')} "
            f"status {group_set.get('status')}, group pods {bound}, pods in the namespace {others}"
        )

    wait_for("the DeepSeek-V3 group Ready on two nodes", deepseek_ready, timeout=STEP_SECONDS)
    plan = _model(cluster, deepseek)["status"]["plan"]
    assert plan["acrossNodes"] == "DataExpertParallel", plan["reason"]
    assert (plan["nodesPerInstance"], plan["expertParallel"]) == (2, 16)
    local = plan["dataParallelLocal"]
    pods = {
        p["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/worker-index"]: p
        for p in _group_pods(cluster, deepseek)
    }
    for index, pod in pods.items():
        (container,) = pod["spec"]["containers"]
        # The variables the shell expands are the ones the real LeaderWorkerSet controller injects.
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env.get("LWS_WORKER_INDEX") == index, env
        assert env.get("LWS_LEADER_ADDRESS"), env
        script = container["command"][-1]
        assert f"--data-parallel-size-local {local}" in script
        assert ("--headless" in script) == (index != "0")
        if index != "0":
            assert f'--data-parallel-start-rank "$((LWS_WORKER_INDEX * {local}))"' in script
    cluster.kubectl("delete", "modeldeployment", "deepseek-v3", "-n", namespace)
    wait_for("the DeepSeek-V3 group gone", lambda: not _group_pods(cluster, deepseek), timeout=STEP_SECONDS)
