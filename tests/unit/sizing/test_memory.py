"""Memory per accelerator, with every figure worked by hand in the comments."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.catalog.accelerators import ACCELERATORS, get_accelerator
from gpupool.catalog.models import MODELS, get_model
from gpupool.catalog.types import Accelerator, Architecture, CatalogModel, KVCacheDtype, Precision
from gpupool.sizing import (
    SizingRequest,
    bytes_per_param,
    kv_cache_bytes_per_token,
    kv_dtype_bytes,
    memory_per_accelerator,
    weight_bytes,
)

GIB = 1024**3

# Llama-3-70B attention shapes (DOMAIN §2's example): 80 layers, 64 heads, 8 KV heads, 128 wide.
LLAMA_3_70B = Architecture(
    params=70_553_706_496,
    layers=80,
    hidden_size=8192,
    attention_heads=64,
    kv_heads=8,
    head_dim=128,
    max_position_embeddings=8192,
)


class TestWeights:
    def test_bytes_per_param(self) -> None:
        assert bytes_per_param(Precision.BF16) == 2
        assert bytes_per_param(Precision.FP16) == 2
        assert bytes_per_param(Precision.FP8) == 1
        assert bytes_per_param(Precision.INT8) == 1
        # A group of 128 int4 weights: 64 B of values + 2 B fp16 scale + 2 B fp16 zero point
        # = 68 B, so 68 / 128 = 0.53125 B per parameter (6.25% over the bare 0.5).
        assert bytes_per_param(Precision.INT4) == Fraction(68, 128) == 0.53125

    def test_llama_8b_int4(self) -> None:
        # 8,030,261,248 x 0.53125 = 4,266,076,288 B (about 4.0 GiB)
        assert weight_bytes(get_model("llama-3.1-8b").architecture, Precision.INT4) == (4_266_076_288)

    def test_moe_loads_every_expert(self) -> None:
        # Mixtral 8x7B: all 46,702,792,704 params x 2 B, not the 12.9B active ones.
        mixtral = get_model("mixtral-8x7b").architecture
        assert weight_bytes(mixtral, Precision.BF16) == 93_405_585_408


class TestKVCachePerToken:
    def test_auto_is_two_bytes_and_fp8_one(self) -> None:
        assert kv_dtype_bytes(KVCacheDtype.AUTO) == 2
        assert kv_dtype_bytes(KVCacheDtype.BF16) == 2
        assert kv_dtype_bytes(KVCacheDtype.FP16) == 2
        assert kv_dtype_bytes(KVCacheDtype.FP8) == 1

    def test_domain_example_llama_3_70b_fp16(self) -> None:
        # 2 (K, V) x 80 layers x 8 KV heads x 128 x 2 B = 327,680 B = 320 KiB per token
        per_token = kv_cache_bytes_per_token(LLAMA_3_70B, 2, 1)
        assert per_token == 327_680 == 320 * 1024
        # 2,048 tokens x 8 sequences x 327,680 B = 5,368,709,120 B = 5 GiB
        assert 2048 * 8 * per_token == 5 * GIB

    def test_gqa_splits_over_tensor_parallel(self) -> None:
        # 8 KV heads over 4 ranks: 2 each -> 2 x 80 x 2 x 128 x 2 = 81,920 B per rank
        assert kv_cache_bytes_per_token(LLAMA_3_70B, 2, 4) == 81_920
        # over 8 ranks: 1 each -> 40,960 B
        assert kv_cache_bytes_per_token(LLAMA_3_70B, 2, 8) == 40_960

    def test_gqa_replicates_below_one_head_per_rank(self) -> None:
        # GLM-4-9B has 2 KV groups: TP 1 holds both (2 x 40 x 2 x 128 x 2 = 40,960 B); TP 2 and
        # TP 4 hold one each (2 x 40 x 1 x 128 x 2 = 20,480 B), TP 4 replicating each head on
        # two ranks.
        glm = get_model("glm-4-9b").architecture
        assert kv_cache_bytes_per_token(glm, 2, 1) == 40_960
        assert kv_cache_bytes_per_token(glm, 2, 2) == 20_480
        assert kv_cache_bytes_per_token(glm, 2, 4) == 20_480

    def test_deepseek_v3_latent_is_replicated_on_every_rank(self) -> None:
        # 61 layers x (512 latent + 64 rope) x 2 B = 70,272 B per token, at any TP
        deepseek = get_model("deepseek-v3").architecture
        assert kv_cache_bytes_per_token(deepseek, 2, 1) == 70_272
        assert kv_cache_bytes_per_token(deepseek, 2, 8) == 70_272
        # fp8 KV: 61 x 576 x 1 B = 35,136 B
        assert kv_cache_bytes_per_token(deepseek, 1, 8) == 35_136
        # Without MLA the same model would store 2 x 61 x 128 x 192 x 2 = 5,996,544 B a token.
        assert 2 * 61 * 128 * 192 * 2 // 70_272 == 85


class TestMemoryPerAccelerator:
    def test_llama_70b_bf16_on_h100_at_tp4(self) -> None:
        h100 = get_accelerator("H100-80GB")
        request = SizingRequest(max_model_len=8192, peak_qps=1)
        memory = memory_per_accelerator(get_model("llama-3.1-70b").architecture, h100, request, 4)
        # total: 81,559 MiB less the driver's 468 MiB = 81,091 MiB = 85,030,076,416 B;
        # usable: x 0.9, floored = 76,527,068,774 B
        assert memory.total_bytes == 85_030_076_416
        assert memory.usable_bytes == 76_527_068_774
        # weights: 70,553,706,496 x 2 B / 4 = 35,276,853,248 B (32.9 GiB)
        assert memory.weights_bytes == 35_276_853_248
        # profiling pass on an H100: 8,192 tokens, 1,024 sequences (vLLM's defaults there);
        # the forward phase and the sampler phase peak one after the other:
        #   forward: residual stream  2 x 8,192 x 8,192 x 2 B          =   268,435,456
        #            MLP per rank     3 x 8,192 x (28,672 / 4) x 2 B   =   352,321,536
        #   sampler: hidden states    8,192 x 8,192 x 2 B              =   134,217,728
        #            logits           1,024 x 128,256 x (2 + 3 x 4) B  = 1,838,678,016
        #   the larger phase, 1,972,895,744, plus the pass's fixed 128 MiB
        assert memory.activations_bytes == 2_107_113_472
        # non-torch on an NVSwitch board: 256 MiB + 1,792 MiB for the group + 3 peers x 64 MiB
        assert memory.runtime_overhead_bytes == 2_348_810_240
        # KV: 76,527,068,774 - 39,732,776,960 = 36,794,291,814 B (34.3 GiB)
        assert memory.kv_cache_bytes == 36_794_291_814
        # per token per rank: 2 x 80 x (8 / 4) x 128 x 2 = 81,920 B; blocks of 16 tokens:
        # 36,794,291,814 // (81,920 x 16) = 28,071 blocks = 449,136 tokens
        assert memory.kv_cache_bytes_per_token == 81_920
        assert memory.kv_cache_tokens == 449_136
        # 449,136 / 8,192 = 54.8 -> 54 full-length sequences
        assert memory.full_length_sequences(8192) == 54
        assert memory.shortfall_bytes == 0
        # CUDA graphs: 80 layers x 16 MiB, outside the KV budget
        assert memory.cuda_graph_bytes == 80 * 16 * 1024**2

    def test_llama_70b_bf16_on_two_h100_leaves_one_sequence(self) -> None:
        h100 = get_accelerator("H100-80GB")
        request = SizingRequest(max_model_len=8192, peak_qps=1)
        memory = memory_per_accelerator(get_model("llama-3.1-70b").architecture, h100, request, 2)
        # 70,553,706,496 (weights) + 2,107,113,472 (activations) + 2,214,592,512 (non-torch:
        # 256 + 1,792 + 64 MiB) = 74,875,412,480 B of 76,527,068,774 usable: 1,651,656,294 B of
        # KV cache, 163,840 B a token at 4 KV heads per rank: 630 blocks = 10,080 tokens.
        assert memory.reserved_bytes == 74_875_412_480
        assert memory.shortfall_bytes == 0
        assert memory.kv_cache_bytes == 1_651_656_294
        assert memory.kv_cache_tokens == 10_080
        assert memory.full_length_sequences(8192) == 1

    def test_overrides_replace_the_modelled_terms(self) -> None:
        h100 = get_accelerator("H100-80GB")
        request = SizingRequest(
            max_model_len=8192,
            peak_qps=1,
            activation_bytes=GIB,
            runtime_overhead_bytes=GIB // 2,
            cuda_graph_bytes=0,
            device_reserved_bytes=0,
        )
        memory = memory_per_accelerator(get_model("llama-3.1-70b").architecture, h100, request, 4)
        assert memory.total_bytes == 81_559 * 1024**2
        assert memory.activations_bytes == GIB
        assert memory.runtime_overhead_bytes == GIB // 2
        assert memory.cuda_graph_bytes == 0

    def test_more_batched_tokens_need_more_activation_memory(self) -> None:
        h100 = get_accelerator("H100-80GB")
        arch = get_model("llama-3.1-8b").architecture
        small, large = (
            memory_per_accelerator(
                arch, h100, SizingRequest(max_model_len=8192, peak_qps=1, max_num_batched_tokens=n), 1
            )
            for n in (2048, 16384)
        )
        assert small.activations_bytes < large.activations_bytes
        assert small.kv_cache_tokens > large.kv_cache_tokens

    def test_rejects_a_tensor_parallel_size_below_one(self) -> None:
        request = SizingRequest(max_model_len=8192, peak_qps=1)
        with pytest.raises(ValueError, match="at least 1"):
            memory_per_accelerator(LLAMA_3_70B, get_accelerator("H100-80GB"), request, 0)


@settings(max_examples=150, deadline=None)
@given(
    model=st.sampled_from(list(MODELS.values())),
    accel=st.sampled_from(list(ACCELERATORS.values())),
    tp=st.sampled_from((1, 2, 4, 8)),
    utilization=st.floats(min_value=0.5, max_value=1.0),
    batched=st.integers(min_value=256, max_value=32768),
)
def test_parts_add_up_to_usable_memory_when_they_fit(
    model: CatalogModel,
    accel: Accelerator,
    tp: int,
    utilization: float,
    batched: int,
) -> None:
    request = SizingRequest(
        max_model_len=4096,
        peak_qps=1,
        gpu_memory_utilization=utilization,
        max_num_batched_tokens=batched,
    )
    memory = memory_per_accelerator(model.architecture, accel, request, tp)
    parts = memory.weights_bytes + memory.activations_bytes + memory.runtime_overhead_bytes
    assert memory.usable_bytes <= memory.total_bytes
    if memory.shortfall_bytes == 0:
        assert parts + memory.kv_cache_bytes == memory.usable_bytes
    else:
        assert memory.kv_cache_bytes == 0
        assert parts - memory.shortfall_bytes == memory.usable_bytes
    assert memory.kv_cache_tokens * memory.kv_cache_bytes_per_token <= memory.kv_cache_bytes
