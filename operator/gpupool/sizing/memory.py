"""Where each accelerator's memory goes: weights, activations, runtime, and the KV cache.

The model follows vLLM: the engine may use gpu_memory_utilization of the device's memory, loads
its weight shard, reserves the peak activations of a profiling pass and the runtime context, and
hands the rest to KV-cache blocks.
"""

from __future__ import annotations

import math
from fractions import Fraction

from pydantic import Field

from gpupool.api.base import ApiModel
from gpupool.catalog.types import Accelerator, Architecture, KVCacheDtype, Precision
from gpupool.sizing.request import SizingRequest

# int4 (AWQ/GPTQ) stores each group of 128 weights as 64 bytes of 4-bit values plus a 16-bit scale
# and a 16-bit zero point: (64 + 2 + 2) / 128 = 0.53125 bytes per parameter, 6.25% above 0.5.
INT4_GROUP_SIZE = 128
INT4_GROUP_OVERHEAD_BYTES = 2 + 2
BYTES_PER_PARAM: dict[Precision, Fraction] = {
    Precision.BF16: Fraction(2),
    Precision.FP16: Fraction(2),
    # Per-channel or 128x128-block scales add under 0.1% and are left out.
    Precision.FP8: Fraction(1),
    Precision.INT8: Fraction(1),
    Precision.INT4: Fraction(INT4_GROUP_SIZE // 2 + INT4_GROUP_OVERHEAD_BYTES, INT4_GROUP_SIZE),
}


def bytes_per_param(precision: Precision) -> Fraction:
    """Bytes one parameter takes in `precision`, quantisation scales included."""
    return BYTES_PER_PARAM[precision]


def weight_bytes(arch: Architecture, precision: Precision) -> int:
    """Bytes of all weights of one instance; MoE models load every expert, so total params."""
    return math.ceil(arch.params * bytes_per_param(precision))


def kv_dtype_bytes(kv_cache_dtype: KVCacheDtype) -> int:
    """Bytes per KV-cache element. vLLM's `auto` is the model's data type, bf16 or fp16, even
    for quantised weights; only an explicit fp8 KV cache stores one byte."""
    return 1 if kv_cache_dtype is KVCacheDtype.FP8 else 2


def kv_heads_per_accelerator(arch: Architecture, tp: int) -> int:
    """KV heads each tensor-parallel rank stores.

    vLLM splits KV heads across ranks while there are at least as many heads as ranks and
    replicates them below that, so every rank keeps at least one:
    max(1, kv_heads // tp) (vllm/config/model.py, ModelConfig.get_num_kv_heads).
    """
    return max(1, arch.kv_heads // tp)


def kv_cache_bytes_per_token(arch: Architecture, kv_dtype_bytes: int, tp: int) -> int:
    """KV-cache bytes one token takes on each accelerator of a tensor-parallel group of `tp`.

    Grouped-query attention: 2 (K and V) x layers x KV heads per rank x head_dim x bytes.
    Latent attention (MLA): layers x (kv_lora_rank + qk_rope_head_dim) x bytes, whatever `tp`:
    vLLM counts one KV head per rank for MLA models ("When using MLA during decode it becomes
    MQA", ModelConfig.get_num_kv_heads), so every rank holds the whole latent cache.
    """
    if arch.mla is not None:
        return arch.layers * (arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim) * kv_dtype_bytes
    return 2 * arch.layers * kv_heads_per_accelerator(arch, tp) * arch.head_dim * kv_dtype_bytes


class MemoryBreakdown(ApiModel):
    """How one accelerator's memory is spent, in bytes."""

    total_bytes: int = Field(description="Memory the device reports.", ge=0)
    usable_bytes: int = Field(
        description="The part the engine may use (gpuMemoryUtilization of the total).", ge=0
    )
    weights_bytes: int = Field(description="This accelerator's shard of the weights.", ge=0)
    activations_bytes: int = Field(description="Peak activations of a forward pass.", ge=0)
    runtime_overhead_bytes: int = Field(description="Runtime context and captured graphs.", ge=0)
    kv_cache_bytes: int = Field(description="What is left of the usable memory for KV-cache blocks.", ge=0)
    kv_cache_bytes_per_token: int = Field(
        description="KV-cache bytes one token takes on this accelerator.", ge=1
    )
    kv_cache_tokens: int = Field(description="Tokens the KV cache holds.", ge=0)
    shortfall_bytes: int = Field(
        description=(
            "Bytes by which weights, activations and overhead exceed the usable memory; 0 when they fit."
        ),
        ge=0,
    )

    @property
    def reserved_bytes(self) -> int:
        """Memory taken before the KV cache: weights, activations, and runtime overhead."""
        return self.weights_bytes + self.activations_bytes + self.runtime_overhead_bytes

    def full_length_sequences(self, max_model_len: int) -> int:
        """Sequences of `max_model_len` tokens the KV cache holds at once."""
        return self.kv_cache_tokens // max_model_len


def memory_per_accelerator(
    arch: Architecture, accel: Accelerator, request: SizingRequest, tp: int
) -> MemoryBreakdown:
    """The memory of one accelerator in a tensor-parallel group of `tp` serving `arch`."""
    if tp < 1:
        raise ValueError(f"tensor parallel size must be at least 1, got {tp}")
    usable = math.floor(accel.memory_bytes * request.gpu_memory_utilization)
    weights = math.ceil(weight_bytes(arch, request.precision) / tp)
    activations = math.ceil(weights * request.activation_fraction)
    reserved = weights + activations + request.runtime_overhead_bytes
    kv_cache = max(0, usable - reserved)
    per_token = kv_cache_bytes_per_token(arch, kv_dtype_bytes(request.kv_cache_dtype), tp)
    return MemoryBreakdown(
        total_bytes=accel.memory_bytes,
        usable_bytes=usable,
        weights_bytes=weights,
        activations_bytes=activations,
        runtime_overhead_bytes=request.runtime_overhead_bytes,
        kv_cache_bytes=kv_cache,
        kv_cache_bytes_per_token=per_token,
        kv_cache_tokens=kv_cache // per_token,
        shortfall_bytes=max(0, reserved - usable),
    )
