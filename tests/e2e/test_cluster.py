"""Smoke tests proving the local control plane is a real Kubernetes cluster.

Real scheduler, controllers, garbage collector, RBAC, TokenRequest and audit
log; kwok only plays the kubelets of the simulated nodes.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cluster import Cluster, wait_until
from harness import condition

NVIDIA_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
ASCEND_TOLERATION = {"key": "huawei.com/Ascend910", "operator": "Exists", "effect": "NoSchedule"}
COMMON_LABELS = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"lc-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    # Pods are admitted only once the namespace's default ServiceAccount exists.
    wait_until(
        "default ServiceAccount",
        lambda: cluster.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0,
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def nodes_by_type(cluster: Cluster) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"nvidia": [], "ascend": [], "cpu": []}
    for node in cluster.get_json("nodes", "-l", "type=kwok")["items"]:
        out[node["metadata"]["labels"].get("gpu-type", "cpu")].append(node)
    return out


def pod_manifest(
    name: str,
    namespace: str,
    resources: dict[str, str] | None = None,
    selector: dict[str, str] | None = None,
    tolerations: list[dict[str, str]] | None = None,
    priority_class: str | None = None,
) -> dict[str, Any]:
    requests = {"cpu": "100m", "memory": "64Mi", **(resources or {})}
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "registry.example/engine:1",
                # Extended resources must have limits equal to requests.
                "resources": {"requests": requests, "limits": dict(requests)},
            }
        ],
        "terminationGracePeriodSeconds": 0,
    }
    if selector:
        spec["nodeSelector"] = selector
    if tolerations:
        spec["tolerations"] = tolerations
    if priority_class:
        spec["priorityClassName"] = priority_class
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def running_and_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status", {})
    return (
        status.get("phase") == "Running"
        and condition(pod, "Ready").get("status") == "True"
        and bool(status.get("podIP"))
    )


def wait_ready_pod(cluster: Cluster, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        pod = cluster.get_json("pod", name, "-n", namespace)
        return pod if running_and_ready(pod) else None

    result: dict[str, Any] = wait_until(f"pod {namespace}/{name} Running and Ready", probe, timeout)
    return result


def node_labels(cluster: Cluster, name: str) -> dict[str, str]:
    labels: dict[str, str] = cluster.get_json("node", name)["metadata"]["labels"]
    return labels


def test_server_and_kubectl_are_the_pinned_release(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == cluster.k8s_version
    assert version["clientVersion"]["gitVersion"] == cluster.k8s_version


def test_nodes_look_like_accelerator_nodes(cluster: Cluster) -> None:
    by_type = nodes_by_type(cluster)
    assert by_type["nvidia"], "no NVIDIA nodes"
    assert by_type["ascend"], "no Ascend nodes"
    assert by_type["cpu"], "no CPU nodes"
    for nodes in by_type.values():
        for node in nodes:
            name = node["metadata"]["name"]
            labels = node["metadata"]["labels"]
            assert labels["kubernetes.io/hostname"] == name
            assert COMMON_LABELS.items() <= labels.items()
            assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
            assert condition(node, "Ready").get("status") == "True", name
            assert node["status"]["allocatable"]["pods"] == "110"
    for node in by_type["nvidia"]:
        labels = node["metadata"]["labels"]
        assert labels["gpu-type"] == "nvidia"
        assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
        assert labels["nvidia.com/gpu.memory"] == "81559"
        assert labels["nvidia.com/gpu.count"] == "8"
        assert labels["nvidia.com/gpu.present"] == "true"
        assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
        assert node["spec"]["taints"] == [
            {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
        ]
    for node in by_type["ascend"]:
        labels = node["metadata"]["labels"]
        assert labels["gpu-type"] == "ascend"
        assert labels["accelerator"] == "huawei-Ascend910"
        assert labels["node.kubernetes.io/npu.chip.name"] == "910B3"
        assert node["status"]["allocatable"]["huawei.com/Ascend910"] == "8"
        assert node["spec"]["taints"] == [
            {"key": "huawei.com/Ascend910", "value": "present", "effect": "NoSchedule"}
        ]
    for node in by_type["cpu"]:
        assert not node["spec"].get("taints")
        assert not any("nvidia.com" in r or "huawei.com" in r for r in node["status"]["capacity"])


def test_gpu_pod_is_scheduled_onto_an_nvidia_node_and_becomes_ready(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        pod_manifest("gpu", namespace, {"nvidia.com/gpu": "4"}, {"gpu-type": "nvidia"}, [NVIDIA_TOLERATION])
    )
    pod = wait_ready_pod(cluster, namespace, "gpu")
    assert node_labels(cluster, pod["spec"]["nodeName"])["gpu-type"] == "nvidia"
    assert condition(pod, "PodScheduled")["status"] == "True"
    assert pod["spec"]["schedulerName"] == "default-scheduler"
    assert pod["status"]["containerStatuses"][0]["ready"] is True


def test_npu_pod_is_scheduled_onto_an_ascend_node(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        pod_manifest(
            "npu",
            namespace,
            {"huawei.com/Ascend910": "2"},
            {"accelerator": "huawei-Ascend910"},
            [ASCEND_TOLERATION],
        )
    )
    pod = wait_ready_pod(cluster, namespace, "npu")
    assert node_labels(cluster, pod["spec"]["nodeName"])["gpu-type"] == "ascend"


def test_gpu_pod_without_toleration_is_unschedulable(cluster: Cluster, namespace: str) -> None:
    cluster.apply(pod_manifest("untolerated", namespace, {"nvidia.com/gpu": "1"}))

    def unschedulable() -> bool:
        pod = cluster.get_json("pod", "untolerated", "-n", namespace)
        return condition(pod, "PodScheduled").get("reason") == "Unschedulable"

    wait_until("the scheduler to report the pod Unschedulable", unschedulable, 30)
    assert "nodeName" not in cluster.get_json("pod", "untolerated", "-n", namespace)["spec"]


def test_deployment_creates_replicaset_and_ready_pods(cluster: Cluster, namespace: str) -> None:
    template = pod_manifest("unused", namespace)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": template["spec"]},
        },
    }
    cluster.apply(deployment)

    def ready() -> bool:
        status: dict[str, Any] = cluster.get_json("deployment", "web", "-n", namespace).get("status", {})
        return status.get("readyReplicas") == 3 and status.get("availableReplicas") == 3

    wait_until("deployment web to have 3 ready replicas", ready, 60)
    replicasets = cluster.get_json("replicasets", "-n", namespace, "-l", "app=web")["items"]
    assert len(replicasets) == 1
    assert replicasets[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    pods = cluster.get_json("pods", "-n", namespace, "-l", "app=web")["items"]
    assert len(pods) == 3
    assert all(running_and_ready(p) for p in pods)
    assert all(
        p["metadata"]["ownerReferences"][0]["name"] == replicasets[0]["metadata"]["name"] for p in pods
    )


def test_garbage_collector_deletes_dependents_of_a_deleted_owner(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "create", "configmap", "owner", "--from-literal=a=1")
    uid = cluster.get_json("configmap", "owner", "-n", namespace)["metadata"]["uid"]
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "dependent",
                "namespace": namespace,
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}],
            },
            "data": {"b": "2"},
        }
    )
    cluster.kubectl("-n", namespace, "delete", "configmap", "owner", "--cascade=background")

    def dependent_gone() -> bool:
        return cluster.kubectl("-n", namespace, "get", "configmap", "dependent", check=False).returncode != 0

    wait_until("the garbage collector to delete the dependent", dependent_gone, 60)


@pytest.fixture
def priority_classes(cluster: Cluster) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    low, high = f"lc-low-{suffix}", f"lc-high-{suffix}"
    cluster.apply(
        [
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": low},
                "value": 1000,
            },
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": high},
                "value": 100000,
            },
        ]
    )
    yield low, high
    cluster.kubectl("delete", "priorityclass", low, high, "--wait=false", check=False)


def free_nvidia_node(cluster: Cluster) -> str:
    """An NVIDIA node with all 8 GPUs unrequested, so the test owns it."""
    used: dict[str, int] = {}
    for pod in cluster.get_json(
        "pods", "-A", "--field-selector=status.phase!=Succeeded,status.phase!=Failed"
    )["items"]:
        node = pod["spec"].get("nodeName")
        for c in pod["spec"]["containers"]:
            used[node] = used.get(node, 0) + int(
                c.get("resources", {}).get("requests", {}).get("nvidia.com/gpu", 0)
            )
    for node in nodes_by_type(cluster)["nvidia"]:
        if used.get(node["metadata"]["name"], 0) == 0:
            return str(node["metadata"]["name"])
    pytest.fail("no NVIDIA node has all its GPUs free")


def test_higher_priority_pod_preempts_lower_on_a_full_node(
    cluster: Cluster, namespace: str, priority_classes: tuple[str, str]
) -> None:
    low, high = priority_classes
    node = free_nvidia_node(cluster)
    selector = {"kubernetes.io/hostname": node}
    full = {"nvidia.com/gpu": "8"}
    cluster.apply(pod_manifest("victim", namespace, full, selector, [NVIDIA_TOLERATION], low))
    victim = wait_ready_pod(cluster, namespace, "victim")
    assert victim["spec"]["priority"] == 1000

    cluster.apply(pod_manifest("preemptor", namespace, full, selector, [NVIDIA_TOLERATION], high))

    def victim_gone() -> bool:
        return cluster.kubectl("-n", namespace, "get", "pod", "victim", check=False).returncode != 0

    wait_until("the scheduler to preempt the low-priority pod", victim_gone, 90)
    preemptor = wait_ready_pod(cluster, namespace, "preemptor", 90)
    assert preemptor["spec"]["nodeName"] == node
    assert preemptor["spec"]["priority"] == 100000
    events = cluster.get_json("events", "-n", namespace, "--field-selector=involvedObject.name=victim")[
        "items"
    ]
    assert any(e.get("reason") == "Preempted" for e in events), [e.get("reason") for e in events]


def test_service_account_token_is_subject_to_rbac(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "reader")
    token = cluster.kubectl("-n", namespace, "create", "token", "reader", "--duration=10m").stdout.strip()
    as_reader = [
        "--kubeconfig=/dev/null",
        f"--server={cluster.api_url}",
        f"--certificate-authority={cluster.state_dir / 'pki' / 'ca.crt'}",
        f"--token={token}",
    ]

    def reader(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(cluster.kubectl_path), *as_reader, "-n", namespace, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    whoami = json.loads(reader("auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:reader"
    denied = reader("get", "pods")
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()

    cluster.kubectl("-n", namespace, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "rolebinding",
        "reader",
        "--role=pod-reader",
        f"--serviceaccount={namespace}:reader",
    )
    wait_until("RBAC to allow the reader", lambda: reader("get", "pods").returncode == 0, 30)
    assert reader("get", "secrets").returncode != 0


def test_writes_are_recorded_in_the_audit_log(cluster: Cluster, namespace: str) -> None:
    offset = cluster.audit_offset()
    cluster.kubectl("-n", namespace, "create", "configmap", "audited", "--from-literal=x=1")
    cluster.kubectl("-n", namespace, "get", "configmap", "audited")

    def entries() -> list[dict[str, Any]]:
        with cluster.audit_log.open("rb") as f:
            f.seek(offset)
            return [json.loads(line) for line in f if line.strip()]

    def created() -> list[dict[str, Any]]:
        return [
            e
            for e in entries()
            if e["verb"] == "create"
            and e.get("objectRef", {}).get("name") == "audited"
            and e.get("objectRef", {}).get("namespace") == namespace
        ]

    found = wait_until("the create in the audit log", created, 10)
    assert found[0]["level"] == "Metadata"
    assert found[0]["stage"] == "ResponseComplete"
    assert not [e for e in entries() if e["verb"] in {"get", "list", "watch"}], "reads must not be audited"
