"""The sizing request: documented defaults, bounds, and camelCase on the wire."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gpupool.catalog.types import KVCacheDtype, Precision
from gpupool.sizing import SizingRequest
from gpupool.sizing.request import (
    DEFAULT_ACTIVATION_FRACTION,
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_HEADROOM,
    DEFAULT_RUNTIME_OVERHEAD_BYTES,
)


def test_defaults_are_the_named_constants() -> None:
    request = SizingRequest(max_model_len=8192, peak_qps=1)
    assert request.precision is Precision.BF16
    assert request.kv_cache_dtype is KVCacheDtype.AUTO
    assert request.headroom == DEFAULT_HEADROOM == 0.2
    assert request.gpu_memory_utilization == DEFAULT_GPU_MEMORY_UTILIZATION == 0.9
    assert request.activation_fraction == DEFAULT_ACTIVATION_FRACTION == 0.15
    # 1.5 GiB
    assert request.runtime_overhead_bytes == DEFAULT_RUNTIME_OVERHEAD_BYTES == 1_610_612_736
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
