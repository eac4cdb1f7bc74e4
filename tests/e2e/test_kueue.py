"""Gang admission with Kueue, end to end: a group of two nodes is admitted whole or not at all.

The real LeaderWorkerSet controller and the real Kueue (tools/localcluster/lws.sh and kueue.sh,
built from sigs.k8s.io/lws and sigs.k8s.io/kueue) run against the local control plane; kwok's
simulated H100 nodes run the pods. The module's pool has two of them (16 accelerators), one tier
reserving all of them, and spec.scheduler kueue: gpupool writes its ResourceFlavor, Cohort and
ClusterQueue, and the pool says its queues are ready.

First another job holds half the tier's quota in Kueue (a Workload of its own LocalQueue, whose
pods never start): Llama-3.1-405B bf16, one group of two pods of eight accelerators, does not fit.
Its group stays un-admitted: its pods exist but are gated, none is bound to a node or holds an
accelerator, and the model's Placed condition says AwaitingAdmission with Kueue's own message.
When the other job goes, Kueue admits the group whole and its two pods land on two nodes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cluster import Cluster, h100_pool_spec
from harness import (
    KUEUE_SH,
    LWS_SH,
    condition,
    fresh_namespaces,
    get_json,
    local_controller,
    model_manifest,
    running_operator,
)
from operator_process import wait_for

LABEL = "gpupool.io/e2e-kueue"
NODES = ("kwok-nvidia-0", "kwok-nvidia-1")
GROUP_LABEL = "leaderworkerset.sigs.k8s.io/name"
ADMISSION_GATE = "kueue.x-k8s.io/admission"
STEP_SECONDS = 120.0

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    cluster.install_crds()
    suffix = uuid.uuid4().hex[:6]
    names = {"pool": f"kueue-{suffix}", "namespace": f"kueue-{suffix}", "model": "llama-405b"}
    try:
        # Inside the try: a controller that fails to start is still stopped with the other.
        local_controller(cluster, LWS_SH, "start")
        local_controller(cluster, KUEUE_SH, "start")
        for node in NODES:
            cluster.kubectl("label", "node", node, f"{LABEL}={suffix}", "--overwrite")
        with (
            running_operator(cluster, tmp_path_factory.mktemp("kueue")),
            fresh_namespaces(cluster, names["namespace"]),
        ):
            cluster.apply(
                {
                    "apiVersion": "gpupool.io/v1alpha1",
                    "kind": "InferencePool",
                    "metadata": {"name": names["pool"]},
                    "spec": {
                        **h100_pool_spec(),
                        "nodeSelector": {LABEL: suffix},
                        "scheduler": "kueue",
                        "tiers": [{"name": "P0", "priority": 1000000, "reservedPercent": 100}],
                    },
                }
            )
            yield names
    finally:
        cluster.kubectl("delete", "inferencepool", names["pool"], "--wait=false", check=False)
        for node in NODES:
            cluster.kubectl("label", "node", node, f"{LABEL}-", check=False)
        if os.environ.get("GPUPOOL_KEEP_KUEUE") != "1":
            local_controller(cluster, KUEUE_SH, "stop")
        if os.environ.get("GPUPOOL_KEEP_LWS") != "1":
            local_controller(cluster, LWS_SH, "stop")


def _pool(cluster: Cluster, names: dict[str, str]) -> Any:
    return get_json(cluster, "inferencepool", names["pool"])


def _model(cluster: Cluster, names: dict[str, str]) -> Any:
    return get_json(cluster, "modeldeployment", names["model"], "-n", names["namespace"])


def _group_pods(cluster: Cluster, names: dict[str, str]) -> list[dict[str, Any]]:
    pods = get_json(cluster, "pods", "-n", names["namespace"], "-l", f"{GROUP_LABEL}={names['model']}")
    return list((pods or {}).get("items") or [])


def _admitted(workload: dict[str, Any] | None) -> bool:
    conditions = ((workload or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Admitted" and c["status"] == "True" for c in conditions)


def test_the_pool_has_its_queues(cluster: Cluster, world: dict[str, str]) -> None:
    ready = wait_for(
        "QueuesReady=True",
        lambda: (c := condition(_pool(cluster, world), "QueuesReady")).get("status") == "True" and c,
        timeout=STEP_SECONDS,
    )
    assert ready["reason"] == "QueuesActive"
    status = _pool(cluster, world)["status"]
    queue = f"gpupool-{world['pool']}-p0"
    assert status["scheduler"] == "kueue"
    assert f"ClusterQueue/{queue}" in status["queues"]
    cluster_queue = get_json(cluster, "clusterqueue", queue)
    (group,) = cluster_queue["spec"]["resourceGroups"]
    (flavor,) = group["flavors"]
    gpus = next(r for r in flavor["resources"] if r["name"] == "nvidia.com/gpu")
    assert gpus["nominalQuota"] == "16"
    assert cluster_queue["metadata"]["ownerReferences"][0]["name"] == world["pool"]


def test_a_group_that_does_not_fit_is_not_admitted(cluster: Cluster, world: dict[str, str]) -> None:
    namespace = world["namespace"]
    # Another job's reservation of 8 of the tier's 16 accelerators, admitted by Kueue.
    cluster.apply(
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": "other-job", "namespace": namespace},
            "spec": {"clusterQueue": f"gpupool-{world['pool']}-p0"},
        }
    )
    container = {
        "name": "c",
        "image": "busybox",
        "resources": {"requests": {"nvidia.com/gpu": "8", "cpu": "1", "memory": "1Gi"}},
    }
    cluster.apply(
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "Workload",
            "metadata": {"name": "other-job", "namespace": namespace},
            "spec": {
                "queueName": "other-job",
                "podSets": [{"name": "main", "count": 1, "template": {"spec": {"containers": [container]}}}],
            },
        }
    )
    wait_for(
        "the other job admitted",
        lambda: _admitted(get_json(cluster, "workload", "other-job", "-n", namespace)),
        timeout=STEP_SECONDS,
    )
    cluster.apply(
        model_manifest(
            world["model"],
            namespace,
            model={"name": "llama-3.1-405b"},
            pool=world["pool"],
            tier="P0",
            traffic={"peakQps": 1, "qpsPerInstance": 2},
        )
    )
    placed = wait_for(
        "Placed=False, AwaitingAdmission",
        lambda: (c := condition(_model(cluster, world), "Placed")).get("reason") == "AwaitingAdmission" and c,
        timeout=STEP_SECONDS,
    )
    assert placed["status"] == "False"
    assert "wait for Kueue" in placed["message"] and "nvidia.com/gpu" in placed["message"]
    group_set = get_json(cluster, "leaderworkerset", world["model"], "-n", namespace)
    assert group_set["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == world["model"]
    local_queue = get_json(cluster, "localqueue", world["model"], "-n", namespace)
    assert local_queue["metadata"]["ownerReferences"][0]["name"] == world["model"]
    # The group's pods that exist are held by Kueue's gate: none is bound, none holds accelerators.
    pods = wait_for("the leader pod", lambda: _group_pods(cluster, world), timeout=STEP_SECONDS)
    for pod in pods:
        assert not pod["spec"].get("nodeName"), f"{pod['metadata']['name']} was bound before admission"
        assert ADMISSION_GATE in {g["name"] for g in pod["spec"].get("schedulingGates") or []}


def test_the_group_is_admitted_whole_on_two_nodes(cluster: Cluster, world: dict[str, str]) -> None:
    namespace = world["namespace"]
    cluster.kubectl("delete", "workload", "other-job", "-n", namespace, "--wait=true", "--timeout=60s")
    pods = wait_for(
        "two pods bound to two nodes",
        lambda: (
            (p := _group_pods(cluster, world))
            and len(p) == 2
            and len({q["spec"].get("nodeName") for q in p if q["spec"].get("nodeName")}) == 2
            and p
        ),
        timeout=STEP_SECONDS,
    )
    assert {p["spec"]["nodeName"] for p in pods} == set(NODES)
    for pod in pods:
        assert not pod["spec"].get("schedulingGates")
        (engine,) = pod["spec"]["containers"]
        assert engine["resources"]["requests"]["nvidia.com/gpu"] == "8"
    wait_for(
        "the model Placed and Ready",
        lambda: (
            condition(_model(cluster, world), "Placed").get("reason") != "AwaitingAdmission"
            and condition(_model(cluster, world), "Ready").get("status") == "True"
        ),
        timeout=STEP_SECONDS,
    )
