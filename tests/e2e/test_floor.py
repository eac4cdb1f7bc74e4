"""The benchmark's floor (bench/floor) against the local control plane, on a handful of models.

The floor is what `make bench` states the operator's convergence against, so it must make exactly
the writes it claims: per new model, the rendered Deployment, Service, PodDisruptionBudget and
NetworkPolicy applied with the model's
uid in their owner references, one status apply for the model's generation, one event, and
nothing for a model it was given nothing for.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import fresh_namespaces, unique_name
from operator_process import audit_writes, wait_for

from gpupool.controller.kube import APPLIED_HASH

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "floor"))
import floor  # noqa: E402

pytestmark = pytest.mark.e2e

POOL = ROOT / "manifests" / "samples" / "pool-nvidia-h100.yaml"
MODELS = 4


@pytest.fixture
def namespace(cluster: Any) -> Iterator[str]:
    cluster.install_crds()
    with fresh_namespaces(cluster, unique_name("floor"), models=False) as (name,):
        yield name


def test_floor_makes_the_writes_of_each_new_model_and_nothing_else(
    cluster: Any, namespace: str, tmp_path: Path
) -> None:
    binary = floor.build()
    bodies = [floor.model_body(f"m{i}", 0, namespace) for i in range(MODELS)]
    rendered = floor.render_models(bodies, yaml.safe_load(POOL.read_text()))
    process = floor.FloorProcess(binary, str(cluster.kubeconfig), rendered, [namespace], tmp_path, workers=2)
    process.start()
    try:
        offset = cluster.audit_offset()
        # One model the floor was given nothing for: it must stay untouched.
        cluster.apply([*bodies, floor.model_body("unrendered", 0, namespace)])

        def converged() -> list[dict[str, Any]] | None:
            items = cluster.get_json("modeldeployments", "-n", namespace)["items"]
            done = [
                m
                for m in items
                if (m.get("status") or {}).get("observedGeneration") == m["metadata"]["generation"]
            ]
            return done if len(done) == MODELS else None

        stored = wait_for("the floor's status on every rendered model", converged, timeout=60)

        def model_events() -> list[dict[str, Any]] | None:
            # The models' own: the disruption controller tells of budgets over no pods (NoPods).
            items = [
                e
                for e in cluster.get_json("events", "-n", namespace)["items"]
                if e["involvedObject"].get("kind") == "ModelDeployment"
            ]
            return items if len(items) >= MODELS else None

        events = wait_for("one event per model", model_events)
    finally:
        summary = process.stop()

    for md in stored:
        name, uid = md["metadata"]["name"], md["metadata"]["uid"]
        want = rendered[f"{namespace}/{name}"]
        for obj in want["objects"]:
            got = cluster.get_json(obj["kind"].lower(), "-n", namespace, obj["metadata"]["name"])
            assert [o["uid"] for o in got["metadata"]["ownerReferences"]] == [uid]
            assert (
                got["metadata"]["annotations"][APPLIED_HASH] == obj["metadata"]["annotations"][APPLIED_HASH]
            )
            selector = "podSelector" if obj["kind"] == "NetworkPolicy" else "selector"
            assert got["spec"][selector] == obj["spec"][selector]
        assert md["status"]["plan"] == want["status"]["plan"]
        assert {c["observedGeneration"] for c in md["status"]["conditions"]} == {md["metadata"]["generation"]}
    assert sorted(e["involvedObject"]["name"] for e in events) == sorted(
        b["metadata"]["name"] for b in bodies
    )
    assert {e["reason"] for e in events} == {"Planned"}

    assert cluster.get_json("modeldeployments", "-n", namespace, "unrendered").get("status") is None
    assert cluster.kubectl("get", "deployment", "-n", namespace, "unrendered", check=False).returncode != 0

    # Per model: four applies, one status apply, one event; no reads besides the watch.
    writes = audit_writes(cluster.audit_log, offset, floor.USER_AGENT)
    by_kind = sorted(
        (w["verb"], w["objectRef"]["resource"], w["objectRef"].get("subresource", "")) for w in writes
    )
    assert by_kind == sorted(
        [
            ("patch", "deployments", ""),
            ("patch", "services", ""),
            ("patch", "poddisruptionbudgets", ""),
            ("patch", "networkpolicies", ""),
            ("patch", "modeldeployments", "status"),
        ]
        * MODELS
        + [("create", "events", "")] * MODELS
    )
    assert summary["handled"] == MODELS
    assert summary["requests"].get("PATCH") == 5 * MODELS
    assert summary["requests"].get("POST") == MODELS
    # The informer's list comes as the first events of its watch (client-go's watch list): no GETs.
    assert set(summary["requests"]) == {"WATCH", "PATCH", "POST"}
