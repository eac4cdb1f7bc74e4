"""The Kubernetes objects of one ModelDeployment on one pool, and the PriorityClasses of a pool.

Everything here is a pure function from the API types and a capacity plan to plain dicts in wire
form (camelCase keys, deterministic key and list order), so that the controller can compare the
desired objects with the live ones and the tests can compare them with golden files.

The rules, and why:

Startup, readiness, liveness
- A startup probe holds the other probes back until the model is loaded. Its budget is
  max(STARTUP_MIN_SECONDS, STARTUP_LOAD_FACTOR x plan.load_time_seconds): the plan's load time is
  an estimate (engine start plus reading the weights at an assumed rate), and a download from
  Hugging Face or a busy volume can triple it. (The probe starts once the container runs, so
  image pulls do not count; a restarted container finds the weights it downloaded still in the
  pod's emptyDir.) Large models load for minutes
  (70B-class: 3-10+), which is what kills them under a fixed-delay liveness probe.
- Readiness means "loaded and serving". vLLM opens its HTTP port only once the engine is built and
  the weights are loaded, so `/health` answers only then (kubernetes-sigs/gateway-api-inference-
  extension#558; vllm-project/vllm#50282); Triton's `/v2/health/ready` answers 200 only when the
  server and every model are ready.
- A liveness probe exists, but runs only after the startup probe has succeeded (Kubernetes
  disables liveness and readiness checks until then) and is lenient: LIVENESS_PERIOD_SECONDS x
  LIVENESS_FAILURES = 3 minutes of consecutive failures. It restarts an engine whose device hung
  (the process stays up, `/health` stops answering) without killing one that is merely busy.

Drain on stop
- preStop sleeps DRAIN_SECONDS (the native `sleep` action, GA in Kubernetes 1.34) while the
  endpoint controllers and the Service's consumers take the pod out of rotation; then SIGTERM
  makes the engine refuse new requests and finish the ones in flight for up to
  ENGINE_SHUTDOWN_SECONDS (vLLM `--shutdown-timeout`, Triton `--exit-timeout-secs`).
  TERMINATION_GRACE_SECONDS covers both plus KILL_MARGIN_SECONDS before SIGKILL.

Resources
- The accelerator resource equals the tensor-parallel size, in requests and limits.
- CPU and memory grow with the accelerators taken, requests equal to limits (Guaranteed QoS:
  the last to be evicted, and eligible for exclusive cores under the static CPU manager):
  CPU_PER_ACCELERATOR cores, and per accelerator its own memory in GiB plus
  HOST_MEMORY_BASE_GIB, at most MEMORY_GIB_PER_ACCELERATOR_CAP GiB. Host memory follows device
  memory because the engine stages the weights it loads through host memory and keeps pinned
  transfer buffers and /dev/shm there. On an 8-accelerator node of 96 CPUs and 1 TiB, eight
  accelerators' worth is at most 80 CPUs and 768 GiB (H100 and H200: 96 GiB each; Ascend 910B:
  76 GiB; L4: 39 GiB, which also fits the 384 GB hosts L4s come in), leaving room for the system
  reservation and the device-plugin, monitoring and network DaemonSets. The accelerator stays
  the scarce resource: a full node's accelerators never wait for CPU or memory.
- `/dev/shm` is a memory-backed emptyDir of SHM_GIB_PER_ACCELERATOR GiB per accelerator: PyTorch
  and NCCL/HCCL pass tensors between tensor-parallel workers through it, and the container
  runtime's default of 64 MiB is far too small. It counts against the memory limit.

Rollout
- With one replica: maxSurge 1, maxUnavailable 0. The only instance keeps serving until its
  successor is ready; the successor needs free accelerators (or preempts a lower tier), and
  until it gets them the rollout waits rather than taking the model offline.
- With more: maxSurge 0, maxUnavailable 1. Accelerators are scarce and a pool is sized to its
  plan, so a surge pod would usually sit Pending; replacing one instance at a time never needs a
  spare accelerator, and the plan's headroom absorbs one instance fewer.
- A hash of the rendered configuration, ConfigMaps included, is a pod annotation, so that a
  change that only touches a ConfigMap still rolls the pods.

Security
- Non-root (UID/GID RUN_AS_USER), no privilege escalation, every capability dropped, the runtime's
  default seccomp profile, no service-account token (engines never call the API server), no
  service links (a Service named `vllm` would inject VLLM_PORT=tcp://..., which vLLM reads as
  its own setting and fails on).
- HOME, the Hugging Face cache and the JIT caches (torch inductor, Triton kernels, CANN's
  kernel_meta in the working directory) live in an emptyDir: the images' own home directories
  belong to root. USER and LOGNAME are set because the UID has no /etc/passwd entry in the
  images, and Python's getpass, which torch uses for its cache paths, reads them first.
- The root filesystem stays writable for the image's own root-owned paths only (non-root cannot
  write there anyway); making it read-only would break engines that write caches in places
  that move between releases.
- A Hugging Face token only ever comes from a Secret, through `secretKeyRef`.

Ascend
- UID/GID 1000: the Ascend driver creates the device nodes (/dev/davinci*, davinci_manager,
  devmm_svm, hisi_hdc) as HwHiAiUser:HwHiAiUser mode 0660, and the installer's HwHiAiUser is
  commonly UID/GID 1000 (vllm-project/vllm-ascend#9490); other non-root UIDs cannot open them.
- HCCL (tensor parallelism) fails with error 19 unless the UID has an /etc/passwd entry, which
  the official image lacks (vllm-ascend docs, "Running vLLM-Ascend as Non-Root User"); gpupool
  mounts a two-line passwd from a ConfigMap over /etc/passwd.
- The host's driver is mounted read-only as in the vllm-ascend container quick start:
  /usr/local/Ascend/driver, /usr/local/dcmi, /usr/local/bin/npu-smi and /etc/ascend_install.info.
  hostPath volumes need a namespace whose Pod Security level allows them (privileged).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Final

from gpupool.api.rollout import RolloutStrategy
from gpupool.api.v1alpha1 import (
    API_VERSION,
    EngineType,
    InferencePool,
    ModelDeployment,
    Tier,
)
from gpupool.catalog.accelerators import get_accelerator
from gpupool.catalog.models import get_model
from gpupool.catalog.types import Accelerator, Vendor
from gpupool.render import kueue, lws, triton
from gpupool.render import labels as lbl
from gpupool.render.images import UnsupportedEngineError, check_supported, default_image
from gpupool.render.vllm import (
    GRPC_PORT,
    HTTP_PORT,
    METRICS_PORT,
    WEIGHTS_MOUNT_PATH,
    WeightsRef,
    engine_options,
    pvc_model_path,
    vllm_serve_args,
)
from gpupool.render.weights import cached_model_path
from gpupool.sizing import Plan

Obj = dict[str, Any]

GIB: Final = 1024**3

# Probes.
STARTUP_MIN_SECONDS: Final = 600
STARTUP_LOAD_FACTOR: Final = 3
STARTUP_PERIOD_SECONDS: Final = 10
READINESS_PERIOD_SECONDS: Final = 5
READINESS_FAILURES: Final = 3
LIVENESS_PERIOD_SECONDS: Final = 30
LIVENESS_FAILURES: Final = 6
PROBE_TIMEOUT_SECONDS: Final = 5
# Time for the scheduler, the image pull and the load before a rollout counts as stuck.
PROGRESS_MARGIN_SECONDS: Final = 900

# Drain.
DRAIN_SECONDS: Final = 15
KILL_MARGIN_SECONDS: Final = 15
TERMINATION_GRACE_SECONDS: Final = 120
ENGINE_SHUTDOWN_SECONDS: Final = TERMINATION_GRACE_SECONDS - DRAIN_SECONDS - KILL_MARGIN_SECONDS

# Resources per accelerator of an instance.
CPU_PER_ACCELERATOR: Final = 10
HOST_MEMORY_BASE_GIB: Final = 16
MEMORY_GIB_PER_ACCELERATOR_CAP: Final = 96
SHM_GIB_PER_ACCELERATOR: Final = 2

# Identity.
RUN_AS_USER: Final = 1000
RUN_AS_GROUP: Final = 1000
USER_NAME: Final = "gpupool"
HOME: Final = "/home/gpupool"

# The library path of the vllm-ascend image (VLLM_ASCEND_IMAGE) as root's ~/.bashrc exports it.
# The vllm-ascend v0.23.0 Dockerfile appends /usr/local/lib there, expanding the image's own
# value at build time: `RUN echo "export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/usr/local/lib" >>
# ~/.bashrc` (the same line in Dockerfile.a3 and Dockerfile.310p). That value is the ENV chain of
# its base image quay.io/ascend/cann:9.1.0-910b-ubuntu22.04-py3.12 (Ascend/cann-container-image,
# cann/9.1.0-910b-ubuntu22.04-py3.12/Dockerfile; the -a3 one is identical): each ENV line puts
# its directories in front, so the last line's come first. A pod's env replaces the image's
# variable rather than extending it, hence the whole list. The chain begins with an unset
# variable, which leaves an empty entry (the current directory, to the dynamic linker) after the
# Python library; it is left out.
_CANN_HOME: Final = "/usr/local/Ascend/cann-9.1.0"
_CANN_LATEST: Final = "/usr/local/Ascend/ascend-toolkit/latest"
_ATB_HOME: Final = "/usr/local/Ascend/nnal/atb/latest/atb/cxx_abi_1"
ASCEND_LD_LIBRARY_PATH: Final = ":".join(
    (
        *(f"{_CANN_HOME}/{d}" for d in ("lib64", "lib64/plugin/opskernel", "lib64/plugin/nnengine")),
        f"{_CANN_HOME}/opp/built-in/op_impl/ai_core/tbe/op_tiling",
        "/usr/local/Ascend/driver/lib64",
        "/usr/local/Ascend/driver/lib64/common",
        "/usr/local/Ascend/driver/lib64/driver",
        *(f"{_ATB_HOME}/{d}" for d in ("lib", "examples", "tests/atbopstest")),
        f"{_CANN_LATEST}/tools/aml/lib64",
        f"{_CANN_LATEST}/tools/aml/lib64/plugin",
        *(f"{_CANN_LATEST}/{d}" for d in ("lib64", "lib64/plugin/opskernel", "lib64/plugin/nnengine")),
        f"{_CANN_LATEST}/opp/built-in/op_impl/ai_core/tbe/op_tiling",
        "/usr/local/python3.12.13/lib",
        "/usr/local/lib",
    )
)

# Environment the vllm-ascend image sets only in root's ~/.bashrc, which an exec-form command run
# as a non-root user never reads: jemalloc preloaded (vllm-ascend Dockerfile:
# `echo "export LD_PRELOAD=/usr/lib/$(uname -m)-linux-gnu/libjemalloc.so.2:$LD_PRELOAD" >> ~/.bashrc`;
# a bare name is found by the dynamic linker on either architecture), the library path above,
# and the NPU caching allocator's expandable segments, as vllm-ascend's tutorials set them
# (https://docs.vllm.ai/projects/ascend/en/latest/tutorials/single_npu.html).
ASCEND_ENV: Final[tuple[tuple[str, str], ...]] = (
    ("LD_PRELOAD", "libjemalloc.so.2"),
    ("LD_LIBRARY_PATH", ASCEND_LD_LIBRARY_PATH),
    ("PYTORCH_NPU_ALLOC_CONF", "expandable_segments:True"),
)

REVISION_HISTORY_LIMIT: Final = 3

# Host paths the vllm-ascend quick start mounts into its container: the driver's libraries and
# version, the DCMI management library, npu-smi, and the install record CANN reads.
ASCEND_HOST_PATHS: Final[tuple[tuple[str, str, str], ...]] = (
    ("ascend-driver", "/usr/local/Ascend/driver", "Directory"),
    ("ascend-dcmi", "/usr/local/dcmi", "Directory"),
    ("ascend-npu-smi", "/usr/local/bin/npu-smi", "File"),
    ("ascend-install-info", "/etc/ascend_install.info", "File"),
)


# --------------------------------------------------------------------------------------------------
# Shared pieces


def owner_references(api_version: str, kind: str, metadata: dict[str, Any]) -> list[Obj]:
    """The controller owner reference to the object with `metadata`, as a list.

    Empty when the owner has no uid yet, i.e. for a preview rendered from a file (`gpupool
    render`): a reference to a uid that does not exist would make the garbage collector delete
    the objects as soon as they are applied. The operator always renders from a stored object,
    which has one.
    """
    name = metadata.get("name")
    if not name:
        raise ValueError(f"{kind} metadata needs a name")
    uid = metadata.get("uid")
    if not uid:
        return []
    return [
        {
            "apiVersion": api_version,
            "kind": kind,
            "name": name,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def startup_budget_seconds(load_time_seconds: int) -> int:
    """Seconds the startup probe allows: three times the estimated load, at least 10 minutes."""
    return max(STARTUP_MIN_SECONDS, STARTUP_LOAD_FACTOR * load_time_seconds)


def startup_failure_threshold(load_time_seconds: int) -> int:
    return math.ceil(startup_budget_seconds(load_time_seconds) / STARTUP_PERIOD_SECONDS)


def rollout_strategy(replicas: int, strategy: RolloutStrategy = RolloutStrategy.ROLLING_UPDATE) -> Obj:
    """Recreate when asked; else RollingUpdate that keeps the last instance up and otherwise
    needs no spare accelerator (Canary too, until traffic is shifted between versions)."""
    if strategy is RolloutStrategy.RECREATE:
        return {"type": "Recreate"}
    keep_last = replicas <= 1
    rolling = {"maxSurge": 1 if keep_last else 0, "maxUnavailable": 0 if keep_last else 1}
    return {"type": "RollingUpdate", "rollingUpdate": rolling}


def host_memory_gib_per_accelerator(accelerator: Accelerator) -> int:
    """The accelerator's memory in GiB plus a base for the process, capped (see module docs)."""
    device_gib = math.ceil(accelerator.memory_bytes / GIB)
    return min(MEMORY_GIB_PER_ACCELERATOR_CAP, device_gib + HOST_MEMORY_BASE_GIB)


def instance_resources(
    accelerator: Accelerator, tensor_parallel: int, resource_name: str | None = None
) -> Obj:
    """Requests equal to limits: the accelerators (as `resource_name`, by default the catalog's
    resource) plus CPU and memory that grow with them."""
    memory_gib = host_memory_gib_per_accelerator(accelerator) * tensor_parallel
    amounts = {
        "cpu": str(CPU_PER_ACCELERATOR * tensor_parallel),
        "memory": f"{memory_gib}Gi",
        resource_name or accelerator.resource_name: str(tensor_parallel),
    }
    return {"limits": dict(amounts), "requests": dict(amounts)}


def engine_revision(pod_spec: Obj, config_maps: list[Obj]) -> str:
    """A short digest of what the engine runs: each container's image, command and arguments,
    and the ConfigMaps it reads. A change of the weights' revision, the image, the engine
    arguments or the precision changes it; a change of the instance count, the node selector or
    the resources does not. The pods carry it as `gpupool.io/revision`."""
    payload = json.dumps(
        {
            "containers": [[c.get("image"), c.get("command"), c.get("args")] for c in pod_spec["containers"]],
            "configMaps": [cm["data"] for cm in config_maps],
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:10]


def config_hash(template: Obj, config_maps: list[Obj]) -> str:
    """A short digest of the pod template and the ConfigMaps it mounts."""
    payload = json.dumps(
        {"template": template, "configMaps": [cm["data"] for cm in config_maps]},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# PriorityClasses


def render_priority_classes(pool: InferencePool) -> list[Obj]:
    """One PriorityClass per tier of the pool, owned by the (cluster-scoped) pool.

    Preemptible tiers get preemptionPolicy Never: their pods wait for room instead of evicting
    others, and their low value makes them the scheduler's first victims when a higher tier needs
    accelerators. The other tiers may preempt lower ones (PreemptLowerPriority).
    """
    owners = owner_references(API_VERSION, "InferencePool", pool.metadata)
    pool_name: str = pool.metadata["name"]
    return [_priority_class(pool_name, tier, owners) for tier in pool.spec.tiers]


def render_pool_queues(pool: InferencePool, total: int) -> list[Obj]:
    """With spec.scheduler kueue, the pool's ResourceFlavor, Cohort and ClusterQueues for `total`
    schedulable accelerators, owned by the pool (gpupool.render.kueue); else nothing."""
    return kueue.pool_queues(pool, total, owner_references(API_VERSION, "InferencePool", pool.metadata))


def _priority_class(pool_name: str, tier: Tier, owners: list[Obj]) -> Obj:
    labels = {
        lbl.COMPONENT_LABEL: lbl.PRIORITY_CLASS_COMPONENT,
        lbl.MANAGED_BY_LABEL: lbl.MANAGED_BY,
        lbl.PART_OF_LABEL: lbl.MANAGED_BY,
        lbl.POOL_LABEL: lbl.label_value(pool_name),
        lbl.TIER_LABEL: lbl.label_value(tier.name),
    }
    role = "preemptible: never preempts, evicted first" if tier.preemptible else "may preempt lower tiers"
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {
            "name": lbl.priority_class_name(pool_name, tier.name),
            "labels": dict(sorted(labels.items())),
            **({"ownerReferences": owners} if owners else {}),
        },
        "value": tier.priority,
        "globalDefault": False,
        "preemptionPolicy": "Never" if tier.preemptible else "PreemptLowerPriority",
        "description": (
            f"gpupool tier {tier.name} of InferencePool {pool_name} "
            f"({tier.reserved_percent}% reserved; {role})."
        ),
    }


# --------------------------------------------------------------------------------------------------
# ModelDeployment


def _check_inputs(md: ModelDeployment, pool: InferencePool, plan: Plan, replicas: int) -> Tier:
    where = f"ModelDeployment {md.metadata.get('namespace')}/{md.metadata.get('name')}"
    if not plan.fits:
        raise ValueError(f"{where} cannot be rendered: its plan does not fit. {plan.reason}")
    if replicas < 0:
        raise ValueError(f"{where}: replicas must be 0 or more, got {replicas}")
    accelerator = get_accelerator(pool.spec.accelerator)
    if plan.accelerator != accelerator.name:
        raise ValueError(
            f"{where}: the plan is for {plan.accelerator}, but pool "
            f"{pool.metadata.get('name')} has {accelerator.name}"
        )
    spec = md.spec
    mismatches = [
        f"{field} {planned} (spec: {wanted})"
        for field, planned, wanted in (
            ("precision", plan.precision.value, spec.precision.value),
            ("kvCacheDtype", plan.kv_cache_dtype.value, spec.kv_cache_dtype.value),
            ("maxModelLen", plan.max_model_len, spec.max_model_len),
        )
        if planned != wanted
    ]
    if mismatches:
        raise ValueError(f"{where}: the plan was made for {', '.join(mismatches)}; re-plan")
    per_node = plan.accelerators_per_instance // max(1, plan.nodes_per_instance)
    if per_node > pool.spec.accelerators_per_node:
        raise ValueError(
            f"{where}: an instance of {per_node} accelerators per node exceeds the "
            f"{pool.spec.accelerators_per_node} accelerators of a node of the pool"
        )
    if accelerator.vendor is not pool.spec.vendor:
        raise ValueError(
            f"pool {pool.metadata.get('name')}: accelerator {accelerator.name} is "
            f"{accelerator.vendor.value}, not {pool.spec.vendor.value}"
        )
    if spec.precision not in accelerator.supported_precisions:
        raise UnsupportedEngineError(
            f"{where}: {accelerator.name} cannot serve {spec.precision.value} weights"
        )
    tier = pool.spec.tier(spec.tier)
    if tier is None:
        known = ", ".join(t.name for t in pool.spec.tiers)
        raise ValueError(f"{where}: pool {pool.metadata.get('name')} has no tier {spec.tier!r} ({known})")
    return tier


def _weights(md: ModelDeployment, cache_claim: str | None = None) -> WeightsRef:
    spec = md.spec
    served = spec.model.served_name or spec.model.name
    if served is None:
        raise ValueError("model.servedName is required with an explicit model.architecture")
    weights = spec.weights
    if cache_claim is not None and weights is not None and weights.hugging_face is not None:
        # The cache holds the repository at the spec's revision: load it from the volume.
        return WeightsRef(cached_model_path(weights.hugging_face.id), None, served, local=True)
    if weights is not None and weights.pvc is not None:
        return WeightsRef(pvc_model_path(weights.pvc.path), None, served, local=True)
    if weights is not None and weights.hugging_face is not None:
        hf = weights.hugging_face
        return WeightsRef(hf.id, hf.revision, served, local=False)
    if spec.model.name is None:
        raise ValueError("weights is required with an explicit model.architecture")
    return WeightsRef(get_model(spec.model.name).hf_id, None, served, local=False)


def _env(md: ModelDeployment, weights: WeightsRef, vendor: Vendor) -> list[Obj]:
    env: list[Obj] = [
        {"name": "HOME", "value": HOME},
        {"name": "USER", "value": USER_NAME},
        {"name": "LOGNAME", "value": USER_NAME},
        {"name": "HF_HOME", "value": f"{HOME}/.cache/huggingface"},
        # No usage reports to vLLM's collector from inside a production cluster.
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
    ]
    if vendor is Vendor.ASCEND:
        # The library path is the default image's; another image keeps its own.
        own_image = md.spec.engine.image is None
        env += [
            {"name": name, "value": value}
            for name, value in ASCEND_ENV
            if name != "LD_LIBRARY_PATH" or own_image
        ]
    if weights.local:
        # Weights and tokenizer come from the volume; never reach out to the Hub.
        env.append({"name": "HF_HUB_OFFLINE", "value": "1"})
    source = md.spec.weights
    token = source.hugging_face.token_secret_ref if source and source.hugging_face else None
    if token is not None and not weights.local:
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": token.name, "key": token.key}},
            }
        )
    return sorted(env, key=lambda item: str(item["name"]))


def _http_probe(path: str, *, period: int, failures: int) -> Obj:
    return {
        "httpGet": {"path": path, "port": "http", "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
        "successThreshold": 1,
        "failureThreshold": failures,
    }


def _probes(engine: EngineType, load_time_seconds: int) -> Obj:
    ready, live = ("/health", "/health")
    if engine is EngineType.TRITON:
        ready, live = ("/v2/health/ready", "/v2/health/live")
    return {
        "startupProbe": _http_probe(
            ready,
            period=STARTUP_PERIOD_SECONDS,
            failures=startup_failure_threshold(load_time_seconds),
        ),
        "readinessProbe": _http_probe(ready, period=READINESS_PERIOD_SECONDS, failures=READINESS_FAILURES),
        "livenessProbe": _http_probe(live, period=LIVENESS_PERIOD_SECONDS, failures=LIVENESS_FAILURES),
    }


def engine_ports(engine: EngineType) -> list[Obj]:
    """The engine container's named ports: http (API, and vLLM's /metrics), Triton's grpc and metrics."""
    ports = [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    if engine is EngineType.TRITON:
        ports += [
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ]
    return ports


def _passwd() -> str:
    return (
        "root:x:0:0:root:/root:/bin/sh\n"
        f"{USER_NAME}:x:{RUN_AS_USER}:{RUN_AS_GROUP}:{USER_NAME}:{HOME}:/usr/sbin/nologin\n"
    )


def workload_name(md_name: str, pool_name: str | None = None) -> str:
    """The Deployment of a model: its own name on one pool (spec.pool), `<name>-<pool>` per pool
    when it may use several (spec.pools)."""
    return lbl.object_name(md_name, pool_name or "")


def render_model_deployment(
    md: ModelDeployment,
    pool: InferencePool,
    plan: Plan,
    replicas: int,
    *,
    per_pool: bool = False,
    cache_claim: str | None = None,
) -> list[Obj]:
    """The ConfigMaps, Deployment and Service that serve `md` on `pool` as `plan` sizes it.

    With `per_pool` (a model of several pools), the Deployment and ConfigMaps are named after the
    pool as well and the Deployment selects the pool's pods only; the Service, the same for every
    pool, selects the model's pods on all of them.

    A plan over several nodes (nodesPerInstance > 1) gets a LeaderWorkerSet instead of the
    Deployment (gpupool.render.lws), and its Service selects the groups' leaders.

    Raises UnsupportedEngineError (a ValueError) when the engine cannot run on the pool's
    accelerators (Triton on Ascend) or not at the requested precision, and ValueError when the
    plan does not fit, belongs to another spec or pool, or the metadata lacks a name or a
    namespace. Without a uid (a preview of a file) the objects carry no owner reference.

    `cache_claim` names the weights cache's PersistentVolumeClaim (spec.weights.cache): the pods
    mount it read-only and the engine loads the repository's directory in it, offline.
    """
    spec = md.spec
    engine = spec.engine.type
    vendor: Vendor = pool.spec.vendor
    check_supported(engine, vendor)
    tier = _check_inputs(md, pool, plan, replicas)
    accelerator = get_accelerator(pool.spec.accelerator)

    owners = owner_references(API_VERSION, "ModelDeployment", md.metadata)
    md_name: str = md.metadata["name"]
    namespace: str = md.metadata.get("namespace", "")
    if not namespace:
        raise ValueError(f"ModelDeployment {md_name!r} metadata needs a namespace")
    pool_name: str = pool.metadata.get("name", "")
    if not pool_name:
        raise ValueError("InferencePool metadata needs a name")

    weights = _weights(md, cache_claim)
    tp = plan.tensor_parallel
    # Each pod holds its node's share of the instance: data-parallel attention ranks each take a
    # tensor-parallel group of accelerators, and a group over several nodes splits evenly by node.
    accelerators = plan.accelerators_per_instance // max(1, plan.nodes_per_instance)
    labels = lbl.workload_labels(
        md_name,
        model=spec.model.name or weights.served_name,
        pool=pool_name,
        tier=tier.name,
        engine=engine.value,
    )
    name = lbl.object_name(md_name)
    workload = workload_name(md_name, pool_name if per_pool else None)
    part = f"{pool_name}-" if per_pool else ""

    def metadata(object_name: str) -> Obj:
        return {
            "name": object_name,
            "namespace": namespace,
            "labels": dict(labels),
            **({"ownerReferences": owners} if owners else {}),
        }

    # One source for the plan and the command line: the engine settings the plan was sized with.
    options = engine_options(
        weights,
        tensor_parallel=tp,
        max_model_len=plan.max_model_len,
        gpu_memory_utilization=plan.gpu_memory_utilization,
        precision=plan.precision,
        kv=plan.kv_cache_dtype,
        vendor=vendor,
        max_num_batched_tokens=plan.max_num_batched_tokens,
        max_num_seqs=plan.max_num_seqs,
        expert_parallel=plan.expert_parallel is not None,
        data_parallel=plan.data_parallel,
        pipeline_parallel=plan.pipeline_parallel,
        data_parallel_local=plan.data_parallel_local,
    )

    config_maps: list[Obj] = []
    volumes: list[Obj] = [
        {
            "name": "shm",
            "emptyDir": {"medium": "Memory", "sizeLimit": f"{SHM_GIB_PER_ACCELERATOR * accelerators}Gi"},
        },
        {"name": "home", "emptyDir": {}},
    ]
    mounts: list[Obj] = [
        {"name": "shm", "mountPath": "/dev/shm"},
        {"name": "home", "mountPath": HOME},
    ]
    claim = cache_claim if weights.local and cache_claim is not None else None
    if claim is None and spec.weights is not None and spec.weights.pvc is not None:
        claim = spec.weights.pvc.claim_name
    if claim is not None:
        volumes.append(
            {
                "name": "weights",
                "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
            }
        )
        mounts.append({"name": "weights", "mountPath": WEIGHTS_MOUNT_PATH, "readOnly": True})

    if engine is EngineType.TRITON:
        model_name = triton.triton_model_name(weights.served_name)
        repository = lbl.object_name(md_name, f"{part}model-repository")
        config_maps.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata(repository),
                "data": {
                    triton.CONFIG_KEY: triton.config_pbtxt(model_name),
                    triton.ENGINE_ARGS_KEY: triton.model_json(options),
                },
            }
        )
        volumes.append(
            {
                "name": "model-repository",
                "configMap": {"name": repository, "items": triton.repository_items(model_name)},
            }
        )
        mounts.append(
            {
                "name": "model-repository",
                "mountPath": triton.MODEL_REPOSITORY_PATH,
                "readOnly": True,
            }
        )
        command = ["tritonserver"]
        args = triton.tritonserver_args(
            exit_timeout_seconds=ENGINE_SHUTDOWN_SECONDS, extra_args=spec.engine.extra_args
        )
    else:
        command = ["vllm", "serve"]
        args = vllm_serve_args(
            options,
            served_name=weights.served_name,
            shutdown_timeout_seconds=ENGINE_SHUTDOWN_SECONDS,
            extra_args=spec.engine.extra_args,
        )

    if vendor is Vendor.ASCEND:
        for volume_name, path, kind in ASCEND_HOST_PATHS:
            volumes.append({"name": volume_name, "hostPath": {"path": path, "type": kind}})
            mounts.append({"name": volume_name, "mountPath": path, "readOnly": True})
        identity = lbl.object_name(md_name, f"{part}passwd")
        config_maps.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata(identity),
                "data": {"passwd": _passwd()},
            }
        )
        volumes.append({"name": "passwd", "configMap": {"name": identity}})
        mounts.append({"name": "passwd", "mountPath": "/etc/passwd", "subPath": "passwd", "readOnly": True})

    container: Obj = {
        "name": engine.value,
        "image": spec.engine.image or default_image(engine, vendor),
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "args": args,
        "workingDir": HOME,
        "env": _env(md, weights, vendor),
        "ports": engine_ports(engine),
        "resources": instance_resources(accelerator, accelerators, pool.spec.resource_name()),
        "volumeMounts": mounts,
        **_probes(engine, plan.load_time_seconds),
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": False,
            "runAsNonRoot": True,
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: Obj = {
        "priorityClassName": lbl.priority_class_name(pool_name, tier.name),
        "nodeSelector": dict(sorted(pool.spec.node_selector.items())),
        "tolerations": [toleration.to_wire() for toleration in pool.spec.tolerations],
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_GROUP,
            "fsGroup": RUN_AS_GROUP,
            # A weights volume of hundreds of GB is not re-chowned on every mount.
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    pod_labels = {**labels, lbl.REVISION_LABEL: engine_revision(pod_spec, config_maps)}
    template: Obj = {"metadata": {"labels": dict(sorted(pod_labels.items()))}, "spec": pod_spec}
    template["metadata"]["annotations"] = {lbl.CONFIG_HASH_ANNOTATION: config_hash(template, config_maps)}

    selector = lbl.selector_labels(md_name)
    pods = {**selector, lbl.POOL_LABEL: lbl.label_value(pool_name)} if per_pool else selector
    deployment: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(workload),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": REVISION_HISTORY_LIMIT,
            "progressDeadlineSeconds": startup_budget_seconds(plan.load_time_seconds)
            + PROGRESS_MARGIN_SECONDS,
            "selector": {"matchLabels": dict(sorted(pods.items()))},
            "strategy": rollout_strategy(replicas, spec.rollout.strategy),
            "template": template,
        },
    }
    service: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [
                {
                    "name": port["name"],
                    "port": port["containerPort"],
                    "targetPort": port["name"],
                    "protocol": "TCP",
                }
                for port in engine_ports(engine)
            ],
        },
    }
    queue: list[Obj] = []
    if kueue.uses_kueue(pool):
        # Kueue admits each instance from the model's own LocalQueue (gpupool.render.kueue).
        deployment["metadata"]["labels"][kueue.QUEUE_NAME_LABEL] = workload
        queue = [kueue.local_queue(pool, tier, workload, namespace, owners)]
    if plan.nodes_per_instance > 1:
        # An instance over several nodes: one LeaderWorkerSet group of one pod per node.
        if engine is not EngineType.VLLM:
            raise UnsupportedEngineError(
                f"{md_name}: the plan spans {plan.nodes_per_instance} nodes per instance, which "
                "gpupool runs with vLLM only; set engine.type to vllm"
            )
        network = pool.spec.inter_node
        group = lws.leader_worker_set(
            deployment,
            group_size=plan.nodes_per_instance,
            rdma_resource=network.rdma_resource,
            exclusive_topology=network.exclusive_topology_key,
            data_parallel_local=plan.data_parallel_local,
        )
        return [*config_maps, *queue, group, lws.leader_service(service)]
    return [*config_maps, *queue, deployment, service]
