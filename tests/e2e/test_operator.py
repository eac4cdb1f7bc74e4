"""The operator against a real kube-apiserver, controller-manager and scheduler (kwok nodes).

Every test works in its own namespace, which it deletes (and waits for) at the end, so that the
accelerators it used are free for the next test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import (
    SAMPLE_POOLS,
    apply_sample_pools,
    condition,
    fresh_namespaces,
    model_manifest,
    running_operator,
    unique_name,
)
from operator_process import OperatorProcess, audit_writes, wait_for

from gpupool.controller.kube import contains

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "manifests" / "samples"
MODEL_FILES = sorted(p for p in SAMPLES.glob("*.yaml") if not p.name.startswith("pool-"))
BAD = Path(__file__).parent / "bad"

pytestmark = pytest.mark.e2e


# --------------------------------------------------------------------------------------------------
# fixtures and helpers


class Kubectl:
    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    def __call__(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result: subprocess.CompletedProcess[str] = self.cluster.kubectl(*args, check=False, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self("get", *args, "-o", "json").stdout)

    def maybe(self, *args: str) -> Any:
        result = self("get", *args, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def apply(
        self, manifest: str | dict[str, Any] | list[dict[str, Any]], namespace: str | None = None
    ) -> None:
        if not isinstance(manifest, str):
            docs = manifest if isinstance(manifest, list) else [manifest]
            manifest = yaml.safe_dump_all(docs)
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        self(*args, input=manifest)


@pytest.fixture(scope="session")
def kubectl(cluster: Any) -> Kubectl:
    return Kubectl(cluster)


# Module scope: other modules run their own operator, and two must never run at once.
@pytest.fixture(scope="module")
def operator(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    cluster.install_crds()
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as process:
        apply_sample_pools(cluster)
        yield process


@pytest.fixture
def namespace(cluster: Any, operator: OperatorProcess) -> Iterator[str]:
    # Llama samples are gated models: their pods read the token from the namespace's Secret.
    with fresh_namespaces(cluster, unique_name("t")) as (name,):
        yield name


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def ready_pods(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    pods = kubectl.json("pods", "-n", namespace, "-l", f"gpupool.io/model-deployment={name}")["items"]
    return [
        p
        for p in pods
        if p["status"].get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]


def rendered(sample: Path, namespace: str) -> list[dict[str, Any]]:
    """What `gpupool render` says the operator applies for a sample."""
    docs = []
    for pool_file in SAMPLE_POOLS:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "gpupool",
                "render",
                "-f",
                str(sample),
                "--pool",
                str(pool_file),
                "-n",
                namespace,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode == 0:
            docs = [d for d in yaml.safe_load_all(out.stdout) if d]
            break
    assert docs, f"gpupool render found no pool for {sample.name}"
    return docs


# --------------------------------------------------------------------------------------------------
# tests


def test_samples_become_the_objects_gpupool_render_prints(kubectl: Kubectl, namespace: str) -> None:
    for sample in MODEL_FILES:
        kubectl("apply", "-n", namespace, "-f", str(sample))
    for sample in MODEL_FILES:
        name = load(sample)["metadata"]["name"]
        md = wait_for(
            f"{name} planned",
            lambda n=name: (
                condition(kubectl.maybe("mdep", n, "-n", namespace), "Planned").get("status") == "True"
                and kubectl.maybe("mdep", n, "-n", namespace)
            ),
        )
        uid = md["metadata"]["uid"]
        for expected in rendered(sample, namespace):
            kind, obj_name = expected["kind"], expected["metadata"]["name"]
            if kind == "Deployment":
                md = kubectl.json("mdep", name, "-n", namespace)
                # `gpupool render` knows no other workload: the operator cuts the count to what
                # the tier and the tenant allow, says so, and renders the rest the same way.
                assert md["status"]["askedReplicas"] == expected["spec"]["replicas"]
                if md["status"]["replicas"] != expected["spec"]["replicas"]:
                    placed = condition(md, "Placed")
                    assert (placed["status"], placed["reason"]) in {
                        ("False", "TierCapped"),
                        ("False", "QuotaExceeded"),
                    }, placed
                    expected["spec"]["replicas"] = md["status"]["replicas"]
            live = wait_for(
                f"{kind} {obj_name}", lambda k=kind, o=obj_name: kubectl.maybe(k, o, "-n", namespace)
            )
            owners = live["metadata"].get("ownerReferences", [])
            assert [(o["kind"], o["name"], o["uid"], o.get("controller")) for o in owners] == [
                ("ModelDeployment", name, uid, True)
            ]
            expected["metadata"].pop("ownerReferences", None)
            assert contains(live, expected), f"{kind} {obj_name} differs from `gpupool render`"


def test_real_scheduler_places_each_vendor_on_its_own_nodes(kubectl: Kubectl, namespace: str) -> None:
    nvidia = model_manifest("on-nvidia", replicas=2)
    ascend = model_manifest("on-ascend", model={"name": "qwen2.5-7b"}, pool="ascend-910b", replicas=2)
    kubectl.apply([nvidia, ascend], namespace)
    nodes = {n["metadata"]["name"]: n["metadata"]["labels"] for n in kubectl.json("nodes")["items"]}
    for name, vendor in (("on-nvidia", "nvidia"), ("on-ascend", "ascend")):
        pods = wait_for(
            f"{name} pods ready",
            lambda n=name: len(ready_pods(kubectl, namespace, n)) == 2 and ready_pods(kubectl, namespace, n),
        )
        for pod in pods:
            assert nodes[pod["spec"]["nodeName"]].get("gpu-type") == vendor
        md = wait_for(
            f"{name} Ready",
            lambda n=name: (
                condition(kubectl.maybe("mdep", n, "-n", namespace), "Ready").get("reason") == "Available"
                and kubectl.maybe("mdep", n, "-n", namespace)
            ),
        )
        assert md["status"]["readyReplicas"] == 2


def test_tp4_packs_two_instances_per_node_and_p0_preempts_p2(kubectl: Kubectl, namespace: str) -> None:
    """Fill the NVIDIA pool with TP=4 P2 instances, then let a P0 model take room from them."""
    pool = kubectl.json("inferencepool.gpupool.io", "nvidia-h100")
    total = wait_for(
        "pool capacity", lambda: kubectl.json("ipool", "nvidia-h100")["status"]["accelerators"]["total"]
    )
    fill = total // 4
    batch = model_manifest("batch", model={"name": "qwen2.5-72b"}, tier="P2", replicas=fill)
    kubectl.apply(batch, namespace)
    md = wait_for(
        "batch planned",
        lambda: (kubectl.maybe("mdep", "batch", "-n", namespace) or {}).get("status", {}).get("plan"),
    )
    assert md["tensorParallel"] == 4
    pods = wait_for(
        "pool full of P2",
        lambda: (
            len(ready_pods(kubectl, namespace, "batch")) == fill and ready_pods(kubectl, namespace, "batch")
        ),
        # The earlier tests' engine pods drain (a minute's grace) and still hold accelerators in
        # the pool's count until they are gone.
        timeout=300,
    )
    per_node = Counter(p["spec"]["nodeName"] for p in pods)
    assert set(per_node.values()) == {2}, per_node  # 8 accelerators / TP 4
    assert all(p["spec"]["priorityClassName"] == "gpupool-nvidia-h100-p2" for p in pods)
    assert pool["spec"]["tiers"][2]["preemptible"] is True

    online = model_manifest("online", model={"name": "qwen2.5-72b"}, tier="P0", replicas=2)
    kubectl.apply(online, namespace)
    wait_for("P0 instances running", lambda: len(ready_pods(kubectl, namespace, "online")) == 2, timeout=120)
    assert len(ready_pods(kubectl, namespace, "batch")) <= fill - 2
    kubectl("delete", "mdep", "online", "-n", namespace)
    wait_for(
        "P2 back to full strength", lambda: len(ready_pods(kubectl, namespace, "batch")) == fill, timeout=120
    )


def test_model_that_cannot_fit_reports_why_and_creates_nothing(kubectl: Kubectl, namespace: str) -> None:
    # Two whole nodes would hold it; a forced tensor-parallel size narrower than a node keeps it on one.
    kubectl.apply(
        model_manifest("huge", model={"name": "llama-3.1-405b"}, engine={"tensorParallel": 4}), namespace
    )
    md = wait_for(
        "DoesNotFit",
        lambda: (
            condition(kubectl.maybe("mdep", "huge", "-n", namespace), "Ready").get("reason") == "DoesNotFit"
            and kubectl.maybe("mdep", "huge", "-n", namespace)
        ),
    )
    assert condition(md, "Degraded")["status"] == "True"
    assert "GiB" in condition(md, "Degraded")["message"]
    assert kubectl.maybe("deployment", "huge", "-n", namespace) is None
    events = kubectl.json("events", "-n", namespace, "--field-selector", "involvedObject.name=huge")["items"]
    assert any(e["reason"] == "DoesNotFit" and e["type"] == "Warning" for e in events)


def test_unknown_pool_and_model_explain_themselves(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(
        [model_manifest("nopool", pool="missing"), model_manifest("nomodel", model={"name": "llama-9"})],
        namespace,
    )
    for name, reason in (("nopool", "PoolNotFound"), ("nomodel", "UnknownModel")):
        wait_for(
            reason,
            lambda n=name, r=reason: (
                condition(kubectl.maybe("mdep", n, "-n", namespace), "Degraded").get("reason") == r
            ),
        )


def test_spec_update_rolls_the_workload(kubectl: Kubectl, namespace: str) -> None:
    """RollingUpdate: a new engine argument rolls the Deployment in place. (A Canary, the default,
    would wait for its analysis: the sample pool names a Prometheus this cluster does not run;
    tests/e2e/test_rollout.py covers canaries.)"""
    rolling = {"strategy": "RollingUpdate"}
    kubectl.apply(model_manifest("roll", maxModelLen=4096, rollout=rolling), namespace)
    deployment = wait_for("deployment", lambda: kubectl.maybe("deployment", "roll", "-n", namespace))
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "4096" in args
    kubectl.apply(model_manifest("roll", maxModelLen=16384, rollout=rolling), namespace)
    rolled = wait_for(
        "rolled deployment",
        lambda: (
            "16384" in json.dumps(kubectl.json("deployment", "roll", "-n", namespace)["spec"]["template"])
            and kubectl.json("deployment", "roll", "-n", namespace)
        ),
    )
    assert rolled["metadata"]["generation"] > deployment["metadata"]["generation"]
    wait_for(
        "two replica sets",
        lambda: (
            len(kubectl.json("rs", "-n", namespace, "-l", "gpupool.io/model-deployment=roll")["items"]) >= 2
        ),
    )
    md = kubectl.json("mdep", "roll", "-n", namespace)
    assert md["spec"] == {**md["spec"], "maxModelLen": 16384}
    wait_for(
        "observed generation",
        lambda: (
            kubectl.json("mdep", "roll", "-n", namespace)["status"].get("observedGeneration")
            == md["metadata"]["generation"]
        ),
    )


def test_hand_edits_and_deletions_of_its_deployment_are_undone(kubectl: Kubectl, namespace: str) -> None:
    """The Deployment is the operator's: a scale or a delete by hand is put back, and the model's
    status follows the Deployment it has now."""
    kubectl.apply(model_manifest("kept", replicas=1), namespace)
    first = wait_for(
        "one ready instance",
        lambda: (
            (kubectl.maybe("mdep", "kept", "-n", namespace) or {}).get("status", {}).get("readyReplicas") == 1
            and kubectl.json("deployment", "kept", "-n", namespace)
        ),
        timeout=90,
    )
    kubectl("scale", "deployment", "kept", "-n", namespace, "--replicas=3")
    wait_for(
        "the scale put back",
        lambda: (
            kubectl.json("deployment", "kept", "-n", namespace)["metadata"]["generation"]
            > first["metadata"]["generation"] + 1
            and kubectl.json("deployment", "kept", "-n", namespace)["spec"]["replicas"] == 1
        ),
    )
    kubectl("delete", "deployment", "kept", "-n", namespace, "--wait=false")
    second = wait_for(
        "a new Deployment",
        lambda: (
            (d := kubectl.maybe("deployment", "kept", "-n", namespace))
            and d["metadata"]["uid"] != first["metadata"]["uid"]
            and d
        ),
    )
    assert second["spec"]["replicas"] == 1
    assert contains(second["spec"]["template"], first["spec"]["template"])
    wait_for(
        "status follows the new Deployment",
        lambda: kubectl.json("mdep", "kept", "-n", namespace)["status"].get("readyReplicas") == 1,
        timeout=90,
    )


def test_deleting_a_model_collects_everything_it_owned(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(model_manifest("gone", engine={"type": "triton"}), namespace)
    wait_for(
        "objects",
        lambda: (
            kubectl.maybe("deployment", "gone", "-n", namespace)
            and kubectl.maybe("service", "gone", "-n", namespace)
        ),
    )
    owned = [
        f"{o['kind']}/{o['metadata']['name']}"
        for kind in ("deployment", "service", "configmap")
        for o in kubectl.json(kind, "-n", namespace, "-l", "gpupool.io/model-deployment=gone")["items"]
    ]
    assert any(o.startswith("ConfigMap/") for o in owned), owned
    kubectl("delete", "mdep", "gone", "-n", namespace)
    wait_for(
        "garbage collection",
        lambda: all(
            not kubectl.json(kind, "-n", namespace, "-l", "gpupool.io/model-deployment=gone")["items"]
            for kind in ("deployment", "service", "configmap", "pods")
        ),
        timeout=90,
    )


def test_restarted_operator_converges_without_duplicates(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    kubectl.apply(model_manifest("steady"), namespace)
    wait_for("service", lambda: kubectl.maybe("service", "steady", "-n", namespace))
    operator.stop()
    try:
        kubectl.apply(model_manifest("while-down"), namespace)
        kubectl("delete", "service", "steady", "-n", namespace)
    finally:
        operator.start()
    wait_for("service recreated", lambda: kubectl.maybe("service", "steady", "-n", namespace))
    wait_for("model created while down", lambda: kubectl.maybe("deployment", "while-down", "-n", namespace))
    for name in ("steady", "while-down"):
        deployments = kubectl.json(
            "deployment", "-n", namespace, "-l", f"gpupool.io/model-deployment={name}"
        )["items"]
        assert len(deployments) == 1


def test_a_no_op_resync_writes_nothing(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, cluster: Any
) -> None:
    kubectl.apply(
        [
            model_manifest("quiet", replicas=1),
            model_manifest("quiet-triton", engine={"type": "triton"}, replicas=1),
        ],
        namespace,
    )
    for name in ("quiet", "quiet-triton"):
        wait_for(
            f"{name} available",
            lambda n=name: (
                condition(kubectl.maybe("mdep", n, "-n", namespace), "Ready").get("reason") == "Available"
            ),
            timeout=90,
        )
    audit = Path(cluster.audit_log)
    # Let in-flight work finish, then watch three resync intervals.
    time.sleep(operator.resync_seconds * 2)
    start = audit.stat().st_size
    looks_before = operator.resync_looks()
    time.sleep(operator.resync_seconds * 3 + 1)
    writes = audit_writes(audit, start)
    assert writes == [], [(w["verb"], w["objectRef"]) for w in writes]
    # The resyncs did look at these models in the meantime: the silence is not an idle operator.
    assert operator.resync_looks() >= looks_before + 2 * 3


def test_printer_columns_and_scale_subresource(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(model_manifest("scaled", replicas=1), namespace)
    wait_for(
        "available",
        lambda: (
            condition(kubectl.maybe("mdep", "scaled", "-n", namespace), "Ready").get("reason") == "Available"
        ),
    )
    table = kubectl("get", "modeldeployments", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "MODEL", "ENGINE", "POOL", "TP", "READY", "DESIRED", "STATUS", "AGE"]
    assert table[1].split()[:8] == [
        "scaled",
        "llama-3.1-8b",
        "vllm",
        "nvidia-h100",
        "1",
        "1",
        "1",
        "Available",
    ]
    kubectl("scale", "modeldeployment/scaled", "-n", namespace, "--replicas=3")
    wait_for(
        "deployment scaled",
        lambda: kubectl.json("deployment", "scaled", "-n", namespace)["spec"]["replicas"] == 3,
    )
    wait_for(
        "three ready", lambda: kubectl.json("mdep", "scaled", "-n", namespace)["status"]["readyReplicas"] == 3
    )
    path = f"/apis/gpupool.io/v1alpha1/namespaces/{namespace}/modeldeployments/scaled/scale"
    scale = json.loads(kubectl("get", "--raw", path).stdout)
    assert scale["spec"]["replicas"] == 3
    assert scale["status"]["selector"] == "gpupool.io/model-deployment=scaled"
    listed = kubectl("get", "gpupool", "-n", namespace).stdout
    assert "modeldeployment.gpupool.io/scaled" in listed


def test_pools_report_capacity_and_own_their_priority_classes(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    for pool_file in SAMPLE_POOLS:
        name = load(pool_file)["metadata"]["name"]
        pool = wait_for(
            f"{name} status",
            lambda n=name: (
                (kubectl.json("ipool", n).get("status") or {}).get("accelerators")
                and kubectl.json("ipool", n)
            ),
        )
        assert pool["status"]["nodes"] >= 1
        assert (
            pool["status"]["accelerators"]["total"]
            == pool["status"]["nodes"] * pool["spec"]["acceleratorsPerNode"]
        )
        assert condition(pool, "Ready")["status"] == "True"
        for tier in pool["spec"]["tiers"]:
            pc = kubectl.json("priorityclass", f"gpupool-{name}-{tier['name'].lower()}")
            assert pc["value"] == tier["priority"]
            assert pc["preemptionPolicy"] == ("Never" if tier.get("preemptible") else "PreemptLowerPriority")
            assert pc["metadata"]["ownerReferences"][0]["uid"] == pool["metadata"]["uid"]


@pytest.mark.parametrize("manifest", sorted(BAD.glob("*.yaml")), ids=lambda p: p.stem)
def test_schema_and_cel_rules_reject_bad_manifests(
    kubectl: Kubectl, operator: OperatorProcess, manifest: Path
) -> None:
    expected = [
        line.split(":", 1)[1].strip()
        for line in manifest.read_text().splitlines()
        if line.startswith("# expect:")
    ]
    assert expected, f"{manifest.name} has no '# expect:' line"
    result = kubectl("apply", "--dry-run=server", "-n", "default", "-f", str(manifest), check=False)
    assert result.returncode != 0, f"{manifest.name} was accepted"
    for text in expected:
        assert text in result.stderr, f"{manifest.name}: {text!r} not in {result.stderr!r}"
