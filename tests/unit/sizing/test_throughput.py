"""The decode roofline estimate of tokens and requests per second."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gpupool.catalog.accelerators import get_accelerator
from gpupool.catalog.models import get_model
from gpupool.catalog.types import Precision
from gpupool.sizing import (
    MemoryBreakdown,
    SizingRequest,
    estimate_qps_per_instance,
    estimate_tokens_per_second,
    memory_per_accelerator,
)
from gpupool.sizing.throughput import (
    VLLM_DEFAULT_MAX_NUM_SEQS,
    DecodeRegime,
    active_params,
    decode_batch,
    decode_step,
    peak_dense_flops,
)


def test_llama_70b_on_h100_roofline_by_hand() -> None:
    memory = memory_per_accelerator(
        get_model("llama-3.1-70b").architecture,
        get_accelerator("H100-80GB"),
        SizingRequest(max_model_len=8192, peak_qps=1),
        4,
    )
    # batch 51 sequences, each on average 4,096 tokens in: 51 x 4,096 x 81,920 B
    #   = 17,112,760,320 B of KV read per step, plus the 35,276,853,248 B weight shard
    #   = 52,389,613,568 B per step / 3.35e12 B/s = 15.639 ms per step
    # tokens/s = 51 / 0.015639 = 3,261.2
    tokens = estimate_tokens_per_second(memory, 3_350 * 10**9, 8192, 51)
    assert tokens == pytest.approx(3261.2, rel=1e-4)
    # QPS = 3,261.2 / 256 mean output tokens = 12.74
    qps = estimate_qps_per_instance(get_accelerator("H100-80GB"), memory, 8192, 51, 256)
    assert qps == pytest.approx(12.739, rel=1e-3)


def test_batch_is_capped_at_vllm_max_num_seqs() -> None:
    assert VLLM_DEFAULT_MAX_NUM_SEQS == 256
    assert decode_batch(10_000) == 256
    assert decode_batch(3) == 3
    assert decode_batch(0) == 0


def test_no_batch_no_tokens() -> None:
    memory = memory_per_accelerator(
        get_model("llama-3.1-8b").architecture,
        get_accelerator("L4-24GB"),
        SizingRequest(max_model_len=8192, peak_qps=1),
        1,
    )
    assert estimate_tokens_per_second(memory, 300 * 10**9, 8192, 0) == 0.0


def test_more_bandwidth_more_tokens() -> None:
    memory = memory_per_accelerator(
        get_model("llama-3.1-8b").architecture,
        get_accelerator("H100-80GB"),
        SizingRequest(max_model_len=8192, peak_qps=1),
        1,
    )
    slow = estimate_tokens_per_second(memory, 2 * 10**12, 8192, 16)
    fast = estimate_tokens_per_second(memory, 4 * 10**12, 8192, 16)
    assert fast == pytest.approx(2 * slow)


def test_unknown_bandwidth_asks_for_a_measurement() -> None:
    ascend = get_accelerator("Ascend910B4")
    memory = memory_per_accelerator(
        get_model("qwen2.5-7b").architecture,
        ascend,
        SizingRequest(max_model_len=4096, peak_qps=1),
        1,
    )
    with pytest.raises(ValueError, match="measure it and set qpsPerInstance"):
        estimate_qps_per_instance(ascend, memory, 4096, 4, 256)


def _memory(model: str, accelerator: str, precision: Precision, tp: int) -> MemoryBreakdown:
    return memory_per_accelerator(
        get_model(model).architecture,
        get_accelerator(accelerator),
        SizingRequest(precision=precision, max_model_len=8192, peak_qps=1),
        tp,
    )


def test_decode_step_by_hand_llama_70b_fp8_at_tp2() -> None:
    h100 = get_accelerator("H100-80GB")
    arch = get_model("llama-3.1-70b").architecture
    memory = _memory("llama-3.1-70b", "H100-80GB", Precision.FP8, 2)
    step = decode_step(arch, h100, memory, Precision.FP8, 2, 5250, 50)
    # weights: 70,553,706,496 B / 2 ranks / 3.35e12 B/s = 10.530 ms
    assert step.weight_read_seconds == pytest.approx(70_553_706_496 / 2 / 3.35e12)
    # KV: 50 x 5,250 tokens x 163,840 B (4 KV heads a rank) / 3.35e12 B/s = 12.838 ms
    assert step.kv_read_seconds == pytest.approx(50 * 5250 * 163_840 / 3.35e12)
    # compute: 50 x 2 x 70.55e9 / 2 FLOPs at the H100's dense FP8 peak, 1,979 TFLOP/s
    assert step.compute_seconds == pytest.approx(50 * 70_553_706_496 / 1979e12)
    assert step.regime is DecodeRegime.KV_READS
    assert step.seconds == pytest.approx(step.weight_read_seconds + step.kv_read_seconds)
    one = decode_step(arch, h100, memory, Precision.FP8, 2, 5250, 1)
    assert one.regime is DecodeRegime.WEIGHT_READS
    assert one.tokens_per_second == pytest.approx(1 / one.seconds)


def test_compute_bounds_the_step_when_reads_are_cheap() -> None:
    # The same L4 with a bandwidth no memory has: the 121 TFLOP/s of bf16 become the bound.
    fast = get_accelerator("L4-24GB").model_copy(update={"memory_bandwidth_bytes_per_second": 10**16})
    arch = get_model("llama-3.1-8b").architecture
    memory = _memory("llama-3.1-8b", "L4-24GB", Precision.BF16, 1)
    step = decode_step(arch, fast, memory, Precision.BF16, 1, 512, 256)
    assert step.compute_seconds == pytest.approx(256 * 2 * 8_030_261_248 / 121e12)
    assert step.regime is DecodeRegime.COMPUTE
    assert step.seconds == step.compute_seconds


def test_formats_run_at_the_peak_their_kernels_use() -> None:
    h100, a100 = get_accelerator("H100-80GB"), get_accelerator("A100-80GB")
    assert peak_dense_flops(h100, Precision.FP8) == pytest.approx(1979e12)
    assert peak_dense_flops(h100, Precision.BF16) == pytest.approx(989.5e12)
    # int4 checkpoints dequantise to 16 bits; the A100 has no FP8 tensor cores
    assert peak_dense_flops(h100, Precision.INT4) == pytest.approx(989.5e12)
    assert peak_dense_flops(a100, Precision.FP8) == pytest.approx(312e12)
    assert peak_dense_flops(get_accelerator("RTX4090-24GB"), Precision.BF16) is None


def test_without_a_peak_the_step_is_bound_by_its_reads() -> None:
    rtx = get_accelerator("RTX4090-24GB")
    arch = get_model("llama-3.1-8b").architecture
    memory = _memory("llama-3.1-8b", "RTX4090-24GB", Precision.BF16, 1)
    step = decode_step(arch, rtx, memory, Precision.BF16, 1, 512, 4)
    assert step.compute_seconds is None
    assert step.regime is DecodeRegime.WEIGHT_READS


def test_moe_compute_counts_the_active_parameters() -> None:
    arch = get_model("mixtral-8x7b").architecture
    assert arch.moe is not None
    assert active_params(arch) == arch.moe.active_params < arch.params


@dataclass(frozen=True)
class PublishedDecode:
    what: str
    source: str
    model: str
    accelerator: str
    precision: Precision
    tp: int
    context_tokens: int
    batch: int
    measured_step_ms: float


# Decode steps measured by others (time per output token, or inter-token latency, at a fixed
# concurrency); docs/sizing.md compares each with the roofline.
PUBLISHED = [
    PublishedDecode(
        "Llama-3.1-8B bf16, A100 40GB, vLLM 0.23, 1,024 in / 128 out, concurrency 1: ~75 tok/s",
        "https://johnmusgrave.com/p/vllm-throughput-latency-sweep-on",
        "llama-3.1-8b",
        "A100-40GB",
        Precision.BF16,
        1,
        1024 + 64,
        1,
        1000 / 75,
    ),
    PublishedDecode(
        "Llama-3.1-8B fp16, H100, vLLM 0.21, chatbot-short, concurrency 1: TPOT p50 6.48 ms",
        "https://yobitelcomm.github.io/bench/recipes/concurrency-sweep/",
        "llama-3.1-8b",
        "H100-80GB",
        Precision.FP16,
        1,
        512,
        1,
        6.48,
    ),
    PublishedDecode(
        "Qwen2.5-72B-Instruct bf16, 2 x H100, 8,192 in / 128 out, concurrency 1: TPOT 31.3 ms",
        "https://github.com/tenstorrent/tt-inference-server/issues/143",
        "qwen2.5-72b",
        "H100-80GB",
        Precision.BF16,
        2,
        8192 + 64,
        1,
        31.3,
    ),
    PublishedDecode(
        "Llama-3.3-70B fp8, 2 x H100 (NIM 1.8.0), 5,000 in / 500 out, concurrency 50: ITL 59.73 ms",
        "https://docs.nvidia.com/nim/benchmarking/llm/1.0.0/performance",
        "llama-3.1-70b",
        "H100-80GB",
        Precision.FP8,
        2,
        5000 + 250,
        50,
        59.73,
    ),
]


@pytest.mark.parametrize("published", PUBLISHED, ids=lambda p: p.what[:50])
def test_the_roofline_never_promises_more_than_was_measured(published: PublishedDecode) -> None:
    arch = get_model(published.model).architecture
    accel = get_accelerator(published.accelerator)
    memory = _memory(published.model, published.accelerator, published.precision, published.tp)
    step = decode_step(
        arch, accel, memory, published.precision, published.tp, published.context_tokens, published.batch
    )
    assert step.seconds * 1000 <= published.measured_step_ms, published.source
