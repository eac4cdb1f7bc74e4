"""Capacity plans: the answer a platform team asks for first, and why."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gpupool.catalog.accelerators import ACCELERATORS, get_accelerator
from gpupool.catalog.models import MODELS, get_model
from gpupool.catalog.types import Accelerator, CatalogModel, KVCacheDtype, Precision
from gpupool.sizing import (
    Plan,
    QpsSource,
    SizingRequest,
    compare_accelerators,
    plan_deployment,
)


def _plan(model: str, accelerator: str, **fields: Any) -> Plan:
    fields.setdefault("max_model_len", 8192)
    fields.setdefault("peak_qps", 10)
    return plan_deployment(
        get_model(model).architecture,
        get_accelerator(accelerator),
        SizingRequest(**fields),
        model_name=model,
    )


class TestFits:
    def test_llama_70b_bf16_on_h100_with_measured_qps(self) -> None:
        plan = _plan("llama-3.1-70b", "H100-80GB", qps_per_instance=2.5, price_per_accelerator_hour=2.0)
        assert plan.fits
        assert plan.tensor_parallel == plan.accelerators_per_instance == 4
        # 10 QPS x 1.2 / 2.5 = 4.8 -> 5 instances; 2 per 8-GPU node -> 3 nodes; 20 GPUs
        assert (plan.instances, plan.instances_per_node, plan.nodes) == (5, 2, 3)
        assert plan.accelerators == 20
        # 5 x 4 x 2.0 per hour
        assert plan.cost_per_hour == 40.0
        assert plan.qps_per_instance == 2.5
        assert plan.qps_per_instance_source is QpsSource.MEASURED
        assert plan.max_concurrent_sequences == 54
        # 141.1 GB / 400 MB/s = 353 s + 60 s
        assert plan.load_time_seconds == 413
        assert "fits H100-80GB at tensor parallel 4" in plan.reason
        assert "32.9 GiB of weights" in plan.reason
        assert "54 sequences of 8,192 tokens (target 8)" in plan.reason
        assert "5 instances of 4 accelerators on 3 nodes" in plan.reason

    def test_estimated_qps_is_marked(self) -> None:
        plan = _plan("llama-3.1-70b", "H100-80GB")
        assert plan.qps_per_instance_source is QpsSource.ESTIMATED
        assert plan.qps_per_instance == pytest.approx(13.23, abs=0.01)
        # 10 x 1.2 / 13.23 = 0.91 -> 1 instance
        assert plan.instances == 1
        assert "1 instance of 4 accelerators on 1 node serves" in plan.reason
        assert "estimated from memory bandwidth" in plan.reason
        # 54 sequences halfway through 8,192 tokens read 5.4 ms of KV a step, the 32.9 GiB shard
        # 10.5 ms: the weights bound the step.
        assert "reading the weight shard bounds each decode step" in plan.reason
        assert plan.cost_per_hour is None

    def test_405b_fp8_on_h200_long_context_needs_tp8(self) -> None:
        # At 131,072 tokens: TP 4 (94.5 GiB of fp8 weights per H200) leaves 27.2 GiB of KV,
        # one sequence at 129,024 B a token, short of 8. TP 8 (47.2 GiB) leaves 74.2 GiB at
        # 64,512 B a token: 9 sequences.
        plan = _plan("llama-3.1-405b", "H200-141GB", precision="fp8", max_model_len=131_072)
        assert plan.fits
        assert plan.tensor_parallel == 8
        assert plan.max_concurrent_sequences == 9
        assert plan.instances_per_node == 1
        # 9 sequences halfway through 131,072 tokens read 38.1 GB of KV a step, less than the
        # 50.7 GB weight shard, so the weights still bound it.
        assert "reading the weight shard bounds each decode step" in plan.reason

    def test_long_contexts_are_bound_by_kv_reads(self) -> None:
        # Llama-3.1-8B at 131,072 tokens on H100s: TP 4 holds 15 sequences, which read
        # 15 x 65,536 x 32,768 B = 32.2 GB of KV a step against a 4.0 GB weight shard.
        plan = _plan("llama-3.1-8b", "H100-80GB", max_model_len=131_072)
        assert plan.tensor_parallel == 4
        assert plan.max_concurrent_sequences == 15
        assert "reading the batch's KV cache bounds each decode step" in plan.reason

    def test_405b_fp8_on_h200_short_context_fits_tp4(self) -> None:
        # At 8,192 tokens the 27.2 GiB of KV of TP 4 hold 27 sequences >= 8.
        plan = _plan("llama-3.1-405b", "H200-141GB", precision="fp8")
        assert plan.tensor_parallel == 4
        assert plan.max_concurrent_sequences == 27

    def test_deepseek_v3_fp8_at_tensor_parallel_8_on_h200(self) -> None:
        # 671.0e9 B / 8 = 78.4 GiB weights + 2.9 GiB activations + 2.4 GiB of non-torch memory
        # (NVSwitch board) per H200 leave 42.2 GiB of latent KV at 70,272 B a token
        # (replicated on every rank): 19 sequences
        # of 32,768 tokens.
        plan = _plan("deepseek-v3", "H200-141GB", precision="fp8", max_model_len=32_768, tensor_parallel=8)
        assert plan.fits
        assert plan.tensor_parallel == 8
        assert plan.data_parallel is None and plan.expert_parallel is None
        assert plan.memory_per_accelerator.kv_cache_bytes_per_token == 70_272
        assert plan.max_concurrent_sequences == 19

    def test_deepseek_v3_fp8_on_h200_takes_data_parallel_attention(self) -> None:
        # As vLLM's DeepSeek recipes run it: 8 data-parallel ranks, experts over all 8. Each
        # rank keeps the 16.6B parameters outside the routed experts whole (17.2 GiB) and an
        # eighth of the 654.4B of experts (76.2 GiB), and the latent KV of its own sequences:
        # 26.8 GiB for 12 sequences of 32,768 tokens a rank, 96 an instance, against 19 at TP 8.
        plan = _plan("deepseek-v3", "H200-141GB", precision="fp8", max_model_len=32_768)
        assert plan.fits
        assert (plan.tensor_parallel, plan.data_parallel, plan.expert_parallel) == (1, 8, 8)
        assert plan.accelerators_per_instance == 8
        assert plan.max_concurrent_sequences == 96
        assert plan.memory_per_accelerator.weights_bytes / 1024**3 == pytest.approx(93.1, abs=0.1)
        assert "--data-parallel-size 8 --enable-expert-parallel" in plan.reason
        assert "latent attention keeps the whole KV latent on every tensor-parallel rank" in plan.reason

    def test_ascend_with_measured_qps(self) -> None:
        plan = _plan("qwen2.5-7b", "Ascend910B4", precision="int8", qps_per_instance=4.0)
        assert plan.fits
        assert plan.qps_per_instance_source is QpsSource.MEASURED


class TestDoesNotFit:
    def test_405b_bf16_on_a_pool_of_one_h100_node(self) -> None:
        plan = _plan("llama-3.1-405b", "H100-80GB", max_nodes_per_instance=1)
        assert not plan.fits
        assert (plan.instances, plan.nodes, plan.accelerators) == (0, 0, 0)
        assert plan.tensor_parallel == 8
        # per H100 at TP 8: 811.7e9 B / 8 = 94.5 GiB weights + 2.1 GiB activations + 2.4 GiB
        # non-torch = 99.0 GiB against 0.9 x 79.2 = 71.3 GiB usable: 27.7 GiB short
        for figure in ("94.5 GiB", "2.1 GiB", "99.0 GiB", "71.3 GiB", "27.7 GiB short"):
            assert figure in plan.reason
        # fp8 (47.2 GiB a GPU) and int4 fit, so the reason says so; then bigger hardware,
        # then the group of nodes the pool lacks.
        assert "serve it in fp8, int8 or int4" in plan.reason
        assert "at least 110.6 GiB of memory" in plan.reason
        assert "pipeline parallel 2 across them" in plan.reason
        assert "the pool has 1 node: add 1 node to the pool" in plan.reason
        assert plan.qps_per_instance is None
        assert plan.cost_per_hour is None

    def test_context_too_long_says_how_short_it_must_be(self) -> None:
        # Llama-3.1-8B on one L4: 0.9 x (23,034 - 468) MiB usable, less 15.0 GiB of weights,
        # 0.6 GiB of activations (2,048 tokens, 256 sequences) and 0.25 GiB of non-torch memory,
        # leaves 4.1 GiB of KV: 33,232 tokens at 131,072 B; one 131,072-token sequence needs
        # 131,072 x 131,072 B = 16.0 GiB.
        plan = _plan(
            "llama-3.1-8b",
            "L4-24GB",
            max_model_len=131_072,
            accelerators_per_node=1,
            max_nodes_per_instance=1,
        )
        assert not plan.fits
        assert plan.memory_per_accelerator.kv_cache_tokens == 33_232
        assert "one sequence of 131,072 tokens needs 16.0 GiB" in plan.reason
        assert "lower maxModelLen to 33,232 tokens or fewer" in plan.reason
        assert "(a node has only 1 accelerator)" in plan.reason
        # Two L4s would start it: 7.5 GiB shards leave room for one full sequence at 65,536 B a
        # token per rank, so the smallest node that would do is named.
        assert "use nodes of 2 accelerators (tensor parallel 2)" in plan.reason

    def test_fp8_kv_cache_is_suggested_when_it_helps(self) -> None:
        # One L4, 65,536 tokens: bf16 KV holds 32,784 tokens; fp8 KV twice that, 65,568.
        plan = _plan(
            "llama-3.1-8b", "L4-24GB", max_model_len=65_536, accelerators_per_node=1, max_nodes_per_instance=1
        )
        assert not plan.fits
        assert "use an fp8 KV cache" in plan.reason

    def test_head_divisibility_is_named_when_it_stops_a_wider_group(self) -> None:
        # A 4 GiB accelerator: Qwen2.5-7B at TP 4 needs 3.5 + 0.6 + 0.6 GiB > 3.2 GiB usable,
        # and TP 8 is impossible because 28 heads do not divide by 8.
        small = get_accelerator("L4-24GB").model_copy(
            update={"name": "Small-4GB", "memory_bytes": 4 * 1024**3}
        )
        plan = plan_deployment(
            get_model("qwen2.5-7b").architecture,
            small,
            SizingRequest(max_model_len=4096, peak_qps=1, max_nodes_per_instance=1),
            model_name="qwen2.5-7b",
        )
        assert not plan.fits
        assert plan.tensor_parallel == 4
        assert "28 attention heads do not divide by 8" in plan.reason


class TestImpossibleInput:
    def test_precision_the_accelerator_cannot_serve(self) -> None:
        with pytest.raises(ValueError, match="A100-80GB cannot serve fp8 weights"):
            _plan("llama-3.1-70b", "A100-80GB", precision="fp8")

    def test_fp8_kv_cache_on_ascend(self) -> None:
        with pytest.raises(ValueError, match="no fp8 format"):
            _plan("qwen2.5-7b", "Ascend910B", kv_cache_dtype="fp8")

    def test_context_beyond_the_model(self) -> None:
        with pytest.raises(ValueError, match="exceeds the model's 32,768-token context"):
            _plan("qwen2.5-7b", "H100-80GB", max_model_len=65_536)

    def test_no_way_to_know_the_throughput(self) -> None:
        with pytest.raises(ValueError, match="Ascend910B4 has no published memory bandwidth"):
            _plan("qwen2.5-7b", "Ascend910B4")


def test_plan_is_json_for_the_crd_status() -> None:
    wire = _plan("llama-3.1-70b", "H100-80GB", price_per_accelerator_hour=2.0).to_wire()
    assert json.loads(json.dumps(wire)) == wire
    assert wire["tensorParallel"] == 4
    assert wire["qpsPerInstanceSource"] == "estimated"
    assert isinstance(wire["memoryPerAccelerator"], dict)
    assert wire["memoryPerAccelerator"]["kvCacheBytesPerToken"] == 81_920
    assert all(isinstance(v, int) for v in wire["memoryPerAccelerator"].values())


def test_every_plan_field_has_a_description() -> None:
    properties = Plan.model_json_schema(by_alias=True)["properties"]
    assert [name for name, schema in properties.items() if not schema.get("description")] == []


class TestCompare:
    NAMES = ("H100-80GB", "H200-141GB", "A100-80GB", "L40S-48GB")

    def test_one_request_for_every_accelerator_in_order(self) -> None:
        plans = compare_accelerators(
            get_model("llama-3.1-70b").architecture,
            [get_accelerator(name) for name in self.NAMES],
            SizingRequest(max_model_len=8192, peak_qps=10),
        )
        assert [p.accelerator for p in plans] == list(self.NAMES)
        # H200 halves the group: TP 2 holds 45 sequences. L40S at TP 4 leaves 6.0 GiB of KV,
        # 9 sequences of 8,192 tokens, so TP 4 there too (NVIDIA NIM's L40S profile for
        # Llama-3.1-70B is also TP 4).
        assert [p.tensor_parallel for p in plans] == [4, 2, 4, 4]
        assert all(p.fits for p in plans)

    def test_a_request_per_accelerator(self) -> None:
        prices = {"H100-80GB": 3.0, "Ascend910B4": 1.0}

        def request_for(accel: Accelerator) -> SizingRequest:
            return SizingRequest(
                max_model_len=4096,
                peak_qps=5,
                precision=Precision.INT8,
                qps_per_instance=2.0,
                price_per_accelerator_hour=prices[accel.name],
            )

        plans = compare_accelerators(
            get_model("qwen2.5-7b").architecture,
            [get_accelerator(name) for name in prices],
            request_for,
        )
        # 5 x 1.2 / 2 = 3 instances of TP 1
        assert [p.cost_per_hour for p in plans] == [9.0, 3.0]

    def test_a_list_must_match_the_accelerators(self) -> None:
        with pytest.raises(ValueError, match="got 1 requests for 2 accelerators"):
            compare_accelerators(
                get_model("qwen2.5-7b").architecture,
                [get_accelerator("H100-80GB"), get_accelerator("L4-24GB")],
                [SizingRequest(max_model_len=4096, peak_qps=1)],
            )


@st.composite
def _cases(draw: st.DrawFn) -> tuple[CatalogModel, Accelerator, SizingRequest]:
    model = draw(st.sampled_from(list(MODELS.values())))
    accel = draw(st.sampled_from(list(ACCELERATORS.values())))
    precision = draw(st.sampled_from(accel.supported_precisions))
    kv = draw(st.sampled_from((KVCacheDtype.AUTO, KVCacheDtype.FP8)))
    assume(not (kv is KVCacheDtype.FP8 and accel.vendor.value == "ascend"))
    length = draw(st.sampled_from((512, 2048, 8192, 32_768)))
    assume(length <= model.architecture.max_position_embeddings)
    measured = draw(st.none() | st.floats(min_value=0.05, max_value=500))
    assume(measured is not None or accel.memory_bandwidth_bytes_per_second is not None)
    request = SizingRequest(
        precision=precision,
        kv_cache_dtype=kv,
        max_model_len=length,
        concurrency=draw(st.integers(min_value=1, max_value=32)),
        accelerators_per_node=draw(st.sampled_from((1, 2, 4, 8))),
        peak_qps=draw(st.floats(min_value=0, max_value=2_000)),
        qps_per_instance=measured,
        headroom=draw(st.floats(min_value=0, max_value=1)),
        price_per_accelerator_hour=draw(st.none() | st.floats(min_value=0, max_value=20)),
    )
    return model, accel, request


@settings(max_examples=250, deadline=None)
@given(case=_cases())
def test_plans_are_consistent(case: tuple[CatalogModel, Accelerator, SizingRequest]) -> None:
    model, accel, request = case
    plan = plan_deployment(model.architecture, accel, request)
    memory = plan.memory_per_accelerator
    assert plan.reason.endswith(".")
    if not plan.fits:
        assert (plan.instances, plan.nodes, plan.accelerators) == (0, 0, 0)
        return
    tp = plan.tensor_parallel
    # The tensor-parallel group divides the heads and stays inside a node; stages span nodes.
    assert model.architecture.attention_heads % tp == 0
    assert tp <= request.accelerators_per_node
    if plan.across_nodes == "DataExpertParallel":
        # Data-parallel ranks fill whole nodes, the same number on each.
        assert plan.data_parallel is not None and plan.data_parallel_local is not None
        assert plan.data_parallel == plan.data_parallel_local * plan.nodes_per_instance
        assert plan.accelerators_per_instance == plan.nodes_per_instance * request.accelerators_per_node
    else:
        assert plan.nodes_per_instance == (plan.pipeline_parallel or 1)
    # Memory parts never exceed the usable memory, and one full sequence fits.
    parts = memory.weights_bytes + memory.activations_bytes + memory.runtime_overhead_bytes
    assert parts + memory.kv_cache_bytes <= memory.usable_bytes
    assert memory.kv_cache_tokens >= request.max_model_len
    assert plan.max_concurrent_sequences >= 1
    # Enough instances for the peak with headroom, and enough accelerators for the instances.
    assert plan.qps_per_instance is not None
    assert plan.instances >= 1
    needed = request.peak_qps * (1 + request.headroom)
    assert plan.instances * plan.qps_per_instance >= needed * (1 - 1e-9)
    size = tp * (plan.data_parallel or 1) * (plan.pipeline_parallel or 1)
    assert plan.accelerators_per_instance == size
    if plan.nodes_per_instance == 1:
        assert size <= request.accelerators_per_node
    assert plan.accelerators == plan.instances * size
    assert plan.nodes * request.accelerators_per_node >= plan.accelerators
    # Data-parallel attention comes with the experts spread over every rank of the instance.
    if plan.data_parallel is not None:
        assert model.architecture.moe is not None
        assert plan.expert_parallel == size
        assert plan.kv_cache_tokens == plan.data_parallel * memory.kv_cache_tokens


@settings(max_examples=100, deadline=None)
@given(case=_cases(), extra=st.floats(min_value=0, max_value=2_000))
def test_more_qps_never_plans_fewer_instances(
    case: tuple[CatalogModel, Accelerator, SizingRequest], extra: float
) -> None:
    model, accel, request = case
    busier = request.model_copy(update={"peak_qps": request.peak_qps + extra})
    before = plan_deployment(model.architecture, accel, request)
    after = plan_deployment(model.architecture, accel, busier)
    assert after.instances >= before.instances
    assert after.nodes >= before.nodes


def test_data_parallel_attention_is_for_mixture_of_experts_only() -> None:
    with pytest.raises(ValueError, match="has no experts"):
        _plan("llama-3.1-70b", "H100-80GB", data_parallel=2)


def test_a_forced_data_parallel_layout_must_fit_in_a_node() -> None:
    plan = _plan("deepseek-v3", "H200-141GB", tensor_parallel=2, data_parallel=8)
    assert not plan.fits
    assert "2 x 8 data-parallel ranks exceed the 8 accelerators of a node" in plan.reason


def test_tensor_parallelism_that_holds_more_says_what_data_parallel_attention_would_hold() -> None:
    # GQA attention: TP 8 splits the KV heads, data-parallel ranks would copy the attention.
    from catalog.hf_configs import QWEN3_CODER_480B_FP8

    from gpupool.catalog.models import architecture_from_hf_config

    plan = plan_deployment(
        architecture_from_hf_config(QWEN3_CODER_480B_FP8),
        get_accelerator("H200-141GB"),
        SizingRequest(max_model_len=131_072, peak_qps=1, qps_per_instance=1),
    )
    assert (plan.tensor_parallel, plan.data_parallel, plan.expert_parallel) == (8, None, 8)
    # Tensor parallel 4 x 2 data-parallel ranks hold as many; a tie goes to tensor parallelism.
    assert "2 data-parallel attention ranks would hold 16 full-length sequences" in plan.reason
