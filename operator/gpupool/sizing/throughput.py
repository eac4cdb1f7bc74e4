"""A decode roofline: an upper bound on what one instance serves, when nothing was measured.

Decoding is memory-bound. Every step each tensor-parallel rank reads its weight shard once, plus
the KV cache of the sequences in the batch, so

    step_seconds  >= (weights_per_rank + batch x max_model_len / 2 x kv_bytes_per_token)
                     / memory_bandwidth
    tokens/second ~= batch / step_seconds
    QPS           ~= tokens/second / mean_output_tokens

where batch is the number of full-length sequences the KV cache holds, capped at vLLM's
max_num_seqs, and a sequence is on average halfway to max_model_len. Compute, prefill and
communication are ignored, so real engines reach a fraction of this: measure and set
qpsPerInstance when you can; plans mark this figure as estimated.
"""

from __future__ import annotations

from gpupool.catalog.types import Accelerator
from gpupool.sizing.memory import MemoryBreakdown

# vLLM's default --max-num-seqs: at most 256 sequences are scheduled in one step.
VLLM_DEFAULT_MAX_NUM_SEQS = 256


def decode_batch(max_concurrent_sequences: int) -> int:
    """Sequences decoded together: what the KV cache holds, up to vLLM's max_num_seqs."""
    return max(0, min(max_concurrent_sequences, VLLM_DEFAULT_MAX_NUM_SEQS))


def estimate_tokens_per_second(
    memory: MemoryBreakdown, bandwidth_bytes_per_second: int, max_model_len: int, batch: int
) -> float:
    """Upper bound on the decode tokens per second of one instance (see the module docstring)."""
    if batch < 1:
        return 0.0
    kv_read = batch * (max_model_len / 2) * memory.kv_cache_bytes_per_token
    step_seconds = (memory.weights_bytes + kv_read) / bandwidth_bytes_per_second
    return batch / step_seconds


def estimate_qps_per_instance(
    accel: Accelerator,
    memory: MemoryBreakdown,
    max_model_len: int,
    max_concurrent_sequences: int,
    mean_output_tokens: int,
) -> float:
    """Upper bound on requests per second one instance serves, from the decode roofline.

    Raises ValueError when the accelerator has no sourced memory bandwidth.
    """
    bandwidth = accel.memory_bandwidth_bytes_per_second
    if bandwidth is None:
        raise ValueError(
            f"{accel.name} has no published memory bandwidth, so QPS per instance cannot be "
            "estimated: measure it and set qpsPerInstance"
        )
    batch = decode_batch(max_concurrent_sequences)
    tokens_per_second = estimate_tokens_per_second(memory, bandwidth, max_model_len, batch)
    return tokens_per_second / mean_output_tokens
