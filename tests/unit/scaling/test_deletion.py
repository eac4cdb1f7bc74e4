"""Deletion costs from one in-flight sample: the least busy pod gets the lowest cost."""

from __future__ import annotations

import math

from gpupool.scaling.deletion import cost_changes, deletion_cost


def test_the_cost_is_the_in_flight_count_rounded() -> None:
    assert deletion_cost(7.0) == 7
    assert deletion_cost(2.4) == 2
    assert deletion_cost(2.6) == 3
    assert deletion_cost(1e12) == 2**31 - 1  # the annotation is an int32


def test_no_usable_sample_costs_what_no_annotation_costs() -> None:
    for unusable in (None, math.nan, math.inf, -3.0, 0.0):
        assert deletion_cost(unusable) == 0


def test_costs_order_pods_by_their_in_flight_requests() -> None:
    pods = {"chat-a": None, "chat-b": None, "chat-c": None}
    sample = {"chat-a": 28.0, "chat-b": 9.0, "chat-c": 17.0}
    changes = cost_changes(pods, sample)
    assert changes == {"chat-a": "28", "chat-b": "9", "chat-c": "17"}
    # The ReplicaSet controller deletes the lowest cost first: the least busy pod.
    assert sorted(changes, key=lambda pod: int(changes[pod])) == ["chat-b", "chat-c", "chat-a"]


def test_only_pods_whose_cost_changes_are_written() -> None:
    pods = {"chat-a": "28", "chat-b": "4", "chat-c": None, "chat-d": "3"}
    sample = {"chat-a": 28.2, "chat-b": 9.0, "chat-c": 0.0}
    # a: unchanged; b: 4 -> 9; c: no annotation and nothing in flight, already 0; d: no sample now,
    # so its old cost is stale and goes back to 0.
    assert cost_changes(pods, sample) == {"chat-b": "9", "chat-d": "0"}
    # Applying the changes makes the next pass a no-op.
    written = {**pods, "chat-b": "9", "chat-d": "0"}
    assert cost_changes(written, sample) == {}


def test_a_foreign_or_unreadable_value_is_replaced() -> None:
    assert cost_changes({"chat-a": "-100", "chat-b": "lots"}, {"chat-a": 2.0}) == {
        "chat-a": "2",
        "chat-b": "0",
    }
    # "07" reads as 7 but is not what we write: rewritten once, then stable.
    assert cost_changes({"chat-a": "07"}, {"chat-a": 7.0}) == {"chat-a": "7"}
