"""Weights cached once (spec.weights.cache), against the real API server, scheduler, Job and PV
controllers and kwok.

The local cluster has no storage provisioner: each test creates PersistentVolumes of a
StorageClass of its own (no provisioner, Immediate binding), which kube-controller-manager's PV
controller binds to the operator's claims. kwok runs the download Jobs' pods through the stages in
tools/localcluster/kwok/weights-stages.yaml: a download succeeds 5 seconds after its pod runs,
and a download of revision kwok-missing-revision fails as a missing revision does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cluster import Cluster, h100_pool_spec
from harness import condition, fresh_namespaces, model_manifest, running_operator, unique_name
from operator_process import OperatorProcess, audit_writes, wait_for

pytestmark = pytest.mark.e2e

POOL = "weights-h100"
CLASS = "gpupool-e2e-weights"
REPOSITORY = "meta-llama/Llama-3.1-8B-Instruct"
RESYNC_SECONDS = 5


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    cluster.install_crds()
    cluster.apply(
        [
            {
                "apiVersion": "gpupool.io/v1alpha1",
                "kind": "InferencePool",
                "metadata": {"name": POOL},
                "spec": h100_pool_spec(),
            },
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": CLASS},
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "Immediate",
                "reclaimPolicy": "Retain",
            },
        ]
    )
    with running_operator(
        cluster, tmp_path_factory.mktemp("operator"), resync_seconds=RESYNC_SECONDS
    ) as process:
        yield process
    cluster.kubectl("delete", "inferencepool.gpupool.io", POOL, "--ignore-not-found", "--wait=false")
    cluster.kubectl("delete", "pv", "-l", f"storageclass={CLASS}", "--ignore-not-found", "--wait=false")


@pytest.fixture
def namespace(cluster: Cluster, operator: OperatorProcess) -> Iterator[str]:
    with fresh_namespaces(cluster, unique_name("weights")) as (name,):
        yield name


def volumes(cluster: Cluster, count: int, mode: str = "ReadWriteMany") -> list[str]:
    """`count` hostPath PersistentVolumes of the test's class for claims to bind."""
    names = [unique_name("weights-pv") for _ in range(count)]
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": {"storageclass": CLASS}},
                "spec": {
                    "storageClassName": CLASS,
                    "capacity": {"storage": "100Gi"},
                    "accessModes": [mode],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": f"/var/lib/gpupool-e2e/{name}"},
                },
            }
            for name in names
        ]
    )
    return names


def get(cluster: Cluster, *args: str) -> Any:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def items(cluster: Cluster, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
    listed = get(cluster, kind, "-n", namespace, "-l", selector)
    return list((listed or {}).get("items") or [])


def cached_model(name: str, namespace: str, revision: str, **cache: Any) -> dict[str, Any]:
    return model_manifest(
        name,
        namespace,
        pool=POOL,
        replicas=2,
        weights={
            "huggingFace": {
                "id": REPOSITORY,
                "revision": revision,
                "tokenSecretRef": {"name": "hf-token", "key": "token"},
            },
            "cache": {"storageClassName": CLASS, **cache},
        },
    )


def owned_by(obj: dict[str, Any], md: dict[str, Any]) -> bool:
    owners = obj["metadata"].get("ownerReferences") or []
    return [(o["kind"], o["uid"], o.get("controller")) for o in owners] == [
        ("ModelDeployment", md["metadata"]["uid"], True)
    ]


def succeeded(job: dict[str, Any] | None) -> bool:
    return bool(job) and any(
        c.get("type") == "Complete" and c.get("status") == "True"
        for c in (job or {}).get("status", {}).get("conditions") or []
    )


def test_instances_wait_for_one_download_then_mount_the_cache_read_only(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    volumes(cluster, 2)
    name = "chat"
    cluster.apply(cached_model(name, namespace, "rev-a"))
    md = wait_for("the model's uid", lambda: get(cluster, "mdep", name, "-n", namespace))
    selector = f"gpupool.io/weights-of={name}"

    jobs = wait_for("the download Job", lambda: items(cluster, "job", namespace, selector))
    (job,) = jobs
    (claim,) = items(cluster, "pvc", namespace, selector)
    assert owned_by(job, md) and owned_by(claim, md)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == CLASS
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    (env,) = [e for e in pod["containers"][0]["env"] if e["name"] == "HF_TOKEN"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
    assert "revision='rev-a'" in pod["containers"][0]["command"][-1]

    # Until the Job succeeds, no instance exists: the Deployment is read before the Job, so a Job
    # seen unfinished was unfinished when the Deployment was read.
    waited = False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        deployment = get(cluster, "deployment", name, "-n", namespace)
        current = get(cluster, "job", job["metadata"]["name"], "-n", namespace)
        if succeeded(current):
            break
        assert deployment is None, "a Deployment exists before the weights are downloaded"
        seen = get(cluster, "mdep", name, "-n", namespace)
        if condition(seen, "WeightsReady").get("reason") in ("Downloading", "DownloadPending"):
            assert condition(seen, "Ready")["reason"] == "WaitingForWeights"
            assert seen["status"]["weights"]["phase"] in ("Pending", "Downloading")
            waited = True
        time.sleep(0.5)
    assert waited, "never saw the model wait for its weights"
    bound = get(cluster, "pvc", claim["metadata"]["name"], "-n", namespace)
    assert bound["status"]["phase"] == "Bound"

    ready = wait_for(
        "WeightsReady",
        lambda: (
            (m := get(cluster, "mdep", name, "-n", namespace))
            and condition(m, "WeightsReady").get("status") == "True"
            and m
        ),
        timeout=60,
    )
    assert condition(ready, "WeightsReady")["reason"] == "Cached"
    assert ready["status"]["weights"]["phase"] == "Ready"
    assert ready["status"]["weights"]["revision"] == "rev-a"
    deployment = wait_for("the Deployment", lambda: get(cluster, "deployment", name, "-n", namespace))
    assert deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]["spec"]
    (weights,) = [v for v in template["volumes"] if v["name"] == "weights"]
    assert weights["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"], "readOnly": True}
    engine = template["containers"][0]
    (mount,) = [m for m in engine["volumeMounts"] if m["name"] == "weights"]
    assert mount["readOnly"] is True
    args = engine["args"]
    assert args[0] == f"{mount['mountPath']}/{REPOSITORY}"
    assert args[args.index("--served-model-name") + 1] == "llama-3.1-8b"
    assert "--revision" not in args

    # Settled, a pass that finds nothing new writes nothing.
    wait_for(
        "the model ready",
        lambda: condition(get(cluster, "mdep", name, "-n", namespace), "Ready").get("reason") == "Available",
        timeout=90,
    )
    start = cluster.audit_offset()
    time.sleep(RESYNC_SECONDS * 3 + 1)
    writes = [
        w for w in audit_writes(cluster.audit_log, start) if w["objectRef"].get("namespace") == namespace
    ]
    assert writes == [], [(w["verb"], w["objectRef"]) for w in writes]

    # A new revision downloads anew while the old one keeps serving, then replaces it; the old
    # revision's claim and Job go.
    old_claim = claim["metadata"]["name"]
    cluster.apply(cached_model(name, namespace, "rev-b"))
    claims = wait_for(
        "the new revision's claim",
        lambda: (c := items(cluster, "pvc", namespace, selector)) and len(c) == 2 and c,
    )
    assert {c["metadata"]["labels"]["gpupool.io/weights-revision"] for c in claims} == {"rev-a", "rev-b"}
    # Read before the new Job: while that Job is unfinished, the instances still mount the old cache.
    kept = get(cluster, "deployment", name, "-n", namespace)
    new_jobs = [
        j
        for j in items(cluster, "job", namespace, selector)
        if j["metadata"]["labels"]["gpupool.io/weights-revision"] == "rev-b"
    ]
    if not any(succeeded(j) for j in new_jobs):
        (volume,) = [v for v in kept["spec"]["template"]["spec"]["volumes"] if v["name"] == "weights"]
        assert volume["persistentVolumeClaim"]["claimName"] == old_claim
        assert kept["spec"]["replicas"] == 2
    rolled = wait_for(
        "the instances on the new revision's cache",
        lambda: (
            (d := get(cluster, "deployment", name, "-n", namespace))
            and any(
                v["name"] == "weights" and v["persistentVolumeClaim"]["claimName"] != old_claim
                for v in d["spec"]["template"]["spec"]["volumes"]
            )
            and d
        ),
        timeout=90,
    )
    assert rolled["spec"]["replicas"] == 2
    wait_for(
        "the old revision's claim and Job deleted",
        lambda: (
            all(
                c["metadata"]["name"] != old_claim or c["metadata"].get("deletionTimestamp")
                for c in items(cluster, "pvc", namespace, selector)
            )
            and all(
                j["metadata"]["labels"]["gpupool.io/weights-revision"] == "rev-b"
                for j in items(cluster, "job", namespace, selector)
            )
        ),
        timeout=60,
    )


def test_a_failed_download_says_why_and_is_retried_after_a_delay(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    volumes(cluster, 1)
    name = "missing"
    cluster.apply(cached_model(name, namespace, "kwok-missing-revision"))
    failed = wait_for(
        "DownloadFailed",
        lambda: (
            (m := get(cluster, "mdep", name, "-n", namespace))
            and condition(m, "WeightsReady").get("reason") == "DownloadFailed"
            and m
        ),
        timeout=90,
    )
    message = condition(failed, "WeightsReady")["message"]
    assert "RevisionNotFoundError" in message and "exit code 1" in message, message
    assert "attempt 2 of 6 starts at" in message, message
    assert failed["status"]["weights"]["phase"] == "Failed"
    assert condition(failed, "Ready")["reason"] == "WaitingForWeights"
    assert get(cluster, "deployment", name, "-n", namespace) is None
    events = get(cluster, "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")
    assert any(e["reason"] == "DownloadFailed" and e["type"] == "Warning" for e in events["items"])

    # The retry is a new Job, after the delay, with the attempt number in its name.
    retried = wait_for(
        "the second attempt",
        lambda: len(jobs := items(cluster, "job", namespace, f"gpupool.io/weights-of={name}")) >= 2 and jobs,
        timeout=60,
    )
    attempts = sorted(int(j["metadata"]["labels"]["gpupool.io/weights-attempt"]) for j in retried)
    assert attempts[:2] == [1, 2]
    first, second = sorted(retried, key=lambda j: j["metadata"]["labels"]["gpupool.io/weights-attempt"])[:2]
    failed_at = next(c for c in first["status"]["conditions"] if c["type"] == "Failed")["lastTransitionTime"]
    assert second["metadata"]["creationTimestamp"] >= failed_at


def test_a_read_write_once_cache_for_several_instances_creates_nothing(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    # Said by the API server at once when the spec itself asks for several instances.
    refused = cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(cached_model("rwo", namespace, "rev-a", accessMode="ReadWriteOnce")),
        check=False,
    )
    assert refused.returncode != 0 and "ReadWriteOnce mounts on one node only" in refused.stderr

    # Said by the operator when the plan asks for them.
    body = cached_model("rwo", namespace, "rev-a", accessMode="ReadWriteOnce")
    del body["spec"]["replicas"]
    body["spec"]["traffic"] = {"peakQps": 40}
    cluster.apply(body)
    seen = wait_for(
        "CacheNotShareable",
        lambda: (
            (m := get(cluster, "mdep", "rwo", "-n", namespace))
            and condition(m, "WeightsReady").get("reason") == "CacheNotShareable"
            and m
        ),
    )
    assert "ReadWriteMany" in condition(seen, "WeightsReady")["message"]
    assert condition(seen, "Ready")["reason"] == "CacheNotShareable"
    time.sleep(2)
    for kind in ("pvc", "job", "deployment"):
        assert items(cluster, kind, namespace, "app.kubernetes.io/managed-by=gpupool") == [], kind
