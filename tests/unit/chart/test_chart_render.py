"""The Helm chart: lint, schema, what it renders for each values scenario."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_rendering import CHART, SCENARIOS, Render, by_kind, one, run_helm

from gpupool.api.crd import all_crds


@pytest.mark.parametrize("values", SCENARIOS, ids=lambda p: p.stem)
def test_helm_lint_strict_passes_for_every_scenario(helm: str, values: Path) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(values), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    "override",
    ["unknownTopLevel=1", "image.tga=latest", "prometheusRule.for.typo=5m", "crds.enabled=maybe"],
)
def test_schema_rejects_values_it_does_not_document(helm: str, override: str) -> None:
    result = run_helm(helm, "template", "x", str(CHART), "--set", override, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr


def _declared_leaves(schema: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    leaves = []
    for key, sub in schema.get("properties", {}).items():
        path = (*prefix, key)
        if sub.get("type") == "object" and "properties" in sub:
            leaves += _declared_leaves(sub, path)
        else:
            leaves.append(path)
    return leaves


def test_every_value_in_the_schema_is_documented_in_values_yaml() -> None:
    """Each value the schema declares has a comment right above it in values.yaml."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    lines = (CHART / "values.yaml").read_text().splitlines()
    located: dict[tuple[str, ...], int] = {}
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z_][A-Za-z0-9_]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        located.setdefault(tuple(k for _, k in stack), number)
    leaves = _declared_leaves(schema)
    assert len(leaves) > 40
    undocumented = []
    for path in leaves:
        assert path in located, f"{'.'.join(path)} is in the schema but not in values.yaml"
        previous = lines[located[path] - 1].strip()
        if not previous.startswith("#"):
            undocumented.append(".".join(path))
    assert undocumented == []


def test_default_values_validate_against_the_schema_objects_are_closed() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def closed(node: dict[str, Any], where: str) -> list[str]:
        problems = [] if node.get("additionalProperties") is False else [where or "(root)"]
        for key, sub in node.get("properties", {}).items():
            if sub.get("type") == "object" and "properties" in sub:
                problems += closed(sub, f"{where}.{key}")
        return problems

    assert closed(schema, "") == []
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) == set(schema["properties"])


def test_crds_are_the_generated_ones_plus_keep(render: Render) -> None:
    rendered = {c["metadata"]["name"]: c for c in by_kind(render(), "CustomResourceDefinition")}
    generated = {c["metadata"]["name"]: c for c in all_crds()}
    assert set(rendered) == set(generated)
    for name, crd in rendered.items():
        assert crd["metadata"].pop("annotations") == {"helm.sh/resource-policy": "keep"}
        assert crd == generated[name], f"{name} differs from `gpupool crds`"


def test_crds_can_be_left_out_or_made_deletable(render: Render) -> None:
    assert by_kind(render("--set", "crds.enabled=false"), "CustomResourceDefinition") == []
    for crd in by_kind(render("--set", "crds.keep=false"), "CustomResourceDefinition"):
        assert "annotations" not in crd["metadata"]


def test_operator_deployment_is_hardened_and_probed(render: Render) -> None:
    deployment = one(render(), "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert f"--health-address=0.0.0.0:{ports['health']}" in container["args"]
    assert f"--metrics-port={ports['metrics']}" in container["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {v["name"] for v in pod["volumes"]} == {m["name"] for m in container["volumeMounts"]}
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "gpupool"
    }
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert env["GPUPOOL_RESYNC_SECONDS"] == "60"


def test_image_reference_uses_digest_over_tag(render: Render) -> None:
    (container,) = one(render(), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "gpupool:0.1.0"
    digest = "sha256:" + "a" * 64
    pinned = render("--set", "image.repository=r.example/gp", "--set", f"image.digest={digest}")
    (container,) = one(pinned, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"r.example/gp@{digest}"


def test_cluster_role_never_grants_secrets_wildcards_or_stray_deletes(render: Render) -> None:
    role = one(render(), "ClusterRole")
    assert role["rules"]
    deletable = set()
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert not {"deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"])
        if "delete" in rule["verbs"]:
            deletable |= set(rule["resources"])
            # gpupool's own kinds are the user's: the Inference Extension's inferencepools share
            # the plural, not the group.
            assert "gpupool.io" not in rule["apiGroups"]
        assert "secrets" not in rule["resources"]
        if "namespaces" in rule["resources"]:
            assert rule["verbs"] == ["list"]  # labels, for tenants' namespace selectors
    # Only what gpupool renders and may stop needing: a pool's Deployment or LeaderWorkerSet (a
    # plan that moved between one node and several), a tenant's quota, a model's network policy or
    # route turned off (the budget's delete covers a name change), a weights cache's claim and
    # download Jobs once another revision is cached or the cache is turned off, a kueue pool's
    # queues (a tier removed, the pool back on the default scheduler), a model's LocalQueue, its
    # Inference Extension InferencePool and InferenceObjective (routing.inferencePool turned off),
    # and the versions' Services of a canary behind a route once it ends.
    assert deletable == {
        "services",
        "jobs",
        "persistentvolumeclaims",
        "deployments",
        "leaderworkersets",
        "resourceflavors",
        "cohorts",
        "clusterqueues",
        "localqueues",
        "resourcequotas",
        "poddisruptionbudgets",
        "networkpolicies",
        "httproutes",
        "inferencepools",
        "inferenceobjectives",
    }
    # Pods: listed for accounting, watched for preemption, patched for the deletion cost; never
    # created or deleted.
    pod_verbs = {v for r in role["rules"] if "pods" in r["resources"] for v in r["verbs"]}
    assert pod_verbs == {"list", "watch", "patch"}
    binding = one(render(), "ClusterRoleBinding")
    account = one(render(), "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "gpupool-system"}
    ]


def test_secrets_are_readable_by_name_in_the_release_namespace_only(render: Render) -> None:
    objects = render()
    role = one(objects, "Role")
    assert role["metadata"]["namespace"] == "gpupool-system"
    secrets = [r for r in role["rules"] if "secrets" in r["resources"]]
    assert secrets == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    assert {g for r in role["rules"] for g in r["apiGroups"]} == {"", "coordination.k8s.io"}
    binding = one(objects, "RoleBinding")
    assert binding["metadata"]["namespace"] == "gpupool-system"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": one(objects, "ServiceAccount")["metadata"]["name"],
            "namespace": "gpupool-system",
        }
    ]
    # The operator looks for them in its own namespace, which the pod tells it.
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert {
        "name": "GPUPOOL_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    } in container["env"]


def test_rbac_and_service_account_can_be_brought_by_the_user(render: Render, helm: str) -> None:
    objects = render(
        "--set",
        "rbac.create=false",
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.name=mine",
    )
    assert not by_kind(objects, "ClusterRole") and not by_kind(objects, "ServiceAccount")
    assert not by_kind(objects, "Role") and not by_kind(objects, "RoleBinding")
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "mine"
    result = run_helm(helm, "template", "x", str(CHART), "--set", "serviceAccount.create=false", check=False)
    assert "serviceAccount.name is required" in result.stderr


def test_monitoring_scenario_renders_service_monitor_rules_and_dashboard(render: Render) -> None:
    objects = render("-f", str(CHART / "ci" / "monitoring-values.yaml"))
    service = one(objects, "Service")
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules = one(objects, "PrometheusRule")
    alerts = [r["alert"] for g in rules["spec"]["groups"] for r in g["rules"]]
    # One utilisation alert per configured series, then the rest once each.
    assert alerts.count("GpupoolAcceleratorUtilisationHigh") == 2
    for name in (
        "GpupoolModelTimeToFirstTokenHigh",
        "GpupoolModelErrorRateHigh",
        "GpupoolOperatorDown",
        "GpupoolReconcileErrors",
        "GpupoolModelReplicasMismatch",
    ):
        assert alerts.count(name) == 1, name
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["team"] == "ml-platform"
    exprs = [r["expr"] for g in rules["spec"]["groups"] for r in g["rules"]]
    assert sum('job="gpupool-metrics"' in e for e in exprs) == 3
    dashboard = one(objects, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["gpupool.json"])["uid"] == "gpupool-overview"


def test_pools_render_only_once_the_api_is_served(render: Render) -> None:
    values = str(CHART / "ci" / "external-crds-values.yaml")
    assert by_kind(render("-f", values), "InferencePool") == []
    pools = by_kind(
        render("-f", values, "--api-versions", "gpupool.io/v1alpha1/InferencePool"), "InferencePool"
    )
    assert [p["metadata"]["name"] for p in pools] == ["chart-ci-h100", "chart-ci-ascend"]
    assert pools[0]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    assert "namespace" not in pools[0]["metadata"]
    assert pools[0]["spec"]["acceleratorsPerNode"] == 8


def test_dashboard_covers_every_operator_metric() -> None:
    source = (Path(__file__).resolve().parents[3] / "operator/gpupool/controller/metrics.py").read_text()
    metrics = set(re.findall(r'"(gpupool_[a-z_]+)"', source))
    assert len(metrics) >= 8
    dashboard = json.loads((CHART / "files/dashboards/gpupool.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    assert sorted(m for m in metrics if m not in exprs) == []
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_two_replicas_take_turns_through_a_lease(render: Render) -> None:
    """A leader and a standby: leader election on, rolling updates, one pod per node preferred,
    a disruption budget, and the Lease readable and renewable by its name only."""
    objects = render()
    deployment = one(objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    name = deployment["metadata"]["name"]
    assert "--leader-elect" in container["args"]
    assert f"--leader-election-id={name}" in container["args"]
    assert "--leader-election-lease-duration=10" in container["args"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"]
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    own = [
        t
        for t in anti
        if t["podAffinityTerm"]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    ]
    assert [t["podAffinityTerm"]["topologyKey"] for t in own] == ["kubernetes.io/hostname"]
    # The user's own affinity stays as it is, the operator's term added beside it.
    assert pod["affinity"]["nodeAffinity"]
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": spec["selector"]["matchLabels"]}}
    leases = [r for r in one(objects, "Role")["rules"] if r["apiGroups"] == ["coordination.k8s.io"]]
    assert leases == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [name],
            "verbs": ["get", "update"],
        },
    ]
    assert not any("leases" in r["resources"] for r in one(objects, "ClusterRole")["rules"])


def test_one_replica_without_leader_election_is_recreated(render: Render) -> None:
    objects = render("--set", "replicaCount=1", "--set", "leaderElection.enabled=false")
    spec = one(objects, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    (container,) = spec["template"]["spec"]["containers"]
    assert not any(a.startswith("--leader-elect") for a in container["args"])
    assert by_kind(objects, "PodDisruptionBudget") == []
    own = spec["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert len(own) == 1  # only the default term that keeps it away from inference pods
    assert not any("leases" in r["resources"] for r in one(objects, "Role")["rules"])


def test_several_replicas_without_leader_election_are_refused(helm: str) -> None:
    result = run_helm(helm, "template", "x", str(CHART), "--set", "leaderElection.enabled=false", check=False)
    assert result.returncode != 0
    assert "replicaCount above 1 needs leaderElection.enabled" in result.stderr
