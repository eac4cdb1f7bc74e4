"""MoE instances over a group of nodes: data-parallel attention x expert parallelism across nodes,
chosen against pipeline parallelism with the inter-node link counted."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gpupool.catalog.accelerators import get_accelerator
from gpupool.catalog.models import get_model
from gpupool.sizing import Plan, SizingRequest, plan_deployment
from gpupool.sizing.expert_groups import (
    all_to_all_bytes_per_token,
    choose_expert_groups,
    expert_parallel_problem,
    remote_nodes_per_token,
)
from gpupool.sizing.memory import expert_weight_bytes, weight_bytes

GIB = 1024**3


def _request(**fields: Any) -> SizingRequest:
    fields.setdefault("max_model_len", 8192)
    fields.setdefault("peak_qps", 20)
    return SizingRequest(**fields)


def _plan(model: str, accelerator: str, **fields: Any) -> Plan:
    return plan_deployment(
        get_model(model).architecture, get_accelerator(accelerator), _request(**fields), model_name=model
    )


class TestAllToAll:
    def test_two_nodes_send_almost_every_token_to_the_other_node(self) -> None:
        # DeepSeek-V3 routes 8 of 256 experts; with half the experts on each node a token misses
        # the other node only when all 8 are local: 1 - 0.5**8.
        arch = get_model("deepseek-v3").architecture
        assert remote_nodes_per_token(arch, 2) == pytest.approx(1 - 0.5**8)
        # Dispatch and combine, 61 layers, 7,168 16-bit values each way.
        assert all_to_all_bytes_per_token(arch, 2) == pytest.approx(61 * 2 * 7168 * 2 * (1 - 0.5**8))

    def test_more_nodes_mean_more_remote_copies_never_more_than_the_routed_experts(self) -> None:
        arch = get_model("deepseek-v3").architecture
        copies = [remote_nodes_per_token(arch, n) for n in range(2, 9)]
        assert copies == sorted(copies)
        assert all(c <= 8 for c in copies)
        assert remote_nodes_per_token(arch, 1) == 0


class TestExpertSplits:
    def test_experts_that_do_not_divide_over_the_ranks_are_refused_with_the_numbers(self) -> None:
        arch = get_model("deepseek-v3").architecture
        problem = expert_parallel_problem(arch, 24)
        assert problem is not None
        assert "256 experts do not divide evenly over 24 expert-parallel ranks" in problem
        assert expert_parallel_problem(arch, 16) is None

    def test_more_ranks_than_experts_is_refused(self) -> None:
        arch = get_model("mixtral-8x7b").architecture
        problem = expert_parallel_problem(arch, 16)
        assert problem is not None and "8 experts cannot be spread over 16" in problem

    def test_three_nodes_of_eight_are_ruled_out_for_256_experts(self) -> None:
        arch = get_model("deepseek-v3").architecture
        choice = choose_expert_groups(arch, get_accelerator("H100-80GB"), _request())
        assert [nodes for nodes, _ in choice.excluded][:1] == [3]
        assert "24 expert-parallel ranks" in choice.excluded[0][1]
        assert 3 not in {c.nodes for c in choice.candidates}


class TestDeepSeekV3OnH100:
    def test_two_nodes_of_data_parallel_attention_with_experts_over_all_sixteen(self) -> None:
        plan = _plan("deepseek-v3", "H100-80GB")
        assert plan.fits, plan.reason
        assert plan.across_nodes == "DataExpertParallel"
        assert plan.nodes_per_instance == 2
        assert plan.accelerators_per_instance == plan.expert_parallel == 16
        assert plan.data_parallel is not None and plan.data_parallel_local is not None
        assert plan.tensor_parallel * plan.data_parallel == 16
        assert plan.data_parallel_local * 2 == plan.data_parallel
        assert plan.pipeline_parallel is None
        assert "rather than pipeline parallelism" in plan.reason
        assert "tokens/s against" in plan.reason

    def test_each_accelerator_holds_its_experts_and_its_ranks_copy_of_the_rest(self) -> None:
        arch = get_model("deepseek-v3").architecture
        plan = _plan("deepseek-v3", "H100-80GB")
        assert plan.data_parallel is not None
        total = weight_bytes(arch, plan.precision)
        experts = expert_weight_bytes(arch, plan.precision)
        tp = plan.tensor_parallel
        expected = math.ceil(experts / 16) + math.ceil((total - experts) / tp)
        assert plan.memory_per_accelerator.weights_bytes == expected
        # The dense part is replicated per data-parallel rank: more than an even split of all.
        assert plan.memory_per_accelerator.weights_bytes > total / 16

    def test_each_rank_keeps_the_kv_cache_of_its_own_sequences(self) -> None:
        plan = _plan("deepseek-v3", "H100-80GB")
        memory = plan.memory_per_accelerator
        assert plan.data_parallel is not None
        # Latent attention: every layer's latent, 61 x 576 x 2 B, on every rank.
        assert memory.kv_cache_bytes_per_token == 61 * 576 * 2
        assert plan.kv_cache_tokens == plan.data_parallel * memory.kv_cache_tokens
        assert plan.max_concurrent_sequences == plan.data_parallel * (memory.kv_cache_tokens // 8192)

    def test_a_slow_link_makes_the_all_to_all_cost_more_than_the_pipeline(self) -> None:
        fast = _plan("deepseek-v3", "H100-80GB", inter_node_bytes_per_second=400 * 10**9 // 8)
        slow = _plan("deepseek-v3", "H100-80GB", inter_node_bytes_per_second=25 * 10**9 // 8)
        assert fast.across_nodes == "DataExpertParallel"
        assert slow.across_nodes == "PipelineParallel", slow.reason
        assert (slow.tensor_parallel, slow.pipeline_parallel) == (8, 2)
        assert "rather than data parallel x expert parallel" in slow.reason
        assert "for the experts' all-to-all" in slow.reason
        assert fast.qps_per_instance is not None and slow.qps_per_instance is not None
        assert fast.qps_per_instance > slow.qps_per_instance

    def test_a_pool_of_one_node_does_not_fit_and_says_how_many_to_add(self) -> None:
        plan = _plan("deepseek-v3", "H100-80GB", max_nodes_per_instance=1)
        assert not plan.fits
        assert "the pool has 1 node: add 1 node to the pool" in plan.reason

    def test_forcing_more_data_parallel_ranks_than_a_node_has_plans_a_group(self) -> None:
        plan = _plan("deepseek-v3", "H100-80GB", data_parallel=16)
        assert plan.fits, plan.reason
        assert (plan.data_parallel, plan.tensor_parallel, plan.nodes_per_instance) == (16, 1, 2)

    def test_plan_json_names_the_layout(self) -> None:
        wire = _plan("deepseek-v3", "H100-80GB").to_wire()
        assert wire["acrossNodes"] == "DataExpertParallel"
        assert wire["dataParallelLocal"] * wire["nodesPerInstance"] == wire["dataParallel"]


def test_deepseek_v3_on_two_atlas_800_a2_nodes() -> None:
    # vllm-ascend's multi-node tutorial runs DeepSeek-V3 (W8A8) on two Atlas 800 A2 nodes of
    # 8 x 64 GB with data parallel and expert parallelism.
    plan = _plan("deepseek-v3", "Ascend910B")
    assert plan.fits, plan.reason
    assert plan.across_nodes == "DataExpertParallel"
    assert plan.nodes_per_instance == 2
    assert plan.expert_parallel == 16


def test_dense_models_stay_pipelined() -> None:
    plan = _plan("llama-3.1-405b", "H100-80GB")
    assert plan.across_nodes == "PipelineParallel"
    assert plan.data_parallel is None and plan.data_parallel_local is None


def test_a_model_neither_layout_can_split_says_so_with_the_numbers() -> None:
    # One decoder layer of 6 experts, too large for a node: no pipeline stage split, and 6
    # experts over the 16 ranks of two nodes of eight.
    arch = get_model("deepseek-v3").architecture
    moe = arch.moe
    assert moe is not None
    odd = arch.model_copy(
        update={"layers": 1, "moe": moe.model_copy(update={"experts": 6, "experts_per_token": 2})}
    )
    plan = plan_deployment(odd, get_accelerator("H100-80GB"), _request(), model_name="odd")
    assert not plan.fits
    assert "1 decoder layers cannot be split into 2 pipeline stages" in plan.reason
    assert "6 experts cannot be spread over 16 expert-parallel ranks" in plan.reason
