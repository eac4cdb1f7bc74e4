"""The decode roofline estimate of tokens and requests per second."""

from __future__ import annotations

import pytest

from gpupool.catalog.accelerators import get_accelerator
from gpupool.catalog.models import get_model
from gpupool.sizing import (
    SizingRequest,
    estimate_qps_per_instance,
    estimate_tokens_per_second,
    memory_per_accelerator,
)
from gpupool.sizing.throughput import VLLM_DEFAULT_MAX_NUM_SEQS, decode_batch


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
