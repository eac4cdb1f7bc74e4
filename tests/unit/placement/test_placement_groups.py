"""Instances over several nodes: a group counts as one instance of all its accelerators."""

from __future__ import annotations

import pytest
from placement_fixtures import make_pool, node, pod

from gpupool.placement import account_pool, workload_key
from gpupool.placement.caps import capacity_cap, running_instances
from gpupool.placement.request import InstanceRequest

POOL = make_pool()
WORKLOAD = workload_key("team-a", "chat")


def _request(instances: int) -> InstanceRequest:
    # Two nodes of 8 per instance: 16 accelerators, 8 per pod.
    return InstanceRequest(
        workload=WORKLOAD,
        namespace="team-a",
        tier="P1",
        tensor_parallel=16,
        instances=instances,
        nodes_per_instance=2,
    )


def test_a_group_is_one_instance_of_all_its_accelerators() -> None:
    request = _request(3)
    assert (request.accelerators, request.per_pod) == (48, 8)
    with pytest.raises(ValueError, match="do not split over 3 nodes"):
        InstanceRequest(
            workload=WORKLOAD,
            namespace="team-a",
            tier="P1",
            tensor_parallel=16,
            instances=1,
            nodes_per_instance=3,
        )


def test_room_counts_whole_nodes_per_group() -> None:
    # Five free nodes of 8 and one with 4 free: five pods fit, so two groups more.
    nodes = [node(f"n{i}") for i in range(5)] + [node("half")]
    pods = [pod("other-0", 4, node_name="half", model="other")]
    state = account_pool(POOL, nodes, pods)
    cap = capacity_cap(state, _request(4))
    assert cap.allowed == 2
    assert "stranded in pieces smaller than 8" in cap.message


def test_running_groups_count_their_pods_together() -> None:
    nodes = [node(f"n{i}") for i in range(4)]
    pods = [pod(f"chat-{i}", 8, node_name=f"n{i}") for i in range(4)]
    state = account_pool(POOL, nodes, pods)
    assert running_instances(state, WORKLOAD, nodes_per_instance=2) == 2
    cap = capacity_cap(state, _request(2))
    assert cap.allowed == 2
