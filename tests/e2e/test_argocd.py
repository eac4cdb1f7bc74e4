"""Argo CD: the health checks on statuses the real operator writes, and field ownership.

The Lua scripts run in Argo CD's own runtime (tools/argocd-lua: gopher-lua with the libraries Argo
CD opens, the `argocd_health` fixture) on objects read back from the API server after the operator
reconciled them; tests/unit/argocd covers every state on statuses built without a cluster.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import Cluster
from harness import condition, fresh_namespaces, running_operator
from operator_process import wait_for

from argocd_lua import ArgocdHealth

ARGOCD_MANAGER = "argocd-controller"

pytestmark = pytest.mark.e2e


def maybe(cluster: Cluster, *args: str) -> Any:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


@pytest.fixture(scope="module")
def world(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A running operator, a pool with nodes, a pool without, and a namespace of our own."""
    cluster.install_crds()
    suffix = uuid.uuid4().hex[:6]
    names = {
        "pool": f"chart-argo-{suffix}",
        "empty": f"chart-argo-{suffix}-empty",
        "ns": f"chart-argo-{suffix}",
    }
    pools = [
        {
            "apiVersion": "gpupool.io/v1alpha1",
            "kind": "InferencePool",
            "metadata": {"name": name},
            "spec": {
                "vendor": "nvidia",
                "accelerator": "H100-80GB",
                "acceleratorsPerNode": 8,
                "nodeSelector": selector,
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
        }
        for name, selector in (
            (names["pool"], {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}),
            (names["empty"], {"gpupool.io/test-no-such-node": "true"}),
        )
    ]
    try:
        with fresh_namespaces(cluster, names["ns"], models=False):
            cluster.apply(pools)
            with running_operator(cluster, tmp_path_factory.mktemp("argocd-operator")):
                yield names
    finally:
        cluster.kubectl("delete", "inferencepool.gpupool.io", names["pool"], names["empty"], check=False)


def model(name: str, pool: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": {"name": "llama-3.1-8b"}, "pool": pool, "traffic": {"peakQps": 1}, **spec},
    }


def test_health_of_models_as_the_operator_reports_them(
    cluster: Cluster, world: dict[str, str], argocd_health: ArgocdHealth
) -> None:
    ns, pool, empty = world["ns"], world["pool"], world["empty"]
    cases = {
        # name: (manifest, Ready reason the operator reaches, Argo CD health)
        "serving": (model("serving", pool, replicas=1), "Available", "Healthy"),
        "idle": (model("idle", pool, replicas=0), "ScaledToZero", "Healthy"),
        # Two whole nodes would hold it; a forced size narrower than a node keeps it on one.
        "huge": (
            model("huge", pool, model={"name": "llama-3.1-405b"}, engine={"tensorParallel": 4}),
            "DoesNotFit",
            "Degraded",
        ),
        "orphan": (model("orphan", "chart-argo-no-such-pool"), "PoolNotFound", "Degraded"),
        "unknown": (model("unknown", pool, model={"name": "llama-9"}), "UnknownModel", "Degraded"),
        # Its pool has no nodes: the Deployment exists but no pod can be scheduled.
        "waiting": (model("waiting", empty, replicas=1), "InstancesStarting", "Progressing"),
    }
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all([m for m, _, _ in cases.values()]))
    for name, (_, reason, health) in cases.items():
        md = wait_for(
            f"{name}: Ready reason {reason}",
            lambda n=name, r=reason: (
                condition(maybe(cluster, "mdep", n, "-n", ns), "Ready").get("reason") == r
                and maybe(cluster, "mdep", n, "-n", ns)
            ),
            timeout=90,
        )
        status, message = argocd_health("ModelDeployment", md)
        assert status == health, f"{name}: {status} ({message})"
        assert message, name
        if health == "Degraded":
            assert reason in message
    # A ModelDeployment as stored before any reconcile (what Argo CD sees right after a sync).
    fresh = json.loads(
        cluster.kubectl(
            "create",
            "--dry-run=server",
            "-n",
            ns,
            "-o",
            "json",
            "-f",
            "-",
            input=json.dumps(model("fresh", pool)),
        ).stdout
    )
    assert "status" not in fresh or not fresh["status"].get("conditions")
    assert argocd_health("ModelDeployment", fresh)[0] == "Progressing"


def test_health_follows_a_spec_change_until_it_is_observed(
    cluster: Cluster, world: dict[str, str], argocd_health: ArgocdHealth
) -> None:
    ns, pool = world["ns"], world["pool"]
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(model("change", pool, replicas=1)))
    md = wait_for(
        "Available",
        lambda: (
            condition(maybe(cluster, "mdep", "change", "-n", ns), "Ready").get("reason") == "Available"
            and maybe(cluster, "mdep", "change", "-n", ns)
        ),
    )
    assert argocd_health("ModelDeployment", md)[0] == "Healthy"
    # The same object with a newer generation than the status observed: not healthy yet.
    newer = json.loads(json.dumps(md))
    newer["metadata"]["generation"] = md["status"]["observedGeneration"] + 1
    assert argocd_health("ModelDeployment", newer)[0] == "Progressing"
    # An impossible change: the operator keeps the running workload and reports Degraded.
    cluster.kubectl(
        "patch",
        "mdep",
        "change",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"model":{"name":"llama-3.1-405b"},"engine":{"tensorParallel":4}}}',
    )
    degraded = wait_for(
        "Degraded after the change",
        lambda: (
            condition(maybe(cluster, "mdep", "change", "-n", ns), "Degraded").get("status") == "True"
            and maybe(cluster, "mdep", "change", "-n", ns)
        ),
    )
    assert degraded["status"]["observedGeneration"] == degraded["metadata"]["generation"]
    status, message = argocd_health("ModelDeployment", degraded)
    assert (status, message.split(":")[0]) == ("Degraded", "DoesNotFit")


def test_health_of_pools(cluster: Cluster, world: dict[str, str], argocd_health: ArgocdHealth) -> None:
    for name, health, reason in (
        (world["pool"], "Healthy", "NodesFound"),
        (world["empty"], "Degraded", "NoNodesMatch"),
    ):
        pool = wait_for(
            f"{name} reconciled",
            lambda n=name: condition(maybe(cluster, "ipool", n), "Ready") and maybe(cluster, "ipool", n),
        )
        assert argocd_health("InferencePool", pool) == (
            health,
            f"{reason}: {condition(pool, 'Ready')['message']}",
        )


def test_operator_never_writes_fields_argocd_owns(
    cluster: Cluster, world: dict[str, str], tmp_path: Path
) -> None:
    ns, pool = world["ns"], world["pool"]
    manifest = tmp_path / "model.yaml"
    body = model("gitops", pool, replicas=1, scaling={"minReplicas": 1, "maxReplicas": 3})
    body["metadata"]["namespace"] = ns
    body["metadata"]["annotations"] = {"argocd.argoproj.io/sync-wave": "1"}
    manifest.write_text(yaml.safe_dump(body))
    apply = ["apply", "--server-side", f"--field-manager={ARGOCD_MANAGER}", "-f", str(manifest)]
    cluster.kubectl(*apply)
    wait_for(
        "Available",
        lambda: condition(maybe(cluster, "mdep", "gitops", "-n", ns), "Ready").get("reason") == "Available",
    )
    before = cluster.get_json("mdep", "gitops", "-n", ns, "--show-managed-fields")

    # Argo CD's view: a diff of the same manifest under its field manager shows nothing.
    diff = cluster.kubectl(
        "diff", "--server-side", f"--field-manager={ARGOCD_MANAGER}", "-f", str(manifest), check=False
    )
    assert diff.returncode == 0, diff.stdout + diff.stderr
    dry = json.loads(cluster.kubectl(*apply, "--dry-run=server", "-o", "json").stdout)
    assert dry["spec"] == before["spec"]
    assert dry["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    managers = before["metadata"]["managedFields"]
    ours = [m for m in managers if m["manager"] == "gpupool"]
    assert ours, managers
    assert all(m.get("subresource") == "status" for m in ours), ours
    assert all(set(m["fieldsV1"]) == {"f:status"} for m in ours), ours
    argocd = [m for m in managers if m["manager"] == ARGOCD_MANAGER]
    assert [m["operation"] for m in argocd] == ["Apply"]
    assert "f:spec" in argocd[0]["fieldsV1"] and "subresource" not in argocd[0]
    # Nobody else holds a spec or metadata field Argo CD applied.
    others = [m for m in managers if m["manager"] not in {"gpupool", ARGOCD_MANAGER}]
    assert all("f:spec" not in m.get("fieldsV1", {}) for m in others), others
