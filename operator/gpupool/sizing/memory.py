"""Where each accelerator's memory goes, accounted the way vLLM accounts it.

vLLM's worker (vllm/v1/worker/gpu_worker.py, Worker.determine_available_memory) runs one
profiling forward pass (GPUModelRunner.profile_run: `_dummy_run(max_num_batched_tokens)` and a
dummy sampler run over `min(max_num_seqs, max_num_batched_tokens)` requests) and gives the KV
cache

    total x gpu_memory_utilization - weights - torch peak of the pass - non-torch increase

where `total` is what torch.cuda.mem_get_info reports. The cache is cut into blocks of
`block_size` tokens (vllm/v1/core/kv_cache_utils.py). CUDA graphs are captured after the cache is
allocated (Worker.compile_or_warm_up_model), so their memory comes out of what
gpu_memory_utilization leaves free, not out of the KV cache. Every term is a named default with
its source, and each can be overridden in the SizingRequest.
"""

from __future__ import annotations

import math
from fractions import Fraction

from pydantic import Field

from gpupool.api.base import ApiModel
from gpupool.catalog.formats import bytes_per_weight, expert_padding
from gpupool.catalog.types import Accelerator, Architecture, KVCacheDtype, Precision, Vendor
from gpupool.sizing.request import (
    CUDA_GRAPH_BYTES_PER_LAYER,
    DRIVER_RESERVED_BYTES,
    MIB,
    NON_TORCH_BASE_BYTES,
    NON_TORCH_PER_PEER_BYTES,
    NON_TORCH_TP_GROUP_BYTES,
    NVSWITCH_ACCELERATORS,
    SizingRequest,
    default_max_num_batched_tokens,
    default_max_num_seqs,
)

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
    # NVFP4: 4-bit values with one FP8 scale per 16 weights, 0.5 + 1/16 bytes per parameter.
    Precision.FP4: Fraction(1, 2) + Fraction(1, 16),
}

# Activations of the profiling pass are in the model's 16-bit type, whatever the weight format.
ACTIVATION_DTYPE_BYTES = 2
# The sampler works on float32 logits (vllm/v1/sample/sampler.py: logits.to(torch.float32)).
LOGITS_DTYPE_BYTES = 4
# Float32 requests x vocabulary tensors the dummy sampler run holds at its peak: the float32
# logits, the softmax probabilities and the top-k/top-p sort copy (vllm/v1/sample/sampler.py,
# vllm/v1/sample/ops/topk_topp_sampler.py), beside the 16-bit logits of compute_logits.
SAMPLER_VOCAB_COPIES = 3
# vLLM's fused MoE kernel works in chunks of at most this many tokens (vllm/envs.py,
# VLLM_FUSED_MOE_CHUNK_SIZE, default 32 x 1024).
FUSED_MOE_CHUNK_TOKENS = 32 * 1024
# Torch memory the profiling pass allocates whatever the model's shapes: vLLM 0.19's logged
# "torch peak memory increase" is 0.10-0.14 GiB above the tensors activation_peak_bytes counts
# for every one of seven dense models on H100s (vocabularies of 32K to 152K, 7B to 72B, TP 1 to
# 4; https://github.com/llm-d-incubation/llm-d-planner/pull/205), and the V0 profile of
# Llama-3.1-8B at 20K tokens on an RTX 3090 is 0.16 GiB above them
# (https://github.com/vllm-project/vllm/issues/10517).
PROFILE_RUN_FIXED_BYTES = 128 * MIB
# Without intermediate_size the MLP is taken as 4 x hidden (GPT-2's ratio), above Llama's 3.5 x.
DEFAULT_MLP_RATIO = 4
# vLLM's KV-cache block size on CUDA (vllm/config/cache.py, CacheConfig.block_size default 16).
KV_BLOCK_SIZE = 16


def bytes_per_param(precision: Precision) -> Fraction:
    """Bytes one parameter takes in `precision`, quantisation scales included."""
    return BYTES_PER_PARAM[precision]


def _expert_width(arch: Architecture) -> int:
    if arch.moe is not None and arch.moe.expert_intermediate_size:
        return arch.moe.expert_intermediate_size
    return _mlp_width(arch)


def expert_params(arch: Architecture) -> int:
    """Parameters of the routed experts (gate, up and down of each), every layer counted as MoE."""
    if arch.moe is None:
        return 0
    return min(arch.params, arch.layers * arch.moe.experts * 3 * arch.hidden_size * _expert_width(arch))


def embedding_params(arch: Architecture) -> int:
    """Input embeddings and LM head, which stay 16-bit in every quantised format."""
    return min(arch.params, 2 * (arch.vocab_size or 0) * arch.hidden_size)


def weight_bytes(arch: Architecture, precision: Precision) -> int:
    """Bytes of all weights of one instance; MoE models load every expert, so total params.

    A pre-quantised checkpoint (arch.quantization) is sized in its own format: its quantised
    weights at that format's bytes, the rest (embeddings and LM head, and for experts-only
    formats such as gpt-oss's MXFP4 also attention and dense layers) at 16 bits. Otherwise
    every parameter takes `precision`.
    """
    quantization = arch.quantization
    if quantization is None:
        return math.ceil(arch.params * bytes_per_param(precision))
    quantized = expert_params(arch) if quantization.experts_only else arch.params - embedding_params(arch)
    rest = arch.params - quantized
    padding = (
        expert_padding(quantization, arch.hidden_size, _expert_width(arch))
        if quantization.experts_only
        else 1
    )
    return math.ceil(quantized * bytes_per_weight(quantization) * padding + rest * 2)


def routed_expert_params(arch: Architecture) -> int:
    """Parameters of the routed experts from the MoE identity: the parameters a token does not
    use are those of the experts it is not routed to, so one expert has
    (params - active_params) / (experts - experts_per_token). Unlike `expert_params` this
    leaves out dense layers (DeepSeek-V3's first three; 654B of 671B are routed experts)."""
    moe = arch.moe
    if moe is None:
        return 0
    unused = moe.experts - moe.experts_per_token
    if unused <= 0 or moe.active_params >= arch.params:
        return expert_params(arch)
    per_expert = (arch.params - moe.active_params) / unused
    return min(expert_params(arch), round(moe.experts * per_expert))


def expert_weight_bytes(arch: Architecture, precision: Precision) -> int:
    """The routed experts' part of `weight_bytes`, in the same format."""
    experts = routed_expert_params(arch)
    quantization = arch.quantization
    if quantization is None:
        return math.ceil(experts * bytes_per_param(precision))
    padding = (
        expert_padding(quantization, arch.hidden_size, _expert_width(arch))
        if quantization.experts_only
        else 1
    )
    return math.ceil(experts * bytes_per_weight(quantization) * padding)


def weight_shard_bytes(arch: Architecture, precision: Precision, tp: int, data_parallel: int = 1) -> int:
    """One rank's weights. With data-parallel attention (vLLM's --data-parallel-size with
    --enable-expert-parallel) the experts are spread over all tp x data_parallel ranks while
    every data-parallel rank keeps a whole copy of the rest (attention, dense layers,
    embeddings), split only over its tp ranks (vllm/config/parallel.py: the expert-parallel
    group spans data_parallel_size x tensor_parallel_size ranks)."""
    total = weight_bytes(arch, precision)
    if data_parallel == 1:
        return math.ceil(total / tp)
    experts = expert_weight_bytes(arch, precision)
    return math.ceil(experts / (tp * data_parallel)) + math.ceil((total - experts) / tp)


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
    return arch.layers * _kv_bytes_per_layer(arch, kv_dtype_bytes, tp)


def _kv_bytes_per_layer(arch: Architecture, kv_dtype_bytes: int, tp: int) -> int:
    if arch.mla is not None:
        return (arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim) * kv_dtype_bytes
    return 2 * kv_heads_per_accelerator(arch, tp) * arch.head_dim * kv_dtype_bytes


def sliding_window_bytes_per_token(arch: Architecture, kv_dtype_bytes: int, tp: int) -> int:
    """The part of a token's KV bytes that sits in sliding-window layers (0 without them)."""
    if arch.sliding_window is None:
        return 0
    return min(arch.sliding_window_layers, arch.layers) * _kv_bytes_per_layer(arch, kv_dtype_bytes, tp)


class MemoryBreakdown(ApiModel):
    """How one accelerator's memory is spent, in bytes."""

    total_bytes: int = Field(description="Memory the engine sees (torch.cuda.mem_get_info's total).", ge=0)
    usable_bytes: int = Field(
        description="The part the engine may use (gpuMemoryUtilization of the total).", ge=0
    )
    weights_bytes: int = Field(description="This accelerator's shard of the weights.", ge=0)
    activations_bytes: int = Field(
        description="Torch peak of vLLM's profiling pass: the batched tokens' activations and the sampler.",
        ge=0,
    )
    runtime_overhead_bytes: int = Field(
        description="Memory outside torch's allocator: NCCL and custom all-reduce buffers, workspaces.",
        ge=0,
    )
    cuda_graph_bytes: int = Field(
        default=0,
        description="Captured CUDA graphs, out of what gpuMemoryUtilization leaves, not the KV cache.",
        ge=0,
    )
    kv_cache_bytes: int = Field(description="What is left of the usable memory for KV-cache blocks.", ge=0)
    kv_cache_bytes_per_token: int = Field(
        description="KV-cache bytes one token takes on this accelerator.", ge=1
    )
    kv_cache_tokens: int = Field(description="Tokens the KV cache holds, in whole blocks.", ge=0)
    sliding_window_bytes_per_token: int = Field(
        default=0,
        description="The part of kvCacheBytesPerToken in sliding-window layers, which keep only the window.",
        ge=0,
    )
    sliding_window: int | None = Field(
        default=None, description="Tokens a sliding-window layer keeps for one sequence.", ge=1
    )
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

    def sequence_bytes(self, max_model_len: int) -> int:
        """KV bytes one sequence of `max_model_len` tokens takes: every token in full-attention
        layers, at most the window (plus the block being filled) in sliding-window layers."""
        full = (self.kv_cache_bytes_per_token - self.sliding_window_bytes_per_token) * max_model_len
        if self.sliding_window is None:
            return full + self.sliding_window_bytes_per_token * max_model_len
        kept = min(max_model_len, self.sliding_window + KV_BLOCK_SIZE)
        return full + self.sliding_window_bytes_per_token * kept

    def full_length_sequences(self, max_model_len: int) -> int:
        """Sequences of `max_model_len` tokens the KV cache holds at once."""
        if self.sliding_window is None:
            return self.kv_cache_tokens // max_model_len
        return self.kv_cache_bytes // self.sequence_bytes(max_model_len)


def device_total_bytes(accel: Accelerator, request: SizingRequest) -> int:
    """The total vLLM multiplies by gpu_memory_utilization: torch.cuda.mem_get_info's, the
    catalog's nvidia-smi figure less what the driver keeps (DRIVER_RESERVED_BYTES on NVIDIA)."""
    reserved = request.device_reserved_bytes
    if reserved is None:
        reserved = DRIVER_RESERVED_BYTES if accel.vendor is Vendor.NVIDIA else 0
    return max(0, accel.memory_bytes - reserved)


def _mlp_width(arch: Architecture) -> int:
    return arch.intermediate_size or DEFAULT_MLP_RATIO * arch.hidden_size


def activation_peak_bytes(arch: Architecture, tp: int, max_num_batched_tokens: int, max_num_seqs: int) -> int:
    """Torch's peak during vLLM's profiling pass on one tensor-parallel rank, in bytes.

    The pass has two phases (GPUModelRunner.profile_run): `_dummy_run` runs
    `max_num_batched_tokens` tokens through the model, then `_dummy_sampler_run` computes logits
    and samples for min(max_num_seqs, max_num_batched_tokens) requests. A layer's temporaries are
    freed when the forward pass returns, so the peak is the larger of the two phases, not their
    sum. The forward phase's widest layer per rank:
      residual stream and layer input   2 x tokens x hidden
      attention                         tokens x (2 x query + 2 x KV widths per rank)
      dense MLP                         tokens x 3 x intermediate / tp (gate_up, then the product)
      fused MoE, per chunk              tokens x top_k x (3 x expert_intermediate / tp + hidden),
                                        plus the shared experts as a dense MLP
    the wider of attention and MLP on top of the residual stream. The sampler phase keeps the
    pass's output hidden states (tokens x hidden) and adds 16-bit logits plus
    SAMPLER_VOCAB_COPIES float32 copies of requests x vocabulary. The fused-MoE intermediate
    caches are still held then: the modular MoE kernel takes them from the worker's workspace
    manager (vllm/v1/worker/workspace.py, current_workspace_manager().get_simultaneous), which
    keeps its largest buffers for the life of the worker.
    PROFILE_RUN_FIXED_BYTES comes on top of both.
    """
    tokens = max_num_batched_tokens
    width = ACTIVATION_DTYPE_BYTES
    hidden = arch.hidden_size
    residual = 2 * tokens * hidden * width
    q_heads = max(1, arch.attention_heads // tp)
    kv_heads = kv_heads_per_accelerator(arch, tp)
    attention = tokens * (2 * q_heads + 2 * kv_heads) * arch.head_dim * width
    mlp = tokens * 3 * math.ceil(_mlp_width(arch) / tp) * width
    moe_workspace = 0
    if arch.moe is not None:
        expert = _expert_width(arch)
        chunk = min(tokens, FUSED_MOE_CHUNK_TOKENS)
        moe_workspace = chunk * arch.moe.experts_per_token * (3 * math.ceil(expert / tp) + hidden) * width
        shared = tokens * 3 * math.ceil(arch.moe.shared_experts * expert / tp) * width
        mlp = moe_workspace + shared
    forward = residual + max(attention, mlp)
    requests = min(max_num_seqs, tokens)
    vocab = arch.vocab_size or 0
    logits = requests * vocab * (width + SAMPLER_VOCAB_COPIES * LOGITS_DTYPE_BYTES)
    sampler = tokens * hidden * width + logits + moe_workspace
    return PROFILE_RUN_FIXED_BYTES + max(forward, sampler)


def non_torch_bytes(accel: Accelerator, tp: int) -> int:
    """What vLLM's profile counts outside torch on each rank: NON_TORCH_BASE_BYTES, plus
    NON_TORCH_PER_PEER_BYTES for every other rank of a tensor-parallel group and, on NVSwitch
    boards (NVSWITCH_ACCELERATORS), NON_TORCH_TP_GROUP_BYTES for the group's NCCL buffers."""
    if tp == 1:
        return NON_TORCH_BASE_BYTES
    group = NON_TORCH_TP_GROUP_BYTES if accel.name in NVSWITCH_ACCELERATORS else 0
    return NON_TORCH_BASE_BYTES + group + (tp - 1) * NON_TORCH_PER_PEER_BYTES


def cuda_graph_bytes(arch: Architecture) -> int:
    """Memory the captured CUDA graphs keep, CUDA_GRAPH_BYTES_PER_LAYER per decoder layer."""
    return arch.layers * CUDA_GRAPH_BYTES_PER_LAYER


def kv_cache_tokens(kv_cache_bytes: int, per_token: int, block_size: int = KV_BLOCK_SIZE) -> int:
    """Tokens the cache holds: whole blocks of `block_size` tokens (vLLM's num_blocks)."""
    return (kv_cache_bytes // (per_token * block_size)) * block_size


def memory_per_accelerator(
    arch: Architecture, accel: Accelerator, request: SizingRequest, tp: int, data_parallel: int = 1
) -> MemoryBreakdown:
    """The memory of one accelerator in a tensor-parallel group of `tp` serving `arch`; with
    `data_parallel` ranks of data-parallel attention, of one of the tp x data_parallel ranks.

    Each data-parallel rank is an engine of its own: it profiles its own batch of
    max_num_batched_tokens and keeps the KV cache of its own sequences, so activations and KV
    are those of its tensor-parallel group; the experts' all-to-all spans every rank, so the
    non-torch term is that of a group of tp x data_parallel.
    """
    if tp < 1 or data_parallel < 1:
        raise ValueError(f"parallel sizes must be at least 1, got tp {tp}, data parallel {data_parallel}")
    if data_parallel > 1 and arch.moe is None:
        raise ValueError("data-parallel attention is planned for MoE models only")
    total = device_total_bytes(accel, request)
    usable = math.floor(total * request.gpu_memory_utilization)
    weights = weight_shard_bytes(arch, request.precision, tp, data_parallel)
    activations = request.activation_bytes
    if activations is None:
        batched = request.max_num_batched_tokens or default_max_num_batched_tokens(accel)
        seqs = request.max_num_seqs or default_max_num_seqs(accel)
        activations = activation_peak_bytes(arch, tp, batched, seqs)
    runtime = request.runtime_overhead_bytes
    if runtime is None:
        runtime = non_torch_bytes(accel, tp * data_parallel)
    graphs = request.cuda_graph_bytes
    if graphs is None:
        graphs = cuda_graph_bytes(arch)
    reserved = weights + activations + runtime
    kv_cache = max(0, usable - reserved)
    kv_bytes = kv_dtype_bytes(request.kv_cache_dtype)
    per_token = kv_cache_bytes_per_token(arch, kv_bytes, tp)
    return MemoryBreakdown(
        total_bytes=total,
        usable_bytes=usable,
        weights_bytes=weights,
        activations_bytes=activations,
        runtime_overhead_bytes=runtime,
        cuda_graph_bytes=graphs,
        kv_cache_bytes=kv_cache,
        kv_cache_bytes_per_token=per_token,
        kv_cache_tokens=kv_cache_tokens(kv_cache, per_token),
        sliding_window_bytes_per_token=sliding_window_bytes_per_token(arch, kv_bytes, tp),
        sliding_window=arch.sliding_window,
        shortfall_bytes=max(0, reserved - usable),
    )
