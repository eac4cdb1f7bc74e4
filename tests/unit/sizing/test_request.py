"""The sizing request: documented defaults, bounds, and camelCase on the wire."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gpupool.catalog.accelerators import get_accelerator
from gpupool.catalog.types import KVCacheDtype, Precision
from gpupool.sizing import SizingRequest
from gpupool.sizing.request import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_HEADROOM,
    default_max_num_batched_tokens,
    default_max_num_seqs,
)


def test_defaults_are_the_named_constants() -> None:
    request = SizingRequest(max_model_len=8192, peak_qps=1)
    assert request.precision is Precision.BF16
    assert request.kv_cache_dtype is KVCacheDtype.AUTO
    assert request.headroom == DEFAULT_HEADROOM == 0.2
    assert request.gpu_memory_utilization == DEFAULT_GPU_MEMORY_UTILIZATION == 0.9
    # Unset engine terms mean vLLM's own defaults and gpupool's modelled memory terms.
    assert request.max_num_batched_tokens is None
    assert request.max_num_seqs is None
    assert request.tensor_parallel is None
    assert request.activation_bytes is None
    assert request.runtime_overhead_bytes is None
    assert request.concurrency == 8
    assert request.accelerators_per_node == 8
    assert request.qps_per_instance is None


def test_wire_form_is_camel_case() -> None:
    wire = SizingRequest(max_model_len=8192, peak_qps=1.5).to_wire()
    assert wire["maxModelLen"] == 8192
    assert wire["peakQps"] == 1.5
    assert wire["gpuMemoryUtilization"] == 0.9
    assert "qpsPerInstance" not in wire


@pytest.mark.parametrize(
    "bad",
    [
        {"peak_qps": -1},
        {"gpu_memory_utilization": 0},
        {"gpu_memory_utilization": 1.5},
        {"qps_per_instance": 0},
        {"max_model_len": 0},
        {"concurrency": 0},
        {"surprise": 1},
    ],
)
def test_rejects_out_of_range_or_unknown_fields(bad: dict[str, object]) -> None:
    fields: dict[str, object] = {"max_model_len": 8192, "peak_qps": 1, **bad}
    with pytest.raises(ValidationError):
        SizingRequest.model_validate(fields)


def test_every_field_has_a_description() -> None:
    properties = SizingRequest.model_json_schema(by_alias=True)["properties"]
    assert [name for name, schema in properties.items() if not schema.get("description")] == []


@pytest.mark.parametrize(
    ("accelerator", "batched", "seqs"),
    [
        # vllm/engine/arg_utils.py get_batch_defaults: >= 70 GiB and not an A100 -> 8192 / 1024.
        ("H100-80GB", 8192, 1024),
        ("H200-141GB", 8192, 1024),
        ("B200-180GB", 8192, 1024),
        ("A100-80GB", 2048, 256),
        ("L40S-48GB", 2048, 256),
        ("RTX4090-24GB", 2048, 256),
    ],
)
def test_vllm_scheduler_defaults_follow_the_device(accelerator: str, batched: int, seqs: int) -> None:
    accel = get_accelerator(accelerator)
    assert default_max_num_batched_tokens(accel) == batched
    assert default_max_num_seqs(accel) == seqs
