"""Properties every rendering satisfies, for any valid ModelDeployment, pool and plan."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from render_fixtures import make_plan, to_yaml

from gpupool.api.v1alpha1 import EngineType, InferencePool, ModelDeployment
from gpupool.catalog.accelerators import accelerator_names, get_accelerator
from gpupool.catalog.models import model_names
from gpupool.catalog.types import KVCacheDtype, Vendor
from gpupool.render import SELECTOR_LABEL, render_model_deployment
from gpupool.render.labels import is_valid_label_value, is_valid_name
from gpupool.render.workload import DRAIN_SECONDS, STARTUP_MIN_SECONDS

REQUIRED_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
    "gpupool.io/model-deployment",
    "gpupool.io/model",
    "gpupool.io/pool",
    "gpupool.io/tier",
    "gpupool.io/engine",
}

dns_label = st.from_regex(r"[a-z]([-a-z0-9]{0,30}[a-z0-9])?", fullmatch=True)
dns_subdomain = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", fullmatch=True)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ModelDeployment, InferencePool, Any, int]:
    accelerator = get_accelerator(draw(st.sampled_from(accelerator_names())))
    vendor = accelerator.vendor
    engines = [EngineType.VLLM] + ([EngineType.TRITON] if vendor is Vendor.NVIDIA else [])
    engine = draw(st.sampled_from(engines))
    precision = draw(st.sampled_from(accelerator.supported_precisions))
    kv_choices = [KVCacheDtype.AUTO, KVCacheDtype.BF16, KVCacheDtype.FP16]
    if vendor is Vendor.NVIDIA:
        kv_choices.append(KVCacheDtype.FP8)
    kv = draw(st.sampled_from(kv_choices))
    per_node = draw(st.sampled_from([1, 2, 4, 8]))
    tp = draw(st.sampled_from([t for t in (1, 2, 4, 8) if t <= per_node]))
    max_model_len = draw(st.integers(min_value=128, max_value=131_072))
    tier = draw(st.sampled_from(["P0", "P1", "P2"]))

    weights = draw(
        st.one_of(
            st.none(),
            st.builds(
                lambda repo, rev, secret: {
                    "huggingFace": {
                        "id": repo,
                        **({"revision": rev} if rev else {}),
                        **({"tokenSecretRef": {"name": secret, "key": "token"}} if secret else {}),
                    }
                },
                st.from_regex(r"[A-Za-z0-9]{1,20}/[A-Za-z0-9._-]{1,40}", fullmatch=True),
                st.one_of(st.none(), st.from_regex(r"[0-9a-f]{7,40}", fullmatch=True)),
                st.one_of(st.none(), dns_label),
            ),
            st.builds(
                lambda claim, path: {"pvc": {"claimName": claim, "path": path}},
                dns_label,
                st.from_regex(r"/([A-Za-z0-9._-]{1,20}/){0,3}", fullmatch=True),
            ),
        )
    )
    served = draw(st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9/._-]{0,80}", fullmatch=True)))
    extra = draw(st.lists(st.from_regex(r"--[a-z-]{1,20}", fullmatch=True), max_size=3))
    md_name = draw(dns_subdomain)
    pool_name = draw(dns_label)

    model: dict[str, Any] = {"name": draw(st.sampled_from(model_names()))}
    if served:
        model["servedName"] = served
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": md_name, "namespace": draw(dns_label), "uid": "u-1"},
            "spec": {
                "model": model,
                **({"weights": weights} if weights else {}),
                "precision": precision.value,
                "kvCacheDtype": kv.value,
                "maxModelLen": max_model_len,
                "engine": {"type": engine.value, "extraArgs": extra},
                "pool": pool_name,
                "tier": tier,
            },
        }
    )
    pool = InferencePool.model_validate(
        {
            "metadata": {"name": pool_name, "uid": "u-2"},
            "spec": {
                "vendor": vendor.value,
                "accelerator": accelerator.name,
                "acceleratorsPerNode": per_node,
                "nodeSelector": {"gpu-type": vendor.value},
                "tolerations": [
                    {"key": accelerator.resource_name, "operator": "Exists", "effect": "NoSchedule"}
                ],
            },
        }
    )
    plan = make_plan(
        accelerator=accelerator.name,
        tensor_parallel=tp,
        max_model_len=max_model_len,
        load_time_seconds=draw(st.integers(min_value=0, max_value=20_000)),
        total_bytes=accelerator.memory_bytes,
        weights_bytes=accelerator.memory_bytes // 4,
        kv_cache_bytes_per_token=131_072,
        accelerators_per_node=per_node,
        precision=precision,
        kv_cache_dtype=kv,
        gpu_memory_utilization=draw(st.sampled_from([0.8, 0.85, 0.9, 0.92, 0.95])),
    )
    return md, pool, plan, draw(st.integers(min_value=0, max_value=20))


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_rendered_objects_are_valid_and_deterministic(
    scenario: tuple[ModelDeployment, InferencePool, Any, int],
) -> None:
    md, pool, plan, replicas = scenario
    objects = render_model_deployment(md, pool, plan, replicas)

    # Deterministic: same input, same objects, same bytes.
    again = render_model_deployment(md, pool, plan, replicas)
    assert again == objects
    assert to_yaml(again) == to_yaml(objects)
    assert json.dumps(objects) == json.dumps(again)

    kinds = [o["kind"] for o in objects]
    assert kinds[-2:] == ["Deployment", "Service"]
    assert set(kinds[:-2]) <= {"ConfigMap"}

    for obj in objects:
        metadata = obj["metadata"]
        assert is_valid_name(metadata["name"]), metadata["name"]
        assert metadata["namespace"] == md.metadata["namespace"]
        assert set(metadata["labels"]) >= REQUIRED_LABELS
        assert all(is_valid_label_value(v) for v in metadata["labels"].values())
        (owner,) = metadata["ownerReferences"]
        assert owner["uid"] == "u-1" and owner["controller"] is True

    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == replicas
    assert list(spec["selector"]["matchLabels"]) == [SELECTOR_LABEL]
    template_labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= template_labels.items()

    container = _container(objects)
    resource = get_accelerator(plan.accelerator).resource_name
    assert container["resources"]["requests"][resource] == str(plan.tensor_parallel)
    assert container["resources"]["limits"][resource] == str(plan.tensor_parallel)

    startup = container["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget >= max(STARTUP_MIN_SECONDS, 3 * plan.load_time_seconds)
    grace = spec["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= 60 and grace > DRAIN_SECONDS

    for env in container["env"]:
        if "TOKEN" in env["name"]:
            assert "value" not in env and "secretKeyRef" in env["valueFrom"]

    if md.spec.engine.extra_args:
        assert container["args"][-len(md.spec.engine.extra_args) :] == md.spec.engine.extra_args
