"""Instances, nodes, cost and load time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.sizing import (
    cost_per_hour,
    instances_per_node,
    load_time_seconds,
    nodes_needed,
    plan_instances,
)


class TestPlanInstances:
    def test_ceil_of_peak_with_headroom_over_capacity(self) -> None:
        # 100 QPS x 1.2 / 3 QPS = 40 instances
        assert plan_instances(100, 3, 0.2) == 40
        # 10 x 1.2 / 2.5 = 4.8 -> 5
        assert plan_instances(10, 2.5, 0.2) == 5

    def test_floating_point_does_not_add_an_instance(self) -> None:
        # 10 x 1.2 / 6 is 2.0000000000000004 in floating point; the answer is 2.
        assert plan_instances(10, 6, 0.2) == 2

    def test_at_least_one_instance(self) -> None:
        assert plan_instances(0, 5, 0.2) == 1
        assert plan_instances(0.01, 50, 0) == 1

    def test_rejects_non_positive_capacity(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            plan_instances(10, 0, 0.2)


class TestNodes:
    def test_tensor_parallel_groups_never_straddle_nodes(self) -> None:
        # 8 accelerators hold two TP-4 groups; 5 instances need ceil(5 / 2) = 3 nodes.
        assert instances_per_node(8, 4) == 2
        assert nodes_needed(5, 8, 4) == 3
        # 6-accelerator nodes hold one TP-4 group, the other two accelerators stay idle.
        assert instances_per_node(6, 4) == 1
        assert nodes_needed(3, 6, 4) == 3

    def test_group_wider_than_a_node_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="does not fit a node"):
            nodes_needed(1, 4, 8)


def test_cost_is_instances_times_tensor_parallel_times_price() -> None:
    # 5 instances x 4 accelerators x 2.5 per hour = 50.0 per hour
    assert cost_per_hour(5, 4, 2.5) == 50.0
    assert cost_per_hour(5, 4, None) is None


def test_load_time_is_engine_start_plus_reading_the_weights() -> None:
    # Llama-3.1-70B bf16: 141,107,412,992 B / 400 MB/s = 352.8 -> 353 s, + 60 s start = 413 s
    assert load_time_seconds(141_107_412_992, 400 * 10**6, 60) == 413


@settings(max_examples=300, deadline=None)
@given(
    low=st.floats(min_value=0, max_value=10_000, allow_nan=False),
    extra=st.floats(min_value=0, max_value=10_000, allow_nan=False),
    capacity=st.floats(min_value=0.01, max_value=1_000, allow_nan=False),
    headroom=st.floats(min_value=0, max_value=2, allow_nan=False),
)
def test_more_qps_never_needs_fewer_instances(
    low: float, extra: float, capacity: float, headroom: float
) -> None:
    assert plan_instances(low + extra, capacity, headroom) >= plan_instances(low, capacity, headroom)


@settings(max_examples=300, deadline=None)
@given(
    peak=st.floats(min_value=0, max_value=10_000, allow_nan=False),
    capacity=st.floats(min_value=0.01, max_value=1_000, allow_nan=False),
    headroom=st.floats(min_value=0, max_value=2, allow_nan=False),
    accelerators_per_node=st.sampled_from((1, 2, 4, 8, 16)),
    tp=st.sampled_from((1, 2, 4, 8)),
)
def test_instances_and_nodes_cover_the_load(
    peak: float, capacity: float, headroom: float, accelerators_per_node: int, tp: int
) -> None:
    instances = plan_instances(peak, capacity, headroom)
    assert instances >= 1
    # Enough capacity (up to the rounding that keeps float noise from adding an instance) ...
    assert instances * capacity >= peak * (1 + headroom) * (1 - 1e-9)
    # ... and no more than one instance beyond what is needed.
    assert (instances - 1) * capacity < max(peak * (1 + headroom), capacity)
    if tp <= accelerators_per_node:
        nodes = nodes_needed(instances, accelerators_per_node, tp)
        assert nodes * accelerators_per_node >= instances * tp
        assert (nodes - 1) * instances_per_node(accelerators_per_node, tp) < instances
