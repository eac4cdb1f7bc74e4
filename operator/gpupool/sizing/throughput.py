"""A decode roofline: an upper bound on what one instance serves, when nothing was measured.

Decoding is memory-bound. Every step each tensor-parallel rank reads its weight shard once, plus
the KV cache of the sequences in the batch, so

    step_seconds  >= (weights_per_rank + batch x max_model_len / 2 x kv_bytes_per_token)
                     / memory_bandwidth
    tokens/second ~= batch / step_seconds
    QPS           ~= tokens/second / mean_output_tokens

where batch is the number of full-length sequences the KV cache holds, capped at vLLM's
max_num_seqs, and a sequence is on average halfway to max_model_len. Prefill and communication
are ignored, so real engines reach a fraction of this: measure and set qpsPerInstance when you
can; plans mark this figure as estimated.

`decode_step` says which of the three ceilings bounds a step: reading the weight shard, reading
the batch's KV cache, or the tensor cores' compute (2 FLOPs per active parameter per token, at
the accelerator's dense peak for the format the matrix multiplies run in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from gpupool.catalog.types import Accelerator, Architecture, Precision
from gpupool.sizing.memory import MemoryBreakdown

TERA = 10**12

# Dense tensor-core peaks in FLOP/s, by the width the matrix multiplies run in. NVIDIA's
# datasheets print the figures "with sparsity"; the dense peak is half of that.
#   H100 SXM / H200 / H800 SXM: BF16 1,979 and FP8 3,958 TFLOPS with sparsity
#     (https://www.nvidia.com/en-us/data-center/h100/, .../h200/)
#   A100: BF16 312 dense, 624 with sparsity; no FP8 (https://www.nvidia.com/en-us/data-center/a100/)
#   L40S: BF16 362.05 and FP8 733 dense (https://www.nvidia.com/en-us/data-center/l40s/)
#   L4: BF16 242 and FP8 485 TFLOPS with sparsity (https://www.nvidia.com/en-us/data-center/l4/)
SIXTEEN_BIT = 16
EIGHT_BIT = 8
PEAK_DENSE_FLOPS: Mapping[str, Mapping[int, float]] = MappingProxyType(
    {
        "H100-80GB": {SIXTEEN_BIT: 989.5 * TERA, EIGHT_BIT: 1979 * TERA},
        "H200-141GB": {SIXTEEN_BIT: 989.5 * TERA, EIGHT_BIT: 1979 * TERA},
        "H800-80GB": {SIXTEEN_BIT: 989.5 * TERA, EIGHT_BIT: 1979 * TERA},
        "A100-40GB": {SIXTEEN_BIT: 312 * TERA},
        "A100-80GB": {SIXTEEN_BIT: 312 * TERA},
        "L40S-48GB": {SIXTEEN_BIT: 362.05 * TERA, EIGHT_BIT: 733 * TERA},
        "L4-24GB": {SIXTEEN_BIT: 121 * TERA, EIGHT_BIT: 242.5 * TERA},
    }
)
# Weight formats whose matrix multiplies run in 8 bits where the tensor cores have them
# (vLLM's FP8 and W8A8 kernels); int4/fp4 checkpoints on these parts are weight-only and
# dequantise to 16 bits, as does FP8 on an A100 (Marlin).
_EIGHT_BIT_FORMATS = frozenset({Precision.FP8, Precision.INT8})

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


class DecodeRegime(StrEnum):
    """The ceiling that bounds one decode step of the roofline."""

    WEIGHT_READS = "WeightReads"
    KV_READS = "KVReads"
    COMPUTE = "Compute"


@dataclass(frozen=True)
class DecodeStep:
    """The three lower bounds on one decode step of `batch` sequences on one rank, in seconds."""

    batch: int
    weight_read_seconds: float
    kv_read_seconds: float
    compute_seconds: float | None  # None where no dense peak is sourced

    @property
    def seconds(self) -> float:
        """The step's lower bound: its memory reads, or its compute when that takes longer."""
        return max(self.weight_read_seconds + self.kv_read_seconds, self.compute_seconds or 0.0)

    @property
    def regime(self) -> DecodeRegime:
        """Which ceiling the bound comes from."""
        if self.compute_seconds is not None and self.compute_seconds > (
            self.weight_read_seconds + self.kv_read_seconds
        ):
            return DecodeRegime.COMPUTE
        if self.kv_read_seconds > self.weight_read_seconds:
            return DecodeRegime.KV_READS
        return DecodeRegime.WEIGHT_READS

    @property
    def tokens_per_second(self) -> float:
        """Tokens the batch produces per second at this bound."""
        return self.batch / self.seconds if self.seconds > 0 else 0.0


def peak_dense_flops(accel: Accelerator, precision: Precision) -> float | None:
    """The dense tensor-core peak `precision`'s matrix multiplies reach on `accel`, or None."""
    peaks = PEAK_DENSE_FLOPS.get(accel.name)
    if peaks is None:
        return None
    if precision in _EIGHT_BIT_FORMATS and EIGHT_BIT in peaks:
        return peaks[EIGHT_BIT]
    return peaks[SIXTEEN_BIT]


def active_params(arch: Architecture) -> int:
    """Parameters one token passes through: the active ones of an MoE, all of a dense model."""
    return arch.moe.active_params if arch.moe is not None else arch.params


def decode_step(
    arch: Architecture,
    accel: Accelerator,
    memory: MemoryBreakdown,
    precision: Precision,
    tp: int,
    context_tokens: float,
    batch: int,
) -> DecodeStep:
    """The bounds on one decode step of `batch` sequences of `context_tokens` each, per rank.

    Raises ValueError when the accelerator has no sourced memory bandwidth.
    """
    bandwidth = accel.memory_bandwidth_bytes_per_second
    if bandwidth is None:
        raise ValueError(f"{accel.name} has no published memory bandwidth")
    peak = peak_dense_flops(accel, precision)
    compute = None if peak is None else batch * 2 * active_params(arch) / tp / peak
    return DecodeStep(
        batch=batch,
        weight_read_seconds=memory.weights_bytes / bandwidth,
        kv_read_seconds=batch * context_tokens * memory.kv_cache_bytes_per_token / bandwidth,
        compute_seconds=compute,
    )
