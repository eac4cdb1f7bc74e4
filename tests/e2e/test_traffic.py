"""A model's disruption budget, network policy, Gateway API route and Gateway API Inference
Extension objects, against the real API server.

The local cluster runs no network plugin, no Gateway controller and no endpoint picker: these tests
prove what the operator writes (and that the API server accepts it, schema and CEL included), not
that packets are dropped or routed. The Gateway API CRDs of the pinned release come from
tools/localcluster/gateway-api.sh, the Inference Extension's from
tools/localcluster/inference-extension.sh; the module starts without either to see the operator do
without.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import Cluster, h100_pool_spec
from harness import (
    INFERENCE_EXTENSION_CRDS,
    ROUTE_CRD,
    condition,
    install_gateway_api,
    install_inference_extension,
    model_manifest,
)
from operator_process import OperatorProcess, audit_writes, wait_for

ROOT = Path(__file__).resolve().parents[2]
POOL = "traffic-h100"
# Qualified: gpupool's own cluster-scoped kind is called InferencePool too.
EXTENSION_POOL = "inferencepools.inference.networking.k8s.io"
OBJECTIVE = "inferenceobjectives.inference.networking.x-k8s.io"

pytestmark = pytest.mark.e2e


def maybe(cluster: Cluster, *args: str) -> Any:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    cluster.install_crds()
    # Start without the Gateway API and its Inference Extension, whatever an earlier run left.
    cluster.kubectl(
        "delete",
        "crd",
        ROUTE_CRD,
        *INFERENCE_EXTENSION_CRDS,
        "--ignore-not-found",
        "--wait=true",
        "--timeout=60s",
    )
    cluster.apply(
        {
            "apiVersion": "gpupool.io/v1alpha1",
            "kind": "InferencePool",
            "metadata": {"name": POOL},
            "spec": h100_pool_spec(),
        }
    )
    process = OperatorProcess(str(cluster.kubeconfig), tmp_path_factory.mktemp("operator"))
    process.start()
    try:
        yield process
    finally:
        process.stop()
        cluster.kubectl("delete", "inferencepool.gpupool.io", POOL, "--ignore-not-found", "--wait=false")


@pytest.fixture(scope="module")
def namespace(cluster: Cluster, operator: OperatorProcess) -> Iterator[str]:
    name = f"traffic-{uuid.uuid4().hex[:6]}"
    cluster.create_model_namespace(name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=true", "--timeout=120s", check=False)


def model(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return model_manifest(name, namespace, pool=POOL, replicas=1, **spec)


def owned_by(obj: dict[str, Any], md: dict[str, Any]) -> bool:
    owners = obj["metadata"].get("ownerReferences") or []
    return [(o["kind"], o["uid"], o.get("controller")) for o in owners] == [
        ("ModelDeployment", md["metadata"]["uid"], True)
    ]


def routed(cluster: Cluster, namespace: str, name: str, reason: str) -> Any:
    md = maybe(cluster, "mdep", name, "-n", namespace)
    return condition(md, "Routed").get("reason") == reason and md


def test_budget_and_policy_are_owned_and_no_route_is_sent_without_the_gateway_api(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(model("chat", namespace, routing={"parentRefs": [{"name": "public"}]}))
    md = wait_for(
        "Routed=False GatewayAPIMissing", lambda: routed(cluster, namespace, "chat", "GatewayAPIMissing")
    )
    assert condition(md, "Routed")["status"] == "False"
    assert "install the Gateway API CRDs" in condition(md, "Routed")["message"]
    # Nothing else is broken: the objects that exist are applied, the model is not Rejected.
    assert condition(md, "Degraded").get("reason") != "Rejected"
    pdb = wait_for("the budget", lambda: maybe(cluster, "pdb", "chat", "-n", namespace))
    policy = wait_for("the policy", lambda: maybe(cluster, "networkpolicy", "chat", "-n", namespace))
    assert owned_by(pdb, md) and owned_by(policy, md)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == {"matchLabels": {"gpupool.io/model-deployment": "chat"}}
    # The disruption controller counts the model's instance (its Deployment's scale).
    wait_for(
        "the budget counting the instance",
        lambda: (
            (maybe(cluster, "pdb", "chat", "-n", namespace) or {}).get("status", {}).get("expectedPods") == 1
        ),
    )
    gateway_rule = policy["spec"]["ingress"][1]
    assert gateway_rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": "public"}},
        }
    ]


def test_route_is_applied_once_the_gateway_api_is_installed_and_routed_once_the_gateway_exists(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    install_gateway_api(cluster)
    md = wait_for(
        "Routed=False GatewayNotFound", lambda: routed(cluster, namespace, "chat", "GatewayNotFound")
    )
    assert f"{namespace}/public" in condition(md, "Routed")["message"]
    route = wait_for("the route", lambda: maybe(cluster, "httproute", "chat", "-n", namespace))
    assert owned_by(route, md)
    [rule] = route["spec"]["rules"]
    assert rule["backendRefs"][0]["name"] == "chat" and rule["backendRefs"][0]["port"] == 8000
    cluster.apply(
        [
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "metadata": {"name": f"class-{namespace}"},
                "spec": {"controllerName": "example.com/no-controller"},
            },
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "metadata": {"name": "public", "namespace": namespace},
                "spec": {
                    "gatewayClassName": f"class-{namespace}",
                    "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
                },
            },
        ]
    )
    try:
        md = wait_for("Routed=True", lambda: routed(cluster, namespace, "chat", "Routed"))
        assert condition(md, "Routed")["status"] == "True"
        # Settled: two resyncs later, not one write to the budget, policy or route.
        wait_for(
            "Ready",
            lambda: condition(maybe(cluster, "mdep", "chat", "-n", namespace), "Ready")["status"] == "True",
        )
        offset = cluster.audit_offset()
        looks = operator.resync_looks()
        wait_for("two resyncs", lambda: operator.resync_looks() >= looks + 2, timeout=30)
        writes = [
            w
            for w in audit_writes(cluster.audit_log, offset)
            if (w.get("objectRef") or {}).get("resource")
            in {"poddisruptionbudgets", "networkpolicies", "httproutes"}
        ]
        assert writes == [], [w["requestURI"] for w in writes]
    finally:
        cluster.kubectl("delete", "gatewayclass", f"class-{namespace}", "--ignore-not-found", "--wait=false")


def backend(route: dict[str, Any]) -> tuple[str, str, str]:
    [rule] = route["spec"]["rules"]
    [ref] = rule["backendRefs"]
    return ref.get("group", ""), ref["kind"], ref["name"]


def test_inference_extension_waits_for_its_kinds_then_is_applied_owned_settled_and_pruned(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    routing = {"parentRefs": [{"name": "public"}]}
    cluster.apply(model("chat", namespace, routing={**routing, "inferencePool": {}}))
    md = wait_for(
        "Routed=False InferenceExtensionMissing",
        lambda: routed(cluster, namespace, "chat", "InferenceExtensionMissing"),
    )
    assert "install the Gateway API Inference Extension CRDs" in condition(md, "Routed")["message"]
    # Meanwhile the route sends to the Service.
    route = maybe(cluster, "httproute", "chat", "-n", namespace)
    assert backend(route) == ("", "Service", "chat")

    install_inference_extension(cluster)
    md = wait_for(
        "Routed=False EndpointPickerNotFound",
        lambda: routed(cluster, namespace, "chat", "EndpointPickerNotFound"),
    )
    assert "chat-epp does not exist" in condition(md, "Routed")["message"]
    # The picker is the user's to run; its Service is enough for the condition.
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "chat-epp", "namespace": namespace},
            "spec": {
                "selector": {"inferencepool": "chat-epp"},
                "ports": [{"name": "grpc-ext-proc", "port": 9002, "protocol": "TCP"}],
            },
        }
    )
    md = wait_for("Routed=True", lambda: routed(cluster, namespace, "chat", "Routed"))
    assert "InferencePool chat" in condition(md, "Routed")["message"]
    pool = maybe(cluster, EXTENSION_POOL, "chat", "-n", namespace)
    objective = maybe(cluster, OBJECTIVE, "chat", "-n", namespace)
    assert owned_by(pool, md) and owned_by(objective, md)
    assert pool["spec"]["selector"] == {"matchLabels": {"gpupool.io/model-deployment": "chat"}}
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    picker = pool["spec"]["endpointPickerRef"]
    assert (picker["name"], picker["port"], picker["failureMode"]) == (
        "chat-epp",
        {"number": 9002},
        "FailClose",
    )
    # The default tier P1 ranks above P2 only.
    assert objective["spec"] == {
        "poolRef": {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "chat"},
        "priority": 1,
    }
    route = wait_for(
        "the route sending to the InferencePool",
        lambda: (
            (r := maybe(cluster, "httproute", "chat", "-n", namespace))
            and backend(r)[1] == "InferencePool"
            and r
        ),
    )
    assert backend(route) == ("inference.networking.k8s.io", "InferencePool", "chat")
    [rule] = route["spec"]["rules"]
    assert {"name": "x-gateway-inference-objective", "value": "chat"} in rule["filters"][0][
        "requestHeaderModifier"
    ]["set"]
    # The picker reads the engines' metrics: its pods join the Gateway's proxies in the policy.
    policy = maybe(cluster, "networkpolicy", "chat", "-n", namespace)
    assert {"podSelector": {"matchLabels": {"inferencepool": "chat-epp"}}} in policy["spec"]["ingress"][1][
        "from"
    ]

    # Settled: two resyncs later, not one write to the Inference Extension's objects or the route.
    offset = cluster.audit_offset()
    looks = operator.resync_looks()
    wait_for("two resyncs", lambda: operator.resync_looks() >= looks + 2, timeout=30)
    writes = [
        w
        for w in audit_writes(cluster.audit_log, offset)
        if ((w.get("objectRef") or {}).get("apiGroup"), (w.get("objectRef") or {}).get("resource"))
        in {
            ("inference.networking.k8s.io", "inferencepools"),
            ("inference.networking.x-k8s.io", "inferenceobjectives"),
            ("gateway.networking.k8s.io", "httproutes"),
        }
    ]
    assert writes == [], [w["requestURI"] for w in writes]

    # Turned off: both go, and the route sends to the Service again.
    cluster.apply(model("chat", namespace, routing=routing))
    wait_for(
        "the InferencePool deleted", lambda: maybe(cluster, EXTENSION_POOL, "chat", "-n", namespace) is None
    )
    wait_for("the objective deleted", lambda: maybe(cluster, OBJECTIVE, "chat", "-n", namespace) is None)
    wait_for(
        "the route back on the Service",
        lambda: backend(maybe(cluster, "httproute", "chat", "-n", namespace)) == ("", "Service", "chat"),
    )


def test_the_api_server_refuses_an_inference_pool_without_a_route(cluster: Cluster, namespace: str) -> None:
    manifest = yaml.safe_dump(model("bad-extension", namespace, routing={"inferencePool": {}}))
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert "routing.inferencePool needs routing.parentRefs" in result.stderr


def test_turning_routing_and_the_policy_off_deletes_them_and_the_budget_follows_the_spec(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(
        model(
            "chat",
            namespace,
            routing={"parentRefs": []},
            access={"networkPolicy": False},
            disruption={"maxUnavailable": "50%"},
        )
    )
    wait_for("the route deleted", lambda: maybe(cluster, "httproute", "chat", "-n", namespace) is None)
    wait_for("the policy deleted", lambda: maybe(cluster, "networkpolicy", "chat", "-n", namespace) is None)
    wait_for(
        "the budget at 50%",
        lambda: (
            (maybe(cluster, "pdb", "chat", "-n", namespace) or {}).get("spec", {}).get("maxUnavailable")
            == "50%"
        ),
    )
    md = wait_for(
        "Routed gone",
        lambda: (m := maybe(cluster, "mdep", "chat", "-n", namespace)) and not condition(m, "Routed") and m,
    )
    assert md["spec"]["disruption"] == {"maxUnavailable": "50%"}
    # The garbage collector removes what is left with the model.
    cluster.kubectl("delete", "mdep", "chat", "-n", namespace, "--wait=true", "--timeout=60s")
    wait_for("the budget collected", lambda: maybe(cluster, "pdb", "chat", "-n", namespace) is None)


@pytest.mark.parametrize(
    ("disruption", "message"),
    [
        ({"maxUnavailable": "150%"}, "disruption.maxUnavailable must be"),
        ({"maxUnavailable": -1}, "disruption.maxUnavailable must be"),
        ({"maxUnavailable": "one"}, "disruption.maxUnavailable must be"),
    ],
)
def test_the_api_server_refuses_a_bad_budget(
    cluster: Cluster, namespace: str, disruption: dict[str, Any], message: str
) -> None:
    manifest = yaml.safe_dump(model("bad-budget", namespace, disruption=disruption))
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_every_rendered_object_passes_server_side_dry_run(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    # Both already are when the module runs in order; alone, this test installs them.
    install_gateway_api(cluster)
    install_inference_extension(cluster)
    pool_file = tmp_path / "pool.yaml"
    pool_file.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "gpupool.io/v1alpha1",
                "kind": "InferencePool",
                "metadata": {"name": POOL},
                "spec": h100_pool_spec(
                    access={
                        "prometheus": [{"namespace": "monitoring", "podSelector": {"app": "prometheus"}}]
                    },
                    routing={"parentRefs": [{"name": "pool-gateway", "namespace": "gateways"}]},
                ),
            }
        )
    )
    variants = {
        "plain": {},
        "routed": {
            "routing": {
                "parentRefs": [
                    {"name": "public", "namespace": "gateways", "sectionName": "https", "port": 443}
                ],
                "hostnames": ["chat.example.com", "*.models.example.com"],
                "pathPrefix": "/chat/v1",
                "requestTimeoutSeconds": 0,
            },
            "access": {
                "clients": [
                    {"namespace": "web"},
                    {"namespaceSelector": {"team": "search"}, "podSelector": {"app": "rag"}},
                    {"podSelector": {"role": "client"}},
                ],
                "gateway": [{"namespace": "envoy-gateway-system"}],
            },
            "disruption": {"maxUnavailable": "25%"},
        },
        "triton": {"model": {"name": "glm-4-9b"}, "engine": {"type": "triton"}, "access": {"clients": []}},
        "inference-extension": {
            "tier": "P0",
            "routing": {
                "parentRefs": [{"name": "public", "namespace": "gateways"}],
                "pathPrefix": "/chat/v1",
                "inferencePool": {
                    "endpointPicker": {"name": "shared-epp", "port": 9102, "failureMode": "FailOpen"}
                },
            },
        },
    }
    kinds: set[str] = set()
    for name, spec in variants.items():
        md_file = tmp_path / f"{name}.yaml"
        md_file.write_text(yaml.safe_dump(model(f"dry-{name}", namespace, **spec)))
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "gpupool",
                "render",
                "-f",
                str(md_file),
                "--pool",
                str(pool_file),
                "-n",
                namespace,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        docs = [d for d in yaml.safe_load_all(out.stdout) if d]
        kinds |= {d["kind"] for d in docs}
        result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=out.stdout, check=False)
        assert result.returncode == 0, f"{name}: {result.stderr}"
    assert {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "HTTPRoute",
        "InferencePool",
        "InferenceObjective",
    } <= kinds
