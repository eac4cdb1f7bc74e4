"""Instances over a group of nodes: tensor parallel within a node, pipeline parallel across."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.catalog.accelerators import get_accelerator
from gpupool.catalog.models import get_model
from gpupool.catalog.types import Accelerator, Architecture
from gpupool.sizing import Plan, SizingRequest, compare_accelerators, plan_deployment
from gpupool.sizing.pipeline import (
    MAX_PIPELINE_PARALLEL,
    choose_pipeline_parallel,
    pipeline_parallel_problem,
    stage_architecture,
    stage_layers,
)

GIB = 1024**3


def _plan(model: str, accelerator: str, **fields: Any) -> Plan:
    fields.setdefault("max_model_len", 8192)
    fields.setdefault("peak_qps", 10)
    return plan_deployment(
        get_model(model).architecture, get_accelerator(accelerator), SizingRequest(**fields), model_name=model
    )


class TestStages:
    def test_uneven_layers_size_the_largest_stage(self) -> None:
        # vLLM's get_pp_indices: 61 layers over 2 stages are 30 and 31.
        assert stage_layers(61, 2) == 31
        assert stage_layers(126, 2) == 63

    def test_more_stages_than_layers_is_refused_with_the_numbers(self) -> None:
        arch = get_model("llama-3.1-8b").architecture.model_copy(update={"layers": 3})
        problem = pipeline_parallel_problem(arch, 4)
        assert problem is not None
        assert "3 decoder layers cannot be split into 4 pipeline stages" in problem
        assert pipeline_parallel_problem(arch, 3) is None

    def test_a_stage_holds_its_share_of_the_layer_weights_and_every_embedding(self) -> None:
        arch = get_model("llama-3.1-405b").architecture
        stage = stage_architecture(arch, 2)
        embeddings = 2 * 128_256 * 16_384
        assert stage.layers == 63
        assert stage.params == embeddings + -(-(arch.params - embeddings) // 2)


class TestLlama405bBf16:
    def test_runs_on_two_nodes_of_eight_h100(self) -> None:
        plan = _plan("llama-3.1-405b", "H100-80GB", price_per_accelerator_hour=3.0)
        assert plan.fits, plan.reason
        assert (plan.tensor_parallel, plan.pipeline_parallel, plan.nodes_per_instance) == (8, 2, 2)
        assert plan.accelerators_per_instance == 16
        assert plan.layers_per_stage == 63
        assert plan.instances_per_node == 0
        assert plan.nodes == plan.instances * 2
        assert plan.accelerators == plan.instances * 16
        assert plan.cost_per_hour == pytest.approx(plan.instances * 16 * 3.0)
        memory = plan.memory_per_accelerator
        # 811.7e9 B of weights: the 63-layer stage plus both vocabulary matrices over 8 ranks.
        assert memory.weights_bytes / GIB == pytest.approx(47.7, abs=0.05)
        # KV split by layers: 63 layers x 2 x 1 KV head per rank (8 over TP 8) x 128 x 2 B.
        assert memory.kv_cache_bytes_per_token == 63 * 2 * 1 * 128 * 2
        assert "pipeline parallel 2 across them, up to 63 of 126 layers per stage" in plan.reason
        assert "25 GB/s between nodes" in plan.reason
        assert plan.inter_node_bytes_per_second == 25 * 10**9

    def test_side_by_side_with_one_h200_node(self) -> None:
        arch = get_model("llama-3.1-405b").architecture
        request = SizingRequest(max_model_len=8192, peak_qps=20)
        h100, h200 = compare_accelerators(
            arch, [get_accelerator("H100-80GB"), get_accelerator("H200-141GB")], request
        )
        assert (h100.nodes_per_instance, h100.accelerators_per_instance) == (2, 16)
        assert (h200.nodes_per_instance, h200.accelerators_per_instance, h200.pipeline_parallel) == (
            1,
            8,
            None,
        )

    def test_a_pool_with_too_few_nodes_does_not_fit_and_says_how_many(self) -> None:
        plan = _plan("llama-3.1-405b", "H100-80GB", max_nodes_per_instance=1)
        assert not plan.fits
        assert (plan.instances, plan.nodes, plan.accelerators) == (0, 0, 0)
        assert "A group of 2 nodes of 8 accelerators" in plan.reason
        assert "the pool has 1 node: add 1 node to the pool" in plan.reason

    def test_a_slower_link_lowers_the_estimate(self) -> None:
        fast = _plan("llama-3.1-405b", "H100-80GB", inter_node_bytes_per_second=50 * 10**9)
        slow = _plan("llama-3.1-405b", "H100-80GB", inter_node_bytes_per_second=1 * 10**9)
        assert fast.qps_per_instance is not None and slow.qps_per_instance is not None
        assert slow.qps_per_instance < fast.qps_per_instance

    def test_a_forced_narrow_tensor_parallel_size_stays_on_one_node(self) -> None:
        plan = _plan("llama-3.1-405b", "H100-80GB", tensor_parallel=4)
        assert not plan.fits
        assert plan.nodes_per_instance == 1


def test_deepseek_v3_splits_61_layers_over_two_h100_nodes() -> None:
    # Tensor parallelism alone (dataParallel 1) rules out data-parallel attention groups.
    plan = _plan("deepseek-v3", "H100-80GB", precision="fp8", data_parallel=1)
    assert plan.fits, plan.reason
    assert (plan.pipeline_parallel, plan.layers_per_stage) == (2, 31)
    # Latent attention: the whole latent of the stage's layers on every rank, 31 x 576 x 2 B.
    assert plan.memory_per_accelerator.kv_cache_bytes_per_token == 31 * 576 * 2


def test_no_group_within_the_limit_says_so() -> None:
    # 405B bf16 on single-L4 nodes: 8 stages of 16 layers still need ~100 GiB a GPU.
    plan = _plan("llama-3.1-405b", "L4-24GB", accelerators_per_node=1)
    assert not plan.fits
    assert f"Nor does a group of {MAX_PIPELINE_PARALLEL} nodes" in plan.reason


def test_plan_json_carries_the_group() -> None:
    wire = _plan("llama-3.1-405b", "H100-80GB").to_wire()
    assert (wire["nodesPerInstance"], wire["pipelineParallel"], wire["layersPerStage"]) == (2, 2, 63)
    assert wire["interNodeBytesPerSecond"] == 25 * 10**9


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(["llama-3.1-405b", "llama-3.1-70b", "deepseek-v3", "qwen3-235b-a22b"]),
    memory_gib=st.integers(min_value=16, max_value=200),
    extra_gib=st.integers(min_value=0, max_value=200),
    per_node=st.sampled_from([1, 2, 4, 8]),
    length=st.sampled_from([2048, 8192, 32_768]),
)
def test_more_memory_never_needs_more_nodes(
    model: str, memory_gib: int, extra_gib: int, per_node: int, length: int
) -> None:
    arch = get_model(model).architecture
    base = get_accelerator("H100-80GB")
    request = SizingRequest(max_model_len=length, peak_qps=1, accelerators_per_node=per_node, precision="fp8")
    small = base.model_copy(update={"name": "Small", "memory_bytes": memory_gib * GIB})
    large = base.model_copy(update={"name": "Large", "memory_bytes": (memory_gib + extra_gib) * GIB})
    # As for tensor parallelism (test_parallelism), the chosen group is not monotone while the
    # concurrency target is missed: with little memory the fewest stages that start are taken
    # (say 7, under the target), with more the fewest that meet it may be more (8). So the
    # property is stated for the fewest stages that start, and for the plan once the target is met.
    assert _fewest_starting(arch, large, request) <= _fewest_starting(arch, small, request)
    before = plan_deployment(arch, small, request)
    after = plan_deployment(arch, large, request)
    if before.fits:
        assert after.fits
    if before.fits and before.max_concurrent_sequences >= request.concurrency:
        assert after.nodes_per_instance <= before.nodes_per_instance
        assert after.accelerators_per_instance <= before.accelerators_per_instance


def _fewest_starting(arch: Architecture, accel: Accelerator, request: SizingRequest) -> int:
    """The fewest pipeline stages that start, or one past the most when none does."""
    choice = choose_pipeline_parallel(arch, accel, request)
    starting = [c.pipeline_parallel for c in choice.candidates if c.max_concurrent_sequences >= 1]
    return min(starting, default=MAX_PIPELINE_PARALLEL + 1)


def test_more_memory_may_prefer_more_stages_that_meet_the_target() -> None:
    # The counterexample that made the property above precise: 405B in fp8 over single-accelerator
    # nodes at 32k tokens. With 71 GiB no stage count holds the target, so the fewest that start
    # (7) are taken; with 80 GiB eight stages hold it and are preferred over seven that only start.
    arch = get_model("llama-3.1-405b").architecture
    base = get_accelerator("H100-80GB")
    request = SizingRequest(max_model_len=32_768, peak_qps=1, accelerators_per_node=1, precision="fp8")
    small = base.model_copy(update={"name": "Small", "memory_bytes": 71 * GIB})
    before = choose_pipeline_parallel(arch, small, request)
    after = choose_pipeline_parallel(arch, base, request)
    assert before.chosen is not None and after.chosen is not None
    assert not before.meets_concurrency and after.meets_concurrency
    assert after.chosen.max_concurrent_sequences >= request.concurrency
    assert _fewest_starting(arch, base, request) <= _fewest_starting(arch, small, request)
