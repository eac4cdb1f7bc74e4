"""One test per rendering rule: what every rendered object must satisfy, and why it matters."""

from __future__ import annotations

from typing import Any

import pytest
from render_fixtures import PLANS, load_pool, make_plan, sample

from gpupool.api.v1alpha1 import ModelDeployment
from gpupool.catalog.accelerators import accelerator_names, get_accelerator
from gpupool.catalog.types import KVCacheDtype, Precision
from gpupool.render import (
    SELECTOR_LABEL,
    UnsupportedEngineError,
    priority_class_name,
    render_model_deployment,
    render_priority_classes,
)
from gpupool.render.labels import is_valid_label_value, is_valid_name
from gpupool.render.workload import (
    DRAIN_SECONDS,
    ENGINE_SHUTDOWN_SECONDS,
    GIB,
    STARTUP_MIN_SECONDS,
    instance_resources,
    startup_budget_seconds,
)

ALL_SAMPLES = sorted(PLANS)


def render(file: str, replicas: int = 1) -> list[dict[str, Any]]:
    md, pool, plan = sample(file)
    return render_model_deployment(md, pool, plan, replicas)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = by_kind(objects, "Deployment")
    return found


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any]
    (found,) = deployment(objects)["spec"]["template"]["spec"]["containers"]
    return found


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment(objects)["spec"]["template"]["spec"]
    return spec


def with_spec(md: ModelDeployment, **changes: Any) -> ModelDeployment:
    return md.model_copy(update={"spec": md.spec.model_copy(update=changes)})


def arg_value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


# --- resources ------------------------------------------------------------------------------------


@pytest.mark.parametrize("file", ALL_SAMPLES)
def test_accelerator_resource_equals_tensor_parallel(file: str) -> None:
    _, pool, plan = sample(file)
    resource = "nvidia.com/gpu" if pool.spec.vendor.value == "nvidia" else "huawei.com/Ascend910"
    resources = container(render(file))["resources"]
    assert resources["requests"][resource] == str(plan.tensor_parallel)
    assert resources["limits"][resource] == str(plan.tensor_parallel)
    assert arg_or_json_tp(render(file)) == plan.tensor_parallel


def arg_or_json_tp(objects: list[dict[str, Any]]) -> int:
    import json

    args = container(objects)["args"]
    if "--tensor-parallel-size" in args:
        return int(arg_value(args, "--tensor-parallel-size"))
    (repo,) = by_kind(objects, "ConfigMap")
    return int(json.loads(repo["data"]["model.json"])["tensor_parallel_size"])


@pytest.mark.parametrize("accelerator", accelerator_names())
@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_cpu_and_memory_fit_an_8_accelerator_node_of_96_cpus_and_1_tib(accelerator: str, tp: int) -> None:
    resources = instance_resources(get_accelerator(accelerator), tp)
    assert resources["requests"] == resources["limits"]  # Guaranteed QoS
    cpu = int(resources["requests"]["cpu"])
    memory_gib = int(resources["requests"]["memory"].removesuffix("Gi"))
    instances_per_node = 8 // tp
    assert cpu * instances_per_node <= 96 - 8  # room for the system and DaemonSets
    assert memory_gib * instances_per_node <= 1024 - 128
    assert cpu / tp <= 12 and memory_gib / tp <= 128
    # Never less host memory than the device memory it feeds.
    assert memory_gib * GIB >= min(get_accelerator(accelerator).memory_bytes, 80 * GIB) * tp


def test_rendered_resources_follow_the_rule() -> None:
    resources = container(render("qwen2.5-72b-vllm-nvidia.yaml"))["resources"]["requests"]
    assert resources == {"cpu": "40", "memory": "384Gi", "nvidia.com/gpu": "4"}
    resources = container(render("qwen2.5-7b-vllm-ascend.yaml"))["resources"]["requests"]
    # 64 GiB of device memory (npu-smi: 65,536 MB) and 16 GiB on top.
    assert resources == {"cpu": "10", "memory": "80Gi", "huawei.com/Ascend910": "1"}


def test_pods_request_the_resource_the_pool_names() -> None:
    md, pool, plan = sample("qwen2.5-7b-vllm-ascend.yaml")
    cce = pool.model_copy(
        update={"spec": pool.spec.model_copy(update={"accelerator_resource": "huawei.com/ascend-1980"})}
    )
    resources = container(render_model_deployment(md, cce, plan, 1))["resources"]
    for amounts in (resources["requests"], resources["limits"]):
        assert amounts == {"cpu": "10", "memory": "80Gi", "huawei.com/ascend-1980": "1"}


@pytest.mark.parametrize("file", ALL_SAMPLES)
def test_shm_is_memory_backed_and_sized_by_tensor_parallel(file: str) -> None:
    objects = render(file)
    plan = PLANS[file]
    (shm,) = [v for v in pod_spec(objects)["volumes"] if v["name"] == "shm"]
    assert shm["emptyDir"]["medium"] == "Memory"
    assert shm["emptyDir"]["sizeLimit"] == f"{2 * plan.tensor_parallel}Gi"
    assert {"name": "shm", "mountPath": "/dev/shm"} in container(objects)["volumeMounts"]


# --- identity, selector, ownership, labels --------------------------------------------------------


@pytest.mark.parametrize("file", ALL_SAMPLES)
def test_selector_uses_only_the_immutable_identity_label(file: str) -> None:
    objects = render(file)
    name = sample(file)[0].metadata["name"]
    assert deployment(objects)["spec"]["selector"] == {"matchLabels": {SELECTOR_LABEL: name}}
    (service,) = by_kind(objects, "Service")
    assert service["spec"]["selector"] == {SELECTOR_LABEL: name}
    template_labels = deployment(objects)["spec"]["template"]["metadata"]["labels"]
    assert template_labels[SELECTOR_LABEL] == name


def test_selector_does_not_change_when_model_pool_or_tier_change() -> None:
    md, pool, plan = sample("llama-3.1-8b-vllm-nvidia.yaml")
    before = deployment(render_model_deployment(md, pool, plan, 1))
    moved = with_spec(md, tier="P0", model=md.spec.model.model_copy(update={"served_name": "x"}))
    after = deployment(render_model_deployment(moved, pool, plan, 1))
    assert after["spec"]["selector"] == before["spec"]["selector"]
    assert after["metadata"]["labels"]["gpupool.io/tier"] == "P0"


@pytest.mark.parametrize("file", ALL_SAMPLES)
def test_every_object_is_owned_by_the_model_deployment(file: str) -> None:
    md = sample(file)[0]
    for obj in render(file):
        assert obj["metadata"]["namespace"] == "inference"
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "gpupool.io/v1alpha1",
                "kind": "ModelDeployment",
                "name": md.metadata["name"],
                "uid": md.metadata["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


@pytest.mark.parametrize("file", ALL_SAMPLES)
def test_every_object_carries_valid_identifying_labels(file: str) -> None:
    md, pool, _ = sample(file)
    for obj in render(file):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "gpupool"
        assert labels["app.kubernetes.io/component"] == "inference-engine"
        assert labels["app.kubernetes.io/instance"] == md.metadata["name"]
        assert labels["gpupool.io/model-deployment"] == md.metadata["name"]
        assert labels["gpupool.io/pool"] == pool.metadata["name"]
        assert labels["gpupool.io/tier"] == md.spec.tier
        assert labels["gpupool.io/engine"] == md.spec.engine.type.value
        assert labels["gpupool.io/model"] == md.spec.model.name
        assert all(is_valid_label_value(v) for v in labels.values())
        assert is_valid_name(obj["metadata"]["name"])


def test_a_preview_without_uid_has_no_owner_reference_rather_than_a_false_one() -> None:
    md, pool, plan = sample("llama-3.1-8b-vllm-nvidia.yaml")
    md = md.model_copy(update={"metadata": {"name": "a", "namespace": "b"}})
    for obj in render_model_deployment(md, pool, plan, 1):
        assert "ownerReferences" not in obj["metadata"]


def test_missing_name_or_namespace_is_refused() -> None:
    md, pool, plan = sample("llama-3.1-8b-vllm-nvidia.yaml")
    with pytest.raises(ValueError, match="needs a name"):
        render_model_deployment(md.model_copy(update={"metadata": {"uid": "u"}}), pool, plan, 1)
    with pytest.raises(ValueError, match="namespace"):
        render_model_deployment(md.model_copy(update={"metadata": {"name": "a", "uid": "u"}}), pool, plan, 1)


# --- secrets and weights --------------------------------------------------------------------------


@pytest.mark.parametrize("file", ALL_SAMPLES)
def test_hugging_face_token_only_through_secret_key_ref(file: str) -> None:
    md = sample(file)[0]
    env = container(render(file))["env"]
    tokens = [e for e in env if "TOKEN" in e["name"]]
    hf = md.spec.weights.hugging_face if md.spec.weights else None
    if hf is None or hf.token_secret_ref is None:
        assert tokens == []
        return
    assert tokens == [
        {
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}},
        }
    ]
    assert all("value" not in e for e in tokens)


def test_pvc_weights_are_mounted_read_only_and_served_from_the_mount() -> None:
    objects = render("qwen2.5-7b-vllm-ascend.yaml")
    (weights,) = [v for v in pod_spec(objects)["volumes"] if v["name"] == "weights"]
    assert weights["persistentVolumeClaim"] == {"claimName": "model-weights", "readOnly": True}
    assert {"name": "weights", "mountPath": "/mnt/weights", "readOnly": True} in container(objects)[
        "volumeMounts"
    ]
    assert container(objects)["args"][0] == "/mnt/weights/Qwen/Qwen2.5-7B-Instruct"
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in container(objects)["env"]


def test_hugging_face_revision_pins_model_and_tokenizer() -> None:
    md, pool, plan = sample("llama-3.1-8b-vllm-nvidia.yaml")
    assert md.spec.weights is not None and md.spec.weights.hugging_face is not None
    hf = md.spec.weights.hugging_face.model_copy(update={"revision": "0e9e39f"})
    md = with_spec(md, weights=md.spec.weights.model_copy(update={"hugging_face": hf}))
    args = container(render_model_deployment(md, pool, plan, 1))["args"]
    assert args[0] == "meta-llama/Llama-3.1-8B-Instruct"
    assert arg_value(args, "--revision") == "0e9e39f"
    assert arg_value(args, "--tokenizer-revision") == "0e9e39f"


def test_catalog_weights_default_to_the_catalog_hugging_face_id() -> None:
    args = container(render("qwen2.5-72b-vllm-nvidia.yaml"))["args"]
    assert args[0] == "Qwen/Qwen2.5-72B-Instruct"
    assert "--revision" not in args


# --- engine arguments -----------------------------------------------------------------------------


def test_vllm_arguments_come_from_the_plan_then_extra_args() -> None:
    args = container(render("llama-3.1-8b-vllm-nvidia.yaml"))["args"]
    assert arg_value(args, "--tensor-parallel-size") == "1"
    assert arg_value(args, "--max-model-len") == "8192"
    assert arg_value(args, "--gpu-memory-utilization") == "0.9"
    assert arg_value(args, "--served-model-name") == "llama-3.1-8b-instruct"
    assert arg_value(args, "--port") == "8000"
    # engine.maxNumSeqs is sized into the plan and passed from it.
    assert arg_value(args, "--max-num-seqs") == "128"
    assert "--quantization" not in args and "--kv-cache-dtype" not in args


def test_extra_args_come_last() -> None:
    md, pool, plan = sample("llama-3.1-8b-vllm-nvidia.yaml")
    engine = md.spec.engine.model_copy(update={"extra_args": ["--enable-prefix-caching"]})
    md = md.model_copy(update={"spec": md.spec.model_copy(update={"engine": engine})})
    args = container(render_model_deployment(md, pool, plan, 1))["args"]
    assert args[-1] == "--enable-prefix-caching"


def precision_args(precision: Precision, kv: KVCacheDtype, sample_file: str) -> list[str]:
    md, pool, plan = sample(sample_file)
    md = with_spec(md, precision=precision, kv_cache_dtype=kv)
    plan = plan.model_copy(update={"precision": precision, "kv_cache_dtype": kv})
    return list(container(render_model_deployment(md, pool, plan, 1))["args"])


def test_fp8_weights_and_kv_cache_on_nvidia() -> None:
    args = precision_args(Precision.FP8, KVCacheDtype.FP8, "llama-3.1-8b-vllm-nvidia.yaml")
    assert arg_value(args, "--quantization") == "fp8"
    assert arg_value(args, "--kv-cache-dtype") == "fp8"
    assert "--dtype" not in args


@pytest.mark.parametrize("precision", [Precision.INT8, Precision.INT4])
def test_int_checkpoints_on_nvidia_let_vllm_read_the_method(precision: Precision) -> None:
    args = precision_args(precision, KVCacheDtype.AUTO, "llama-3.1-8b-vllm-nvidia.yaml")
    assert "--quantization" not in args and "--dtype" not in args


@pytest.mark.parametrize("precision", [Precision.INT8, Precision.INT4])
def test_int_checkpoints_on_ascend_use_the_ascend_method(precision: Precision) -> None:
    args = precision_args(precision, KVCacheDtype.AUTO, "qwen2.5-7b-vllm-ascend.yaml")
    assert arg_value(args, "--quantization") == "ascend"


@pytest.mark.parametrize(
    ("precision", "kv"), [(Precision.FP8, KVCacheDtype.AUTO), (Precision.BF16, KVCacheDtype.FP8)]
)
def test_fp8_on_ascend_is_unsupported(precision: Precision, kv: KVCacheDtype) -> None:
    with pytest.raises(UnsupportedEngineError, match="Ascend"):
        precision_args(precision, kv, "qwen2.5-7b-vllm-ascend.yaml")


def test_triton_model_repository_configmap() -> None:
    import json

    objects = render("glm-4-9b-triton-nvidia.yaml")
    (repo,) = by_kind(objects, "ConfigMap")
    config = repo["data"]["config.pbtxt"]
    assert 'backend: "vllm"' in config
    assert "max_batch_size: 0" in config
    assert "kind: KIND_MODEL" in config
    assert "decoupled: true" in config
    assert "dynamic_batching {" not in config
    engine = json.loads(repo["data"]["model.json"])
    assert engine["model"] == "zai-org/glm-4-9b-chat-hf"
    assert engine["tensor_parallel_size"] == 1
    assert engine["max_model_len"] == 8192
    assert engine["disable_log_stats"] is False
    (volume,) = [v for v in pod_spec(objects)["volumes"] if v["name"] == "model-repository"]
    assert [item["path"] for item in volume["configMap"]["items"]] == [
        "glm-4-9b-chat/config.pbtxt",
        "glm-4-9b-chat/1/model.json",
    ]
    assert "--model-repository=/models" in container(objects)["args"]


def test_triton_exposes_http_grpc_and_metrics() -> None:
    objects = render("glm-4-9b-triton-nvidia.yaml")
    (service,) = by_kind(objects, "Service")
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
        ("http", 8000),
        ("grpc", 8001),
        ("metrics", 8002),
    ]
    assert service["spec"]["type"] == "ClusterIP"


# --- probes and drain -----------------------------------------------------------------------------


@pytest.mark.parametrize("file", ALL_SAMPLES)
def test_startup_probe_budget_covers_the_load_time(file: str) -> None:
    probe = container(render(file))["startupProbe"]
    budget = probe["periodSeconds"] * probe["failureThreshold"]
    load = PLANS[file].load_time_seconds
    assert budget >= 3 * load
    assert budget >= STARTUP_MIN_SECONDS


def test_startup_budget_grows_with_a_slow_load() -> None:
    assert startup_budget_seconds(60) == STARTUP_MIN_SECONDS
    assert startup_budget_seconds(1200) == 3600


@pytest.mark.parametrize("file", ALL_SAMPLES)
def test_liveness_never_runs_before_startup_and_is_lenient(file: str) -> None:
    engine = container(render(file))
    # Kubernetes runs no liveness (nor readiness) check until the startup probe has succeeded.
    assert "startupProbe" in engine
    liveness = engine["livenessProbe"]
    assert "initialDelaySeconds" not in liveness
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 180


@pytest.mark.parametrize("file", ALL_SAMPLES)
def test_readiness_means_model_loaded_and_serving(file: str) -> None:
    objects = render(file)
    path = container(objects)["readinessProbe"]["httpGet"]["path"]
    triton = sample(file)[0].spec.engine.type.value == "triton"
    assert path == ("/v2/health/ready" if triton else "/health")
    assert container(objects)["startupProbe"]["httpGet"]["path"] == path


@pytest.mark.parametrize("file", ALL_SAMPLES)
def test_drain_then_graceful_shutdown_within_the_grace_period(file: str) -> None:
    objects = render(file)
    grace = pod_spec(objects)["terminationGracePeriodSeconds"]
    assert grace >= 60
    assert container(objects)["lifecycle"] == {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}}
    args = container(objects)["args"]
    if "--shutdown-timeout" in args:
        shutdown = int(arg_value(args, "--shutdown-timeout"))
    else:
        (flag,) = [a for a in args if a.startswith("--exit-timeout-secs=")]
        shutdown = int(flag.split("=")[1])
    assert shutdown == ENGINE_SHUTDOWN_SECONDS
    assert DRAIN_SECONDS + shutdown < grace


# --- security -------------------------------------------------------------------------------------


@pytest.mark.parametrize("file", ALL_SAMPLES)
def test_runs_as_non_root_with_nothing_extra(file: str) -> None:
    objects = render(file)
    pod = pod_spec(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["runAsGroup"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    security = container(objects)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in security
    env = {e["name"]: e.get("value") for e in container(objects)["env"]}
    assert env["HOME"] == env["HF_HOME"].removesuffix("/.cache/huggingface")


def test_ascend_mounts_the_driver_read_only_and_gives_hccl_a_passwd_entry() -> None:
    objects = render("deepseek-r1-distill-qwen-32b-vllm-ascend.yaml")
    mounts = {m["mountPath"]: m for m in container(objects)["volumeMounts"]}
    for path in ("/usr/local/Ascend/driver", "/usr/local/dcmi", "/etc/ascend_install.info"):
        assert mounts[path]["readOnly"] is True
    assert mounts["/etc/passwd"]["subPath"] == "passwd"
    (passwd,) = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-passwd")]
    assert "gpupool:x:1000:1000:" in passwd["data"]["passwd"]
    assert pod_spec(objects)["securityContext"]["runAsUser"] == 1000


def test_nvidia_needs_no_host_paths() -> None:
    for file in ("llama-3.1-8b-vllm-nvidia.yaml", "glm-4-9b-triton-nvidia.yaml"):
        assert all("hostPath" not in v for v in pod_spec(render(file))["volumes"])


# --- scheduling -----------------------------------------------------------------------------------


@pytest.mark.parametrize("file", ALL_SAMPLES)
def test_pool_placement_and_tier_priority(file: str) -> None:
    md, pool, _ = sample(file)
    pod = pod_spec(render(file))
    assert pod["nodeSelector"] == pool.spec.node_selector
    assert pod["tolerations"] == [
        {"key": t.key, "operator": t.operator.value, "effect": t.effect.value}
        for t in pool.spec.tolerations
        if t.effect is not None
    ]
    assert pod["priorityClassName"] == priority_class_name(pool.metadata["name"], md.spec.tier)


def test_tolerations_drop_unset_fields() -> None:
    md, pool, plan = sample("llama-3.1-8b-vllm-nvidia.yaml")
    (toleration,) = pod_spec(render_model_deployment(md, pool, plan, 1))["tolerations"]
    assert toleration == {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


# --- rollout --------------------------------------------------------------------------------------


def test_replicas_and_rollout_strategy() -> None:
    single = deployment(render("llama-3.1-8b-vllm-nvidia.yaml", replicas=1))["spec"]
    assert single["replicas"] == 1
    assert single["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    many = deployment(render("llama-3.1-8b-vllm-nvidia.yaml", replicas=3))["spec"]
    assert many["replicas"] == 3
    assert many["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert many["revisionHistoryLimit"] <= 5
    zero = deployment(render("llama-3.1-8b-vllm-nvidia.yaml", replicas=0))["spec"]
    assert zero["replicas"] == 0


def test_a_spec_change_changes_the_config_hash_but_a_scale_does_not() -> None:
    md, pool, plan = sample("glm-4-9b-triton-nvidia.yaml")

    def config_hash(objects: list[dict[str, Any]]) -> str:
        annotations = deployment(objects)["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["gpupool.io/config-hash"])

    base = config_hash(render_model_deployment(md, pool, plan, 1))
    assert config_hash(render_model_deployment(md, pool, plan, 3)) == base
    longer = plan.model_copy(update={"max_model_len": 4096})
    shorter = with_spec(md, max_model_len=4096)
    assert config_hash(render_model_deployment(shorter, pool, longer, 1)) != base


# --- refusals -------------------------------------------------------------------------------------


def test_a_plan_that_does_not_fit_is_refused() -> None:
    md, pool, _ = sample("qwen2.5-72b-vllm-nvidia.yaml")
    plan = make_plan(
        accelerator="H100-80GB",
        tensor_parallel=8,
        max_model_len=16384,
        load_time_seconds=400,
        total_bytes=81_559 * 1024**2,
        weights_bytes=10**9,
        kv_cache_bytes_per_token=81_920,
        fits=False,
    )
    with pytest.raises(ValueError, match="does not fit"):
        render_model_deployment(md, pool, plan, 1)


def test_a_plan_for_another_accelerator_or_spec_is_refused() -> None:
    md, pool, plan = sample("llama-3.1-8b-vllm-nvidia.yaml")
    with pytest.raises(ValueError, match="plan is for Ascend910B"):
        render_model_deployment(md, pool, plan.model_copy(update={"accelerator": "Ascend910B"}), 1)
    with pytest.raises(ValueError, match="maxModelLen"):
        render_model_deployment(md, pool, plan.model_copy(update={"max_model_len": 4096}), 1)


def test_an_unknown_tier_is_refused() -> None:
    md, pool, plan = sample("llama-3.1-8b-vllm-nvidia.yaml")
    with pytest.raises(ValueError, match="no tier 'P9'"):
        render_model_deployment(with_spec(md, tier="P9"), pool, plan, 1)


# --- priority classes -----------------------------------------------------------------------------


def test_priority_classes_one_per_tier() -> None:
    pool = load_pool("pool-nvidia-h100.yaml")
    classes = render_priority_classes(pool)
    assert [c["metadata"]["name"] for c in classes] == [
        "gpupool-nvidia-h100-p0",
        "gpupool-nvidia-h100-p1",
        "gpupool-nvidia-h100-p2",
    ]
    assert [c["value"] for c in classes] == [1_000_000, 100_000, 1_000]
    assert [c["preemptionPolicy"] for c in classes] == [
        "PreemptLowerPriority",
        "PreemptLowerPriority",
        "Never",
    ]
    for c in classes:
        assert c["apiVersion"] == "scheduling.k8s.io/v1"
        assert c["globalDefault"] is False
        assert c["description"]
        assert "namespace" not in c["metadata"]
        assert c["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "gpupool.io/v1alpha1",
                "kind": "InferencePool",
                "name": "nvidia-h100",
                "uid": pool.metadata["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert c["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gpupool"


def test_ascend_gets_the_environment_the_image_sets_only_for_root() -> None:
    env = {e["name"]: e.get("value") for e in container(render("qwen2.5-7b-vllm-ascend.yaml"))["env"]}
    assert env["PYTORCH_NPU_ALLOC_CONF"] == "expandable_segments:True"
    assert env["LD_PRELOAD"] == "libjemalloc.so.2"
    nvidia = {e["name"] for e in container(render("llama-3.1-8b-vllm-nvidia.yaml"))["env"]}
    assert not {"PYTORCH_NPU_ALLOC_CONF", "LD_PRELOAD", "LD_LIBRARY_PATH"} & nvidia


def test_ascend_gets_the_library_path_of_the_default_image_only() -> None:
    md, pool, plan = sample("qwen2.5-7b-vllm-ascend.yaml")
    env = {e["name"]: e.get("value") for e in container(render_model_deployment(md, pool, plan, 1))["env"]}
    path = env["LD_LIBRARY_PATH"].split(":")
    # CANN's runtime, the host driver the pod mounts, ATB, the image's Python and /usr/local/lib.
    assert path[0] == "/usr/local/Ascend/cann-9.1.0/lib64"
    assert "/usr/local/Ascend/driver/lib64/driver" in path
    assert path[-2:] == ["/usr/local/python3.12.13/lib", "/usr/local/lib"]
    assert all(entry.startswith("/") for entry in path) and len(set(path)) == len(path)
    mounts = {m["mountPath"] for m in container(render_model_deployment(md, pool, plan, 1))["volumeMounts"]}
    assert "/usr/local/Ascend/driver" in mounts
    own = md.spec.engine.model_copy(update={"image": "registry.example/vllm-ascend:custom"})
    custom = with_spec(md, engine=own)
    names = {e["name"] for e in container(render_model_deployment(custom, pool, plan, 1))["env"]}
    assert "LD_LIBRARY_PATH" not in names and "LD_PRELOAD" in names
