"""The catalog types: validation with clear messages, camelCase on the wire, CRD-ready schema."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from gpupool.catalog.types import (
    MLA,
    Accelerator,
    Architecture,
    CatalogModel,
    KVCacheDtype,
    MoE,
    Precision,
    Vendor,
)


def _arch(**overrides: Any) -> Architecture:
    fields: dict[str, Any] = {
        "params": 8_030_261_248,
        "layers": 32,
        "hidden_size": 4096,
        "attention_heads": 32,
        "kv_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 131_072,
    }
    fields.update(overrides)
    return Architecture(**fields)


class TestArchitecture:
    def test_accepts_grouped_query_attention(self) -> None:
        arch = _arch()
        assert (arch.attention_heads, arch.kv_heads) == (32, 8)

    def test_rejects_more_kv_heads_than_query_heads(self) -> None:
        with pytest.raises(ValidationError, match=r"kv_heads \(64\) cannot exceed"):
            _arch(kv_heads=64)

    def test_rejects_kv_heads_that_do_not_divide_query_heads(self) -> None:
        # 28 query heads cannot be grouped over 8 KV heads (28 / 8 = 3.5).
        with pytest.raises(ValidationError, match=r"multiple of kv_heads \(8\)"):
            _arch(attention_heads=28, kv_heads=8)

    def test_rejects_active_params_above_total(self) -> None:
        moe = MoE(experts=8, experts_per_token=2, active_params=10**12)
        with pytest.raises(ValidationError, match="active_params"):
            _arch(moe=moe)

    def test_rejects_zero_layers(self) -> None:
        with pytest.raises(ValidationError):
            _arch(layers=0)

    def test_is_frozen_and_hashable(self) -> None:
        arch = _arch(mla=MLA(kv_lora_rank=512, qk_rope_head_dim=64))
        with pytest.raises(ValidationError):
            arch.layers = 1  # type: ignore[misc]
        assert hash(arch) == hash(_arch(mla=MLA(kv_lora_rank=512, qk_rope_head_dim=64)))


class TestMoE:
    def test_rejects_more_experts_per_token_than_experts(self) -> None:
        with pytest.raises(ValidationError, match=r"experts_per_token \(9\) cannot exceed"):
            MoE(experts=8, experts_per_token=9, active_params=1)


class TestCatalogModel:
    def test_name_must_be_lower_case(self) -> None:
        with pytest.raises(ValidationError):
            CatalogModel(name="Llama-3.1-8B", hf_id="x/y", architecture=_arch(), description="")


class TestAccelerator:
    def test_wire_form_is_camel_case(self) -> None:
        accel = Accelerator(
            name="X-1GB",
            vendor=Vendor.NVIDIA,
            memory_bytes=1024**3,
            memory_bandwidth_bytes_per_second=10**12,
            resource_name="nvidia.com/gpu",
            product_label_key="nvidia.com/gpu.product",
            product_label="NVIDIA-X",
            supported_precisions=(Precision.BF16,),
            description="test",
        )
        wire = accel.to_wire()
        assert wire["memoryBytes"] == 1024**3
        assert wire["memoryBandwidthBytesPerSecond"] == 10**12
        assert wire["supportedPrecisions"] == ["bf16"]

    def test_bandwidth_is_optional(self) -> None:
        accel = Accelerator(
            name="X",
            vendor=Vendor.ASCEND,
            memory_bytes=1,
            resource_name="huawei.com/Ascend910",
            product_label_key="node.kubernetes.io/npu.chip.name",
            product_label="910B4",
            supported_precisions=(Precision.FP16,),
            description="",
        )
        assert "memoryBandwidthBytesPerSecond" not in accel.to_wire()


def test_enum_values_are_the_documented_strings() -> None:
    assert [v.value for v in Vendor] == ["nvidia", "ascend"]
    assert [p.value for p in Precision] == ["bf16", "fp16", "fp8", "int8", "int4", "fp4"]
    assert [k.value for k in KVCacheDtype] == ["auto", "fp16", "bf16", "fp8"]


@pytest.mark.parametrize("model", [Accelerator, Architecture, CatalogModel, MoE, MLA])
def test_every_field_has_a_description_for_kubectl_explain(model: type[BaseModel]) -> None:
    properties = model.model_json_schema(by_alias=True)["properties"]
    undocumented = [name for name, schema in properties.items() if not schema.get("description")]
    assert undocumented == []
