"""What a capacity plan is asked for: precision, context, traffic, and the planning assumptions.

Every default is a named constant here, with where it comes from, so that a reviewer can find and
challenge it; every one is also a field a user can override.
"""

from __future__ import annotations

from pydantic import Field

from gpupool.api.base import ApiModel
from gpupool.catalog.types import Accelerator, KVCacheDtype, Precision

GIB = 1024**3
MIB = 1024**2

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

# What torch.cuda.mem_get_info reports as total (vLLM's base for gpu_memory_utilization) is less
# than nvidia-smi's memory.total by what the driver keeps: an H100 80GB HBM3 shows 81,559 MiB in
# nvidia-smi and "total_gpu_memory (79.19GiB)" (81,091 MiB) in vLLM's profile, 468 MiB less; an
# RTX 4090 at gpu_memory_utilization 0.98 gets 23.08 GiB, 0.98 x 23.55 GiB (24,115 MiB of its
# 24,564 MiB, 449 MiB less; https://github.com/vllm-project/vllm/issues/13061).
DRIVER_RESERVED_BYTES = 468 * MIB

# vLLM's profile counts memory allocated outside torch during the pass (non_torch_increase in
# vllm/utils memory profiling): cuBLAS/cuDNN workspaces on one GPU. Published profiles of one GPU
# show 0.24 to 0.35 GiB ("non-torch forward increase memory: 0.25GiB" for Llama-3.1-8B on one
# H100 with vLLM 0.19, https://github.com/llm-d-incubation/llm-d-planner/pull/205;
# "non_torch_memory=0.35GiB" on one RTX 3090, https://github.com/vllm-project/vllm/issues/10517).
NON_TORCH_BASE_BYTES = 256 * MIB
# With tensor parallelism on an NVSwitch board the first collectives allocate NCCL's buffers on
# every rank, its NVLink SHARP (NVLS) buffers among them, and vLLM's custom all-reduce its IPC
# buffers. On H100 HGX boards that adds about 1.8 GiB at TP 2: vLLM's own check of its profiler
# logged "non_torch_memory 1.79GiB" for Llama-3-8B on one H100 and 3.58 GiB at -tp 2
# (https://github.com/vllm-project/vllm/pull/10511); vLLM 0.19 logs 0.25 GiB at TP 1, 2.06-2.09
# GiB at TP 2 and 2.13-2.21 GiB at TP 4 for five models on H100s (llm-d-planner pull 205). So a
# group pays NON_TORCH_TP_GROUP_BYTES once and NON_TORCH_PER_PEER_BYTES for every other rank.
# PCIe cards have no NVSwitch and pay the per-peer part only (0.25 GiB in all at TP 2 on two
# RTX 4090s, https://github.com/vllm-project/vllm/issues/13061); Ascend's HCCL is not NCCL.
NON_TORCH_TP_GROUP_BYTES = 1792 * MIB
# Accelerators whose HGX/NVL boards join the GPUs through NVSwitch with NVLink SHARP (Hopper and
# Blackwell). A100 boards have NVSwitch without NVLS and no published profile; they are left out.
NVSWITCH_ACCELERATORS = frozenset(
    {"H100-80GB", "H200-141GB", "H800-80GB", "H20-96GB", "B200-180GB", "GB200-186GB"}
)
# NCCL's per-peer channel buffers and the custom all-reduce's per-peer IPC buffer: vLLM 0.19's
# non-torch figure grows by 0.07-0.12 GiB from TP 2 to TP 4, two more peers (llm-d-planner pull
# 205), about 64 MiB each.
NON_TORCH_PER_PEER_BYTES = 64 * MIB

# CUDA graphs captured for the decode batch sizes keep their memory pools: vLLM logs
# "Graph capturing finished in 19 secs, took 0.18 GiB" for a 28-layer 1.5B model and 0.5-0.6 GiB
# for 32-layer 7-8B models, so about 16 MiB per decoder layer.
CUDA_GRAPH_BYTES_PER_LAYER = 16 * MIB

# vLLM's scheduler defaults for `vllm serve` (vllm/engine/arg_utils.py,
# EngineArgs.get_batch_defaults, usage context OPENAI_API_SERVER): on devices of at least
# 70 GiB that are not A100s, 8192 batched tokens and 1024 sequences; otherwise 2048 and 256.
VLLM_LARGE_DEVICE_BYTES = 70 * GIB
VLLM_LARGE_MAX_NUM_BATCHED_TOKENS = 8192
VLLM_LARGE_MAX_NUM_SEQS = 1024
VLLM_MAX_NUM_BATCHED_TOKENS = 2048
VLLM_MAX_NUM_SEQS = 256


def _large_device(accel: Accelerator) -> bool:
    return accel.memory_bytes >= VLLM_LARGE_DEVICE_BYTES and "a100" not in accel.name.lower()


def default_max_num_batched_tokens(accel: Accelerator) -> int:
    """vLLM's default --max-num-batched-tokens on `accel` (see VLLM_LARGE_DEVICE_BYTES)."""
    return VLLM_LARGE_MAX_NUM_BATCHED_TOKENS if _large_device(accel) else VLLM_MAX_NUM_BATCHED_TOKENS


def default_max_num_seqs(accel: Accelerator) -> int:
    """vLLM's default --max-num-seqs on `accel` (see VLLM_LARGE_DEVICE_BYTES)."""
    return VLLM_LARGE_MAX_NUM_SEQS if _large_device(accel) else VLLM_MAX_NUM_SEQS


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

# DOMAIN §2 (the platform guides): about 25 GB/s effective for a 200 Gb/s RDMA link between
# nodes, against ~900 GB/s of NVLink inside an H100 node; 200 Gb/s is one HDR InfiniBand or
# 200 GbE RoCE port per node. The pool's interNode.bandwidthGbps sets it (Gb/s / 8).
DEFAULT_INTER_NODE_GBPS = 200
DEFAULT_INTER_NODE_BYTES_PER_SECOND = DEFAULT_INTER_NODE_GBPS * 10**9 // 8


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
    max_num_batched_tokens: int | None = Field(
        default=None,
        description=(
            "vLLM's --max-num-batched-tokens: tokens of one scheduler step and of the profiling "
            "pass; unset means vLLM's default for the accelerator (8192 on 70 GiB and larger "
            "non-A100 devices, else 2048)."
        ),
        ge=1,
    )
    max_num_seqs: int | None = Field(
        default=None,
        description=(
            "vLLM's --max-num-seqs: sequences of one step and of the sampler's profiling run; "
            "unset means vLLM's default (1024 on 70 GiB and larger non-A100 devices, else 256)."
        ),
        ge=1,
    )
    tensor_parallel: int | None = Field(
        default=None,
        description="Force this tensor-parallel size instead of choosing the smallest that fits.",
        ge=1,
    )
    data_parallel: int | None = Field(
        default=None,
        description="Force this many data-parallel attention ranks with the experts spread over "
        "all of them (MoE models; vLLM's --data-parallel-size with --enable-expert-parallel); "
        "1 forces tensor parallelism alone.",
        ge=1,
        le=16,
    )
    activation_bytes: int | None = Field(
        default=None,
        description="Override the profiling pass's activation peak per accelerator, in bytes.",
        ge=0,
    )
    runtime_overhead_bytes: int | None = Field(
        default=None,
        description="Override the non-torch memory per accelerator (NCCL, workspaces), in bytes.",
        ge=0,
    )
    cuda_graph_bytes: int | None = Field(
        default=None,
        description="Override the CUDA-graph memory per accelerator, in bytes.",
        ge=0,
    )
    device_reserved_bytes: int | None = Field(
        default=None,
        description=(
            "Memory the driver keeps out of the engine's total; unset means "
            "DRIVER_RESERVED_BYTES on NVIDIA and 0 on Ascend."
        ),
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
    inter_node_bytes_per_second: int = Field(
        default=DEFAULT_INTER_NODE_BYTES_PER_SECOND,
        description=(
            "Effective bandwidth between two nodes of a multi-node instance, for the pipeline's "
            "throughput estimate."
        ),
        gt=0,
    )
    max_nodes_per_instance: int | None = Field(
        default=None,
        description="Nodes the pool has for one multi-node instance; unset means not limited.",
        ge=1,
    )
