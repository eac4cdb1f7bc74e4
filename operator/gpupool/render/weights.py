"""The weights cache of a model: its PersistentVolumeClaim and the Job that downloads into it.

One cache per (repository, revision, volume settings): the claim's name ends in a digest of them,
so a new revision (or another StorageClass, size or access mode, which a bound claim cannot
change) is a new claim downloaded anew, and the old one is deleted once the instances moved on.
The Job runs `huggingface_hub.snapshot_download` with the engine image's own Python (every vLLM,
vllm-ascend and Triton vLLM image installs huggingface_hub), so no other image is pulled; the
token comes from the model's Secret as HF_TOKEN. Each attempt is its own Job (`-1`, `-2`, ...)
with backoffLimit 0: the operator retries a failed download after a growing delay, so the
attempts and their failures stay visible as Jobs.

What is downloaded: everything but Meta's `original/` copies and PyTorch `.pth` files, which vLLM
does not read from a Hugging Face layout (Llama repositories ship their weights twice otherwise).
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
from typing import Any, Final

from gpupool.api.tenancy import parse_quantity_bytes
from gpupool.api.weights import WeightsCache
from gpupool.render import labels as lbl
from gpupool.render.vllm import WEIGHTS_MOUNT_PATH

Obj = dict[str, Any]

GIB: Final = 1024**3
# Tokenizer, configuration and the Hub's metadata beside the weights, and room for a checkpoint
# that is a little larger than its parameter count says.
SIZE_HEADROOM: Final = 0.2
DEFAULT_REVISION: Final = "main"
# Where the Job mounts the claim (the instances mount it read-only at WEIGHTS_MOUNT_PATH).
JOB_MOUNT_PATH: Final = "/cache"
IGNORE_PATTERNS: Final = ("original/*", "*.pth")
WEIGHTS_COMPONENT: Final = "weights-cache"
# Labels of the cache's claim, Jobs and download pods: whose cache (the model's identity, under its
# own key so that the model's Service and budget never select a download pod) and which one.
WEIGHTS_OF_LABEL: Final = "gpupool.io/weights-of"
CACHE_LABEL: Final = "gpupool.io/weights-cache"
REVISION_LABEL: Final = "gpupool.io/weights-revision"
ATTEMPT_LABEL: Final = "gpupool.io/weights-attempt"
# A hung download is stopped after four times its expected length, and never before an hour.
DEADLINE_FACTOR: Final = 4
DEADLINE_MIN_SECONDS: Final = 3600
JOB_CPU: Final = "2"
JOB_MEMORY: Final = "4Gi"
RUN_AS: Final = 1000


def cache_size(cache: WeightsCache, checkpoint_bytes: int) -> str:
    """The claim's size: the spec's, else the checkpoint plus SIZE_HEADROOM in whole GiB."""
    if cache.size is not None:
        return cache.size
    return f"{max(1, math.ceil(checkpoint_bytes * (1 + SIZE_HEADROOM) / GIB))}Gi"


def cache_key(repository: str, revision: str, cache: WeightsCache, size: str) -> str:
    """A digest of everything a bound claim cannot change, and of what it holds."""
    identity = json.dumps(
        [repository, revision, cache.storage_class_name, cache.access_mode.value, size],
        separators=(",", ":"),
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:8]


def claim_name(md_name: str, key: str) -> str:
    return lbl.object_name(md_name, f"weights-{key}")


def job_name(md_name: str, key: str, attempt: int) -> str:
    return lbl.object_name(md_name, f"weights-{key}-{attempt}")


def model_directory(repository: str) -> str:
    """The repository's directory inside the cache volume."""
    return posixpath.normpath(repository.strip("/"))


def cached_model_path(repository: str) -> str:
    """Where an instance finds the weights: the read-only mount plus the repository's directory."""
    return posixpath.join(WEIGHTS_MOUNT_PATH, model_directory(repository))


def cache_labels(md_name: str, key: str, revision: str) -> Obj:
    labels = {
        lbl.COMPONENT_LABEL: WEIGHTS_COMPONENT,
        lbl.INSTANCE_LABEL: lbl.label_value(md_name),
        lbl.MANAGED_BY_LABEL: lbl.MANAGED_BY,
        lbl.PART_OF_LABEL: lbl.MANAGED_BY,
        WEIGHTS_OF_LABEL: lbl.label_value(md_name),
        CACHE_LABEL: key,
        REVISION_LABEL: lbl.label_value(revision),
    }
    return dict(sorted(labels.items()))


def render_cache_claim(
    md_name: str,
    namespace: str,
    owners: list[Obj],
    *,
    key: str,
    revision: str,
    cache: WeightsCache,
    size: str,
) -> Obj:
    """The cache's PersistentVolumeClaim, owned by the ModelDeployment."""
    parse_quantity_bytes(size)  # the API types checked it; a bad default would be a bug
    spec: Obj = {
        "accessModes": [cache.access_mode.value],
        "resources": {"requests": {"storage": size}},
        "volumeMode": "Filesystem",
    }
    if cache.storage_class_name is not None:
        spec["storageClassName"] = cache.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": claim_name(md_name, key),
            "namespace": namespace,
            "labels": cache_labels(md_name, key, revision),
            **({"ownerReferences": owners} if owners else {}),
        },
        "spec": spec,
    }


def download_script(repository: str, revision: str) -> str:
    """The Python the Job runs: snapshot_download of the revision into the claim."""
    target = posixpath.join(JOB_MOUNT_PATH, model_directory(repository))
    return (
        "from huggingface_hub import snapshot_download\n"
        f"snapshot_download(repo_id={repository!r}, revision={revision!r}, local_dir={target!r}, "
        f"ignore_patterns={list(IGNORE_PATTERNS)!r})\n"
    )


def deadline_seconds(checkpoint_bytes: int, download_bytes_per_second: int) -> int:
    expected = math.ceil(checkpoint_bytes / download_bytes_per_second)
    return max(DEADLINE_MIN_SECONDS, DEADLINE_FACTOR * expected)


def render_download_job(
    md_name: str,
    namespace: str,
    owners: list[Obj],
    *,
    key: str,
    attempt: int,
    repository: str,
    revision: str,
    image: str,
    token: tuple[str, str] | None,
    deadline: int,
) -> Obj:
    """Attempt `attempt` of the download of `repository` at `revision` into the cache's claim."""
    labels = {**cache_labels(md_name, key, revision), ATTEMPT_LABEL: str(attempt)}
    env: list[Obj] = [
        {"name": "HF_HOME", "value": "/tmp/huggingface"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
    ]
    if token is not None:
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": token[0], "key": token[1]}}})
    container: Obj = {
        "name": "download",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", download_script(repository, revision)],
        "env": sorted(env, key=lambda item: str(item["name"])),
        "resources": {
            "limits": {"cpu": JOB_CPU, "memory": JOB_MEMORY},
            "requests": {"cpu": JOB_CPU, "memory": JOB_MEMORY},
        },
        "volumeMounts": [
            {"name": "weights", "mountPath": JOB_MOUNT_PATH},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: Obj = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "weights", "persistentVolumeClaim": {"claimName": claim_name(md_name, key)}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(md_name, key, attempt),
            "namespace": namespace,
            "labels": labels,
            **({"ownerReferences": owners} if owners else {}),
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline,
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }
