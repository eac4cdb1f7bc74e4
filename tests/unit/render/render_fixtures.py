"""Shared inputs of the rendering tests: the sample manifests, fixed plans, and golden-file checks.

The plans are written out here rather than computed, so that a change of sizing defaults does
not shift the golden files; their figures are what the sizing engine produced for the samples.

Golden files live in tests/golden/render/. To accept a deliberate change of the rendered output:

    GPUPOOL_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/render
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.catalog.types import KVCacheDtype, Precision
from gpupool.sizing import MemoryBreakdown, Plan, QpsSource

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "manifests" / "samples"
GOLDEN = REPO / "tests" / "golden" / "render"
UPDATE_ENV = "GPUPOOL_UPDATE_GOLDEN"

NAMESPACE = "inference"
GIB = 1024**3


def uid_for(name: str) -> str:
    """A fixed, readable UID per object name, as the API server would assign one."""
    digits = "".join(f"{ord(c):x}" for c in name)[:12].ljust(12, "0")
    return f"00000000-0000-4000-8000-{digits}"


def load_pool(file: str) -> InferencePool:
    doc = yaml.safe_load((SAMPLES / file).read_text())
    doc["metadata"]["uid"] = uid_for(doc["metadata"]["name"])
    return InferencePool.model_validate(doc)


def load_model_deployment(file: str, namespace: str = NAMESPACE) -> ModelDeployment:
    doc = yaml.safe_load((SAMPLES / file).read_text())
    doc["metadata"]["namespace"] = namespace
    doc["metadata"]["uid"] = uid_for(doc["metadata"]["name"])
    return ModelDeployment.model_validate(doc)


def make_plan(
    *,
    accelerator: str,
    tensor_parallel: int,
    max_model_len: int,
    load_time_seconds: int,
    total_bytes: int,
    weights_bytes: int,
    kv_cache_bytes_per_token: int,
    instances: int = 1,
    accelerators_per_node: int = 8,
    precision: Precision = Precision.BF16,
    kv_cache_dtype: KVCacheDtype = KVCacheDtype.AUTO,
    gpu_memory_utilization: float = 0.9,
    fits: bool = True,
    price: float | None = None,
    max_num_seqs: int | None = None,
) -> Plan:
    """A plan with consistent figures, built the way the sizing engine lays them out."""
    usable = int(total_bytes * gpu_memory_utilization)
    activations = int(weights_bytes * 0.15)
    overhead = 3 * GIB // 2
    kv = max(0, usable - weights_bytes - activations - overhead)
    tokens = kv // kv_cache_bytes_per_token
    per_node = accelerators_per_node // tensor_parallel
    return Plan(
        accelerator=accelerator,
        fits=fits,
        reason="fixed plan for the rendering tests" if fits else "does not fit: test plan",
        precision=precision,
        kv_cache_dtype=kv_cache_dtype,
        tensor_parallel=tensor_parallel,
        accelerators_per_instance=tensor_parallel,
        instances=instances if fits else 0,
        instances_per_node=per_node,
        nodes=-(-instances // per_node) if fits else 0,
        accelerators=instances * tensor_parallel if fits else 0,
        max_model_len=max_model_len,
        max_concurrent_sequences=tokens // max_model_len,
        memory_per_accelerator=MemoryBreakdown(
            total_bytes=total_bytes,
            usable_bytes=usable,
            weights_bytes=weights_bytes,
            activations_bytes=activations,
            runtime_overhead_bytes=overhead,
            kv_cache_bytes=kv,
            kv_cache_bytes_per_token=kv_cache_bytes_per_token,
            kv_cache_tokens=tokens,
            shortfall_bytes=0,
        ),
        qps_per_instance=10.0,
        qps_per_instance_source=QpsSource.MEASURED,
        cost_per_hour=None if price is None else price * instances * tensor_parallel,
        load_time_seconds=load_time_seconds,
        gpu_memory_utilization=gpu_memory_utilization,
        max_num_seqs=max_num_seqs,
    )


H100_BYTES = 81_559 * 1024**2
ASCEND_910B_BYTES = 64 * 10**9

# Figures from the sizing engine's plans for the samples (bf16, default assumptions).
PLANS: dict[str, Plan] = {
    "llama-3.1-8b-vllm-nvidia.yaml": make_plan(
        accelerator="H100-80GB",
        tensor_parallel=1,
        max_model_len=8192,
        load_time_seconds=101,
        total_bytes=H100_BYTES,
        weights_bytes=16_060_522_496,
        kv_cache_bytes_per_token=131_072,
        instances=2,
        # The sample's engine.maxNumSeqs.
        max_num_seqs=128,
    ),
    "qwen2.5-72b-vllm-nvidia.yaml": make_plan(
        accelerator="H100-80GB",
        tensor_parallel=4,
        max_model_len=16384,
        load_time_seconds=424,
        total_bytes=H100_BYTES,
        weights_bytes=36_353_101_824,
        kv_cache_bytes_per_token=81_920,
        instances=4,
    ),
    "qwen2.5-7b-vllm-ascend.yaml": make_plan(
        accelerator="Ascend910B",
        tensor_parallel=1,
        max_model_len=8192,
        load_time_seconds=99,
        total_bytes=ASCEND_910B_BYTES,
        weights_bytes=15_231_233_024,
        kv_cache_bytes_per_token=57_344,
    ),
    "glm-4-9b-triton-nvidia.yaml": make_plan(
        accelerator="H100-80GB",
        tensor_parallel=1,
        max_model_len=8192,
        load_time_seconds=107,
        total_bytes=H100_BYTES,
        weights_bytes=18_799_902_720,
        kv_cache_bytes_per_token=40_960,
    ),
    "deepseek-r1-distill-qwen-32b-vllm-ascend.yaml": make_plan(
        accelerator="Ascend910B",
        tensor_parallel=4,
        max_model_len=32768,
        load_time_seconds=224,
        total_bytes=ASCEND_910B_BYTES,
        weights_bytes=16_381_938_176,
        kv_cache_bytes_per_token=65_536,
    ),
}

POOL_OF = {
    "nvidia-h100": "pool-nvidia-h100.yaml",
    "ascend-910b": "pool-ascend-910b.yaml",
}


def sample(file: str) -> tuple[ModelDeployment, InferencePool, Plan]:
    """A sample ModelDeployment with its pool and its fixed plan."""
    md = load_model_deployment(file)
    return md, load_pool(POOL_OF[md.spec.pool]), PLANS[file]


class _GoldenDumper(yaml.SafeDumper):
    """Writes multi-line strings (config files inside ConfigMaps) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_GoldenDumper.add_representer(str, _str)


def to_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.dump_all(objects, Dumper=_GoldenDumper, sort_keys=False, default_flow_style=False, width=100)


def check_golden(objects: list[dict[str, Any]], name: str) -> None:
    """Compare `objects` with tests/golden/render/<name>.yaml, or rewrite it when asked to."""
    path = GOLDEN / f"{name}.yaml"
    rendered = to_yaml(objects)
    if os.environ.get(UPDATE_ENV) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered)
        return
    if not path.exists():
        pytest.fail(f"{path} is missing; create it with {UPDATE_ENV}=1 pytest tests/unit/render")
    expected = path.read_text()
    if rendered != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                rendered.splitlines(keepends=True),
                fromfile=f"golden/{path.name}",
                tofile="rendered",
            )
        )
        pytest.fail(
            f"rendered objects differ from {path.relative_to(REPO)}; if the change is "
            f"intended, run {UPDATE_ENV}=1 pytest tests/unit/render\n{diff}",
            pytrace=False,
        )
