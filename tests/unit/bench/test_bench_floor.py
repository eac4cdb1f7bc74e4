"""The Python side of the benchmark's floor: what it is given to write, and how the benchmark
counts requests."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.controller.kube import APPLIED_HASH, applied_hash
from gpupool.manifests import parse_object
from gpupool.render import render_model_deployment
from gpupool.services.modeldeployment import desired_replicas, plan_model
from gpupool.services.traffic import traffic_objects

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bench" / "floor"))
sys.path.insert(0, str(ROOT / "bench"))
import floor  # noqa: E402
import operator_scale  # noqa: E402

POOL = yaml.safe_load((ROOT / "manifests" / "samples" / "pool-nvidia-h100.yaml").read_text())


def body(namespace: str, name: str, replicas: int = 0) -> dict[str, Any]:
    return floor.model_body(name, replicas, namespace)


def without_owner_and_hash(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"].pop("ownerReferences", None)
    annotations = out["metadata"].get("annotations", {})
    annotations.pop(APPLIED_HASH, None)
    if not annotations:
        out["metadata"].pop("annotations", None)
    return out


def test_the_floor_is_given_what_gpupool_render_prints_for_each_model() -> None:
    rendered = floor.render_models([body("ns", "a"), body("ns", "b", replicas=2)], POOL)
    assert sorted(rendered) == ["ns/a", "ns/b"]
    pool = parse_object(InferencePool, POOL)
    for key, replicas in (("ns/a", 0), ("ns/b", 2)):
        md = parse_object(ModelDeployment, body("ns", key.split("/")[1], replicas))
        _, plan = plan_model(md, pool)
        printed = render_model_deployment(md, pool, plan, desired_replicas(md, plan))
        printed += traffic_objects(md, [pool])
        objects = rendered[key]["objects"]
        assert [without_owner_and_hash(o) for o in objects] == printed
        assert [o["kind"] for o in objects] == [
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy",
        ]


def test_the_floor_applies_what_the_operator_applies() -> None:
    # The operator stamps the digest of each object before the stamp; so does what the floor sends.
    (rendered,) = floor.render_models([body("ns", "a")], POOL).values()
    for obj in rendered["objects"]:
        unstamped = copy.deepcopy(obj)
        annotations = unstamped["metadata"]["annotations"]
        stamp = annotations.pop(APPLIED_HASH)
        if not annotations:
            del unstamped["metadata"]["annotations"]
        assert stamp == applied_hash(unstamped)
        owners = obj["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [
            ("ModelDeployment", "a", floor.PLACEHOLDER_UID)
        ]


def test_the_floor_is_given_a_status_for_generation_one_and_one_event() -> None:
    (rendered,) = floor.render_models([body("ns", "a")], POOL).values()
    status = rendered["status"]
    assert status["observedGeneration"] == 1
    assert status["plan"]["accelerator"] == "H100-80GB"
    assert {c["type"] for c in status["conditions"]} >= {"Planned", "Ready"}
    assert rendered["event"]["type"] == "Normal"
    assert rendered["event"]["reason"] == "Planned"
    assert rendered["event"]["message"].startswith("TP=1")


def test_a_model_that_cannot_be_served_is_refused_before_the_floor_runs() -> None:
    bad = body("ns", "x")
    bad["spec"]["model"] = {"name": "llama-3.1-405b"}
    bad["spec"]["maxModelLen"] = 131072
    # A forced size narrower than a node keeps it on one node, which does not hold it.
    bad["spec"]["engine"] = {**bad["spec"].get("engine", {}), "tensorParallel": 4}
    try:
        floor.render_models([bad], POOL)
    except floor.FloorError as err:
        assert "ns/x" in str(err)
    else:
        raise AssertionError("a model with nothing to apply was rendered for the floor")


def test_reads_count_single_gets_and_cluster_lists_of_what_a_reconcile_reads() -> None:
    def line(resource: str, verb: str, value: int, scope: str = "resource", **labels: str) -> str:
        fields = {"code": "200", "resource": resource, "scope": scope, "subresource": "", "verb": verb}
        fields.update(labels)
        return "apiserver_request_total{" + ",".join(f'{k}="{v}"' for k, v in fields.items()) + f"}} {value}"

    metrics = "\n".join(
        [
            "# HELP apiserver_request_total Counter of apiserver requests",
            line("deployments", "GET", 12),
            line("deployments", "GET", 3, code="404"),
            line("deployments", "LIST", 40, scope="namespace"),  # the benchmark's own polling
            line("modeldeployments", "GET", 7, subresource="status"),
            line("leases", "GET", 99),  # leader election
            line("modeldeployments", "GET", 5),
            line("nodes", "LIST", 2, scope="cluster"),
            line("nodes", "WATCH", 1, scope="cluster"),
        ]
    )
    assert operator_scale.reads(metrics) == {
        "GET deployments": 15,
        "GET modeldeployments": 5,
        "LIST nodes": 2,
    }


def test_writes_are_counted_by_verb_and_resource() -> None:
    entries = [
        {"verb": "patch", "objectRef": {"resource": "deployments", "namespace": "n", "name": "a"}},
        {"verb": "patch", "objectRef": {"resource": "deployments", "namespace": "n", "name": "b"}},
        {
            "verb": "patch",
            "objectRef": {
                "resource": "modeldeployments",
                "subresource": "status",
                "namespace": "n",
                "name": "a",
            },
        },
        {"verb": "create", "objectRef": {"resource": "events", "namespace": "n", "name": ""}},
    ]
    lines = [operator_scale.describe_write(e) for e in entries]
    assert lines[2] == "patch modeldeployments/status n/a"
    assert operator_scale.writes_by_kind(lines) == {
        "create events": 1,
        "patch deployments": 2,
        "patch modeldeployments/status": 1,
    }
