"""The Helm chart and the kustomize manifests against the local control plane.

Every scenario's objects pass the API server's own validation (server-side dry run); a real
`helm install` and `helm upgrade` run in a namespace of their own; and the operator, run with a
token of the chart's ServiceAccount, does its whole job without one forbidden request, while
`kubectl auth can-i` shows what that account cannot do.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import Cluster, h100_pool_spec
from harness import (
    condition,
    fresh_namespaces,
    install_gateway_api,
    install_inference_extension,
    running_operator,
    unique_name,
)
from operator_process import wait_for

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gpupool"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
OVERLAYS = sorted(p for p in (ROOT / "manifests" / "overlays").iterdir() if p.is_dir())

pytestmark = pytest.mark.e2e

# Stand-ins for the prometheus-operator CRDs, so that ServiceMonitor and PrometheusRule objects
# reach the API server's validation here. The field names and types are those of
# monitoring.coreos.com/v1 for the fields the chart sets; unknown fields are rejected, so a typo
# in the chart fails. The rules' content is checked by promtool and a real Prometheus.
_STRING = {"type": "string"}
_LABELS = {"type": "object", "additionalProperties": _STRING}
MONITORING_CRDS = [
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com", "labels": {"gpupool.io/test": "stand-in"}},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": spec},
                            "required": ["spec"],
                        }
                    },
                }
            ],
        },
    }
    for kind, plural, spec in (
        (
            "ServiceMonitor",
            "servicemonitors",
            {
                "type": "object",
                "required": ["selector"],
                "properties": {
                    "selector": {
                        "type": "object",
                        "properties": {"matchLabels": _LABELS},
                    },
                    "namespaceSelector": {
                        "type": "object",
                        "properties": {
                            "matchNames": {"type": "array", "items": _STRING},
                            "any": {"type": "boolean"},
                        },
                    },
                    "endpoints": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "port": _STRING,
                                "path": _STRING,
                                "interval": {"type": "string", "pattern": "^(0|(([0-9]+)(ms|s|m|h))+)$"},
                                "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)(ms|s|m|h))+)$"},
                            },
                        },
                    },
                },
            },
        ),
        (
            "PrometheusRule",
            "prometheusrules",
            {
                "type": "object",
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": _STRING,
                                "rules": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["expr"],
                                        "properties": {
                                            "alert": _STRING,
                                            "record": _STRING,
                                            "expr": {"x-kubernetes-int-or-string": True},
                                            "for": _STRING,
                                            "labels": _LABELS,
                                            "annotations": _LABELS,
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
        ),
    )
]


# --------------------------------------------------------------------------------------------------
# fixtures and helpers


def run(cmd: list[str], *, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, input=input, capture_output=True, text=True, cwd=ROOT, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="module")
def helm(cluster: Cluster) -> Iterator[Any]:
    """Helm (from tools/helm.sh) bound to the local cluster's kubeconfig."""
    path = run([str(ROOT / "tools" / "helm.sh")]).stdout.strip()

    def _helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([path, "--kubeconfig", str(cluster.kubeconfig), *args], check=check)

    yield _helm


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> Iterator[None]:
    """gpupool's CRDs (shared, as other modules install them) and the monitoring stand-ins."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    existing = cluster.kubectl("get", "crd", "-o", "name").stdout.split()
    created = [
        c
        for c in MONITORING_CRDS
        if f"customresourcedefinition.apiextensions.k8s.io/{c['metadata']['name']}" not in existing
    ]
    if created:
        cluster.kubectl(
            "create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": created})
        )
    names = ["crd/inferencepools.gpupool.io", "crd/modeldeployments.gpupool.io"] + [
        f"crd/{c['metadata']['name']}" for c in MONITORING_CRDS
    ]
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    yield
    for crd in created:
        cluster.kubectl("delete", "crd", crd["metadata"]["name"], "--wait=false", check=False)


@pytest.fixture
def namespace(cluster: Cluster, crds: None) -> Iterator[str]:
    with fresh_namespaces(cluster, unique_name("chart"), models=False) as (name,):
        yield name


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def maybe(cluster: Cluster, *args: str) -> Any:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def token_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount, with a TokenRequest token."""
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [server],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": server["name"], "user": account}}],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def forbidden_since(audit_log: Path, offset: int, user: str) -> list[str]:
    """Requests of `user` the API server refused, from the audit log past `offset`."""
    refused = []
    with audit_log.open("rb") as f:
        f.seek(offset)
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if (
                entry.get("user", {}).get("username") == user
                and entry.get("responseStatus", {}).get("code") == 403
            ):
                ref = entry.get("objectRef", {})
                refused.append(f"{entry['verb']} {ref.get('resource')}/{ref.get('subresource', '')}")
    return refused


# --------------------------------------------------------------------------------------------------
# tests


@pytest.mark.parametrize("values", SCENARIOS, ids=lambda p: p.stem)
def test_every_scenario_passes_server_side_validation(
    cluster: Cluster, helm: Any, namespace: str, values: Path
) -> None:
    """`helm template` of each ci/ scenario, every object dry-run applied by the API server."""
    release = namespace
    rendered = helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "-f",
        str(values),
        "--api-versions",
        "gpupool.io/v1alpha1/InferencePool",
    ).stdout
    objects = docs(rendered)
    assert objects
    result = cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        "-o",
        "json",
        input=rendered,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    applied = json.loads(result.stdout)
    items = applied["items"] if applied.get("kind") == "List" else [applied]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in items) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in objects
    )


def test_install_upgrade_and_operator_with_chart_rbac(
    cluster: Cluster, helm: Any, namespace: str, tmp_path: Path
) -> None:
    release = namespace
    pool = f"{namespace}-h100"
    helm(
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "crds.enabled=false",
        "--wait",
        "--timeout",
        "120s",
    )
    try:
        deployment = cluster.get_json("deployment", f"{release}-gpupool", "-n", namespace)
        # A leader and a standby, on different nodes when they can be.
        assert deployment["status"]["readyReplicas"] == 2
        pods = cluster.get_json("pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}")[
            "items"
        ]
        assert len({p["spec"]["nodeName"] for p in pods}) == 2
        # The default affinity keeps the operator off accelerator nodes when others are free.
        for pod in pods:
            node = cluster.get_json("node", pod["spec"]["nodeName"])
            assert "gpu-type" not in node["metadata"]["labels"], node["metadata"]["name"]
        pdb = cluster.get_json("pdb", f"{release}-gpupool", "-n", namespace)
        assert pdb["spec"]["minAvailable"] == 1

        # An upgrade with changed values: faster resync, debug logs, and a pool from values.
        values = tmp_path / "upgrade.yaml"
        values.write_text(
            yaml.safe_dump(
                {
                    "crds": {"enabled": False},
                    "operator": {"resyncSeconds": 5, "verbose": True},
                    "inferencePools": [
                        {
                            "name": pool,
                            "spec": h100_pool_spec(pricePerAcceleratorHour=2.5),
                        }
                    ],
                }
            )
        )
        helm(
            "upgrade",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "-f",
            str(values),
            "--wait",
            "--timeout",
            "120s",
        )
        history = json.loads(helm("history", release, "--namespace", namespace, "-o", "json").stdout)
        assert [h["revision"] for h in history] == [1, 2] and history[-1]["status"] == "deployed"
        upgraded = cluster.get_json("deployment", f"{release}-gpupool", "-n", namespace)
        container = upgraded["spec"]["template"]["spec"]["containers"][0]
        assert {"name": "GPUPOOL_RESYNC_SECONDS", "value": "5"} in container["env"]
        assert "--verbose" in container["args"]
        assert upgraded["metadata"]["generation"] > deployment["metadata"]["generation"]
        created_pool = cluster.get_json("inferencepool.gpupool.io", pool)
        assert created_pool["metadata"]["annotations"]["meta.helm.sh/release-name"] == release

        run_operator_with_chart_token(cluster, namespace, release, pool, tmp_path)
    finally:
        helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "120s", check=False)
    # The pool was part of the release; its PriorityClasses go with it (owner references).
    wait_for("pool gone", lambda: maybe(cluster, "inferencepool.gpupool.io", pool) is None)
    assert maybe(cluster, "crd", "modeldeployments.gpupool.io") is not None


def run_operator_with_chart_token(
    cluster: Cluster, namespace: str, release: str, pool: str, tmp_path: Path
) -> None:
    account = f"{release}-gpupool"
    user = f"system:serviceaccount:{namespace}:{account}"
    kubeconfig = token_kubeconfig(cluster, namespace, account, tmp_path / "sa.kubeconfig")
    whoami = json.loads(
        cluster.kubectl("--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json").stdout
    )
    assert whoami["status"]["userInfo"]["username"] == user

    offset = cluster.audit_offset()
    # In the cluster the chart sets GPUPOOL_NAMESPACE from the pod's namespace; here, by hand.
    with running_operator(
        cluster,
        tmp_path,
        kubeconfig=str(kubeconfig),
        resync_seconds=5,
        extra_env={"GPUPOOL_NAMESPACE": namespace},
    ) as operator:
        # Prometheus credentials from a Secret of the release namespace, which the chart's Role
        # lets the operator read (the Prometheus itself is absent: unreachable, not unauthorised).
        cluster.kubectl(
            "create", "secret", "generic", "prometheus-auth", "-n", namespace,
            "--from-literal=username=autoscaler", "--from-literal=password=s3cret",
        )  # fmt: skip
        prometheus = {"url": "http://127.0.0.1:9", "basicAuth": {"secretName": "prometheus-auth"}}
        cluster.kubectl(
            "patch", "inferencepool.gpupool.io", pool, "--type=merge",
            "-p", json.dumps({"spec": {"prometheus": prometheus}}),
        )  # fmt: skip
        models = [
            {
                "apiVersion": "gpupool.io/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "model": {"name": "llama-3.1-8b"},
                    "pool": pool,
                    "traffic": {"peakQps": 1},
                    "replicas": 1,
                    "engine": {"type": engine},
                },
            }
            for name, engine in (("chat", "vllm"), ("batch", "triton"))
        ]
        autoscaled = {
            "apiVersion": "gpupool.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "auto", "namespace": namespace},
            "spec": {
                "model": {"name": "llama-3.1-8b"},
                "pool": pool,
                "traffic": {"peakQps": 1},
                "scaling": {"minReplicas": 1, "maxReplicas": 2},
                "autoscaling": {"enabled": True, "evaluationIntervalSeconds": 2},
            },
        }
        cluster.apply([*models, autoscaled])
        for name in ("chat", "batch"):
            md = wait_for(
                f"{name} Available",
                lambda n=name: (
                    condition(maybe(cluster, "mdep", n, "-n", namespace), "Ready").get("reason")
                    == "Available"
                    and maybe(cluster, "mdep", n, "-n", namespace)
                ),
                timeout=90,
            )
            assert md["status"]["plan"]["tensorParallel"] == 1
            assert md["status"]["readyReplicas"] == 1
            for kind in ("deployment", "service"):
                child = cluster.get_json(kind, name, "-n", namespace)
                assert child["metadata"]["ownerReferences"][0]["uid"] == md["metadata"]["uid"]
        # The autoscaler read the Secret (a refused read would say PrometheusSecretMissing) and
        # then found no Prometheus.
        metrics_condition = wait_for(
            "the autoscaled model's MetricsAvailable",
            lambda: condition(maybe(cluster, "mdep", "auto", "-n", namespace), "MetricsAvailable"),
            timeout=60,
        )
        assert (metrics_condition["status"], metrics_condition["reason"]) == (
            "False",
            "PrometheusUnreachable",
        )
        configmaps = cluster.get_json("configmap", "-n", namespace, "-l", "gpupool.io/model-deployment=batch")
        assert len(configmaps["items"]) == 1
        # The resync recounts the pool once both models' pods hold their accelerators.
        pool_obj = wait_for(
            "pool status counting both models",
            lambda: (
                (
                    (maybe(cluster, "inferencepool.gpupool.io", pool) or {})
                    .get("status", {})
                    .get("accelerators")
                    or {}
                ).get("allocated", 0)
                >= 2
                and maybe(cluster, "inferencepool.gpupool.io", pool)
            ),
            timeout=30,
        )
        assert condition(pool_obj, "Ready")["status"] == "True"
        assert pool_obj["status"]["nodes"] >= 1
        for tier in pool_obj["spec"]["tiers"]:
            pc = cluster.get_json("priorityclass", f"gpupool-{pool}-{tier['name'].lower()}")
            assert pc["metadata"]["ownerReferences"][0]["uid"] == pool_obj["metadata"]["uid"]
        events = cluster.get_json("events", "-n", namespace, "--field-selector", "involvedObject.name=chat")[
            "items"
        ]
        assert any(e["reason"] == "Available" and e["reportingComponent"] == "gpupool" for e in events)
        # Let a few resyncs run, then look for anything the API server refused.
        wait_for("two resyncs", lambda: operator.metrics().count("gpupool_reconcile_total{") >= 1, timeout=15)
        log = operator.log_path.read_text()
    assert forbidden_since(cluster.audit_log, offset, user) == []
    refusals = [line for line in log.splitlines() if "forbidden" in line.lower() or " 403" in line]
    assert refusals == [], "\n".join(refusals[:5])


@pytest.mark.parametrize(
    ("verb", "allowed"),
    [("get", True), ("create", True), ("patch", True), ("delete", True), ("list", False), ("watch", False)],
)
def test_chart_service_account_manages_leader_worker_sets(
    cluster: Cluster, rbac_release: tuple[str, str], verb: str, allowed: bool
) -> None:
    """The optional LeaderWorkerSet kind, asked of the API server by a SubjectAccessReview:
    `kubectl auth can-i` cannot name a resource whose CRD the cluster lacks."""
    namespace, account = rbac_release
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{namespace}:{account}",
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ],
            "resourceAttributes": {
                "group": "leaderworkerset.x-k8s.io",
                "resource": "leaderworkersets",
                "verb": verb,
                "namespace": "any-namespace",
            },
        },
    }
    result = cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review))
    assert bool(json.loads(result.stdout)["status"].get("allowed")) is allowed


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("patch", "modeldeployments.gpupool.io/status", True),
        ("watch", "deployments.apps", True),
        ("create", "priorityclasses.scheduling.k8s.io", True),
        ("create", "events", True),
        ("get", "secrets", False),
        ("list", "secrets", False),
        ("watch", "secrets", False),
        ("delete", "namespaces", False),
        ("list", "namespaces", True),
        ("list", "services", True),
        ("list", "configmaps", True),
        ("patch", "namespaces", False),
        ("create", "resourcequotas", True),
        ("delete", "resourcequotas", True),
        ("watch", "pods", True),
        ("patch", "modeldeployments.gpupool.io", False),
        ("delete", "deployments.apps", True),
        ("delete", "services", True),  # the versions' Services of a canary behind a route
        ("patch", "pods", True),
        ("delete", "pods", False),
        ("create", "pods", False),
        ("update", "pods", False),
        ("create", "statefulsets.apps", False),
        ("create", "jobs.batch", True),
        ("delete", "persistentvolumeclaims", True),
        ("create", "persistentvolumes", False),
        ("create", "cronjobs.batch", False),
        ("patch", "nodes", False),
        ("create", "customresourcedefinitions.apiextensions.k8s.io", False),
        ("create", "clusterroles.rbac.authorization.k8s.io", False),
        ("create", "rolebindings.rbac.authorization.k8s.io", False),
        ("create", "serviceaccounts/token", False),
        ("get", "leases.coordination.k8s.io", False),
        ("create", "networkpolicies.networking.k8s.io", True),
        ("delete", "networkpolicies.networking.k8s.io", True),
        ("watch", "networkpolicies.networking.k8s.io", False),
        ("patch", "poddisruptionbudgets.policy", True),
        ("delete", "poddisruptionbudgets.policy", True),
        ("create", "pods/eviction", False),
        ("patch", "httproutes.gateway.networking.k8s.io", True),
        ("list", "httproutes.gateway.networking.k8s.io", True),
        ("get", "gateways.gateway.networking.k8s.io", True),
        ("list", "gateways.gateway.networking.k8s.io", False),
        ("patch", "gateways.gateway.networking.k8s.io", False),
        ("create", "gatewayclasses.gateway.networking.k8s.io", False),
        ("patch", "inferencepools.inference.networking.k8s.io", True),
        ("list", "inferencepools.inference.networking.k8s.io", True),
        ("delete", "inferencepools.inference.networking.k8s.io", True),
        ("patch", "inferenceobjectives.inference.networking.x-k8s.io", True),
        ("delete", "inferenceobjectives.inference.networking.x-k8s.io", True),
        ("watch", "inferenceobjectives.inference.networking.x-k8s.io", False),
    ],
)
def test_chart_service_account_can_do_only_its_job(
    cluster: Cluster, helm: Any, rbac_release: tuple[str, str], verb: str, resource: str, allowed: bool
) -> None:
    namespace, account = rbac_release
    # `kubectl auth can-i` names only kinds the API server serves.
    if resource.endswith(".gateway.networking.k8s.io"):
        install_gateway_api(cluster)
    if ".inference.networking." in resource:
        install_inference_extension(cluster)
    kind, _, subresource = resource.partition("/")
    result = cluster.kubectl(
        "auth",
        "can-i",
        verb,
        kind,
        "--all-namespaces",
        *([f"--subresource={subresource}"] if subresource else []),
        f"--as=system:serviceaccount:{namespace}:{account}",
        check=False,
    )
    assert (result.returncode == 0) is allowed, f"{verb} {resource}: {result.stdout.strip()}"


@pytest.mark.parametrize(
    ("verb", "where", "allowed"),
    [
        ("get", "release", True),
        ("list", "release", False),
        ("watch", "release", False),
        ("create", "release", False),
        ("patch", "release", False),
        ("delete", "release", False),
        ("get", "default", False),
        ("get", "kube-system", False),
    ],
)
def test_chart_service_account_reads_secrets_by_name_in_its_namespace_only(
    cluster: Cluster, rbac_release: tuple[str, str], verb: str, where: str, allowed: bool
) -> None:
    """Prometheus credentials live in the operator's namespace; every other namespace's Secrets,
    and listing or watching them anywhere, stay out of reach."""
    namespace, account = rbac_release
    result = cluster.kubectl(
        "auth",
        "can-i",
        verb,
        "secrets",
        "-n",
        namespace if where == "release" else where,
        f"--as=system:serviceaccount:{namespace}:{account}",
        check=False,
    )
    assert (result.returncode == 0) is allowed, f"{verb} secrets in {where}: {result.stdout.strip()}"


@pytest.mark.parametrize(
    ("verb", "lease", "where", "allowed"),
    [
        ("get", "own", "release", True),
        ("update", "own", "release", True),
        ("create", "any", "release", True),
        ("update", "other", "release", False),
        ("delete", "own", "release", False),
        ("list", "any", "release", False),
        ("update", "own", "default", False),
        ("create", "any", "kube-system", False),
    ],
)
def test_chart_service_account_renews_only_its_own_lease(
    cluster: Cluster, rbac_release: tuple[str, str], verb: str, lease: str, where: str, allowed: bool
) -> None:
    """Leader election: its one Lease, by name, in its own namespace; no other Lease anywhere."""
    namespace, account = rbac_release
    name = {"own": f"leases/{account}", "other": "leases/kube-scheduler", "any": "leases"}[lease]
    result = cluster.kubectl(
        "auth",
        "can-i",
        verb,
        name.replace("leases", "leases.coordination.k8s.io", 1),
        "-n",
        namespace if where == "release" else where,
        f"--as=system:serviceaccount:{namespace}:{account}",
        check=False,
    )
    assert (result.returncode == 0) is allowed, f"{verb} {name} in {where}: {result.stdout.strip()}"


@pytest.fixture(scope="module")
def rbac_release(cluster: Cluster, helm: Any, crds: None) -> Iterator[tuple[str, str]]:
    """Only the ServiceAccount and RBAC objects of a rendered release, for `kubectl auth can-i`."""
    namespace = f"chart-rbac-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    rendered = helm(
        "template",
        namespace,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "crds.enabled=false",
        "--show-only",
        "templates/serviceaccount.yaml",
        "--show-only",
        "templates/rbac.yaml",
    ).stdout
    cluster.kubectl("apply", "-f", "-", input=rendered)
    try:
        yield namespace, f"{namespace}-gpupool"
    finally:
        cluster.kubectl("delete", "-f", "-", "--wait=false", input=rendered, check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def operator_namespace(cluster: Cluster, crds: None) -> Iterator[str]:
    """The namespace the kustomize overlays install into; created (and removed) here if absent."""
    name = "gpupool-system"
    created = cluster.kubectl("create", "namespace", name, check=False).returncode == 0
    yield name
    if created:
        cluster.kubectl("delete", "namespace", name, "--wait=true", "--timeout=120s", check=False)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_kustomize_overlay_applies(cluster: Cluster, operator_namespace: str, overlay: Path) -> None:
    result = cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-k",
        str(overlay),
        "-o",
        "json",
        check=False,
    )
    assert result.returncode == 0, result.stderr
    applied = json.loads(result.stdout)
    items = applied["items"] if applied.get("kind") == "List" else [applied]
    kinds = sorted({o["kind"] for o in items})
    assert {"CustomResourceDefinition", "ClusterRole", "Deployment", "ServiceAccount"} <= set(kinds)
    deployment = next(o for o in items if o["kind"] == "Deployment")
    assert deployment["metadata"]["namespace"] == operator_namespace


def test_samples_kustomization_applies_with_sync_waves(cluster: Cluster, namespace: str) -> None:
    result = cluster.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "-k",
        str(ROOT / "manifests" / "samples"),
        "-n",
        namespace,
        "-o",
        "json",
    )
    applied = json.loads(result.stdout)
    waves = {
        (o["kind"], o["metadata"]["name"]): int(o["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
        for o in applied["items"]
    }
    pools = [w for (kind, _), w in waves.items() if kind == "InferencePool"]
    models = [w for (kind, _), w in waves.items() if kind == "ModelDeployment"]
    assert len(pools) == 2 and len(models) == 5
    assert max(pools) < min(models)
