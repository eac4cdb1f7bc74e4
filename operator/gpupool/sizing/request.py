"""What a capacity plan is asked for: precision, context, traffic, and the planning assumptions.

Every default is a named constant here, with where it comes from, so that a reviewer can find and
challenge it; every one is also a field a user can override.
"""

from __future__ import annotations

from pydantic import Field

from gpupool.api.base import ApiModel
from gpupool.catalog.types import KVCacheDtype, Precision

GIB = 1024**3

# The weight format most open checkpoints ship in (torch_dtype of the catalog's config.json files).
DEFAULT_PRECISION = Precision.BF16

# DOMAIN §2's worked example plans for 8 concurrent full-length sequences: enough for continuous
# batching to pay off, few enough not to force a wider tensor-parallel group for short contexts.
DEFAULT_CONCURRENCY = 8

# HGX/DGX H100 and H200 boards and Atlas 800 A2 servers carry 8 accelerators per node.
DEFAULT_ACCELERATORS_PER_NODE = 8

# DOMAIN §2: instances = ceil(peak_qps x (1 + headroom) / qps_per_instance), headroom 20%.
DEFAULT_HEADROOM = 0.2

# vLLM's --gpu-memory-utilization default.
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9

# DOMAIN §2: activations take ~10-20% of the weights; the middle of that range.
DEFAULT_ACTIVATION_FRACTION = 0.15

# DOMAIN §2: ~1-2 GiB per accelerator for the CUDA (or CANN) context and CUDA graphs.
DEFAULT_RUNTIME_OVERHEAD_BYTES = 3 * GIB // 2

# A planning assumption for chat answers, longer than the 128 output tokens of vLLM's random
# benchmark dataset; set it from your own traffic (vllm:generation_tokens_total / requests).
DEFAULT_MEAN_OUTPUT_TOKENS = 256

# DOMAIN §4: 70B-class models take 3-10 minutes to load. 400 MB/s puts the 141 GB bf16
# Llama-3.1-70B checkpoint at ~6 minutes of reading, the middle of that range (network volumes
# and object stores are slower than local NVMe).
DEFAULT_WEIGHT_LOAD_BYTES_PER_SECOND = 400 * 10**6

# Engine start before and after the weights are read: process start, NCCL/HCCL set-up, the
# profiling forward pass and CUDA-graph capture. A planning assumption of one minute.
DEFAULT_ENGINE_START_SECONDS = 60


class SizingRequest(ApiModel):
    """The question a capacity plan answers, with every planning assumption made explicit."""

    precision: Precision = Field(
        default=DEFAULT_PRECISION,
        description="Weight precision to serve: bf16, fp16, fp8, int8 or int4.",
    )
    kv_cache_dtype: KVCacheDtype = Field(
        default=KVCacheDtype.AUTO,
        description=(
            "KV cache number format; auto follows vLLM and uses the model's 16-bit data type "
            "(2 bytes) even when the weights are quantised, fp8 uses 1 byte."
        ),
    )
    max_model_len: int = Field(
        description="Longest sequence (prompt plus output) in tokens, vLLM's --max-model-len.",
        ge=1,
    )
    concurrency: int = Field(
        default=DEFAULT_CONCURRENCY,
        description=(
            "Full-length sequences per instance the KV cache should preferably hold; the "
            "smallest tensor-parallel size that holds them is preferred."
        ),
        ge=1,
    )
    accelerators_per_node: int = Field(
        default=DEFAULT_ACCELERATORS_PER_NODE,
        description="Accelerators in one node (one NVLink or HCCS domain).",
        ge=1,
        le=64,
    )
    peak_qps: float = Field(description="Peak requests per second to serve.", ge=0)
    qps_per_instance: float | None = Field(
        default=None,
        description=(
            "Measured requests per second one instance sustains at the latency target; when "
            "unset it is estimated from a memory-bandwidth roofline."
        ),
        gt=0,
    )
    headroom: float = Field(
        default=DEFAULT_HEADROOM,
        description="Spare capacity above the peak, as a fraction (0.2 is 20%).",
        ge=0,
        le=10,
    )
    gpu_memory_utilization: float = Field(
        default=DEFAULT_GPU_MEMORY_UTILIZATION,
        description="Fraction of each accelerator's memory the engine may use.",
        gt=0,
        le=1,
    )
    activation_fraction: float = Field(
        default=DEFAULT_ACTIVATION_FRACTION,
        description="Peak activation memory as a fraction of the weight shard.",
        ge=0,
        le=1,
    )
    runtime_overhead_bytes: int = Field(
        default=DEFAULT_RUNTIME_OVERHEAD_BYTES,
        description="Per-accelerator bytes for the runtime context and captured graphs.",
        ge=0,
    )
    mean_output_tokens: int = Field(
        default=DEFAULT_MEAN_OUTPUT_TOKENS,
        description="Mean generated tokens per request, for the throughput estimate.",
        ge=1,
    )
    price_per_accelerator_hour: float | None = Field(
        default=None,
        description="Price of one accelerator for one hour, for the cost estimate.",
        ge=0,
    )
    weight_load_bytes_per_second: int = Field(
        default=DEFAULT_WEIGHT_LOAD_BYTES_PER_SECOND,
        description="Rate at which an instance reads its weights, for the load-time estimate.",
        gt=0,
    )
    engine_start_seconds: int = Field(
        default=DEFAULT_ENGINE_START_SECONDS,
        description="Engine start time besides reading weights, for the load-time estimate.",
        ge=0,
    )
