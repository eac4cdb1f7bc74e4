from __future__ import annotations

from gpupool.api.conditions import (
    ConditionStatus,
    ConditionType,
    Reason,
    find_condition,
    set_condition,
)

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"


def test_transition_time_moves_only_when_status_changes() -> None:
    first = set_condition(
        [], ConditionType.READY, ConditionStatus.FALSE, Reason.INSTANCES_STARTING, "0/2", 1, T0
    )
    same_status = set_condition(
        first, ConditionType.READY, ConditionStatus.FALSE, Reason.INSTANCES_STARTING, "0/2", 2, T1
    )
    ready = find_condition(same_status, ConditionType.READY)
    assert ready is not None
    assert ready.last_transition_time == T0
    assert ready.observed_generation == 2
    flipped = set_condition(
        same_status, ConditionType.READY, ConditionStatus.TRUE, Reason.AVAILABLE, "2/2", 2, T1
    )
    after = find_condition(flipped, ConditionType.READY)
    assert after is not None and after.last_transition_time == T1 and after.reason == "Available"


def test_setting_the_same_condition_twice_is_identical() -> None:
    once = set_condition([], ConditionType.DEGRADED, ConditionStatus.FALSE, Reason.RECONCILED, "", 3, T0)
    twice = set_condition(once, ConditionType.DEGRADED, ConditionStatus.FALSE, Reason.RECONCILED, "", 3, T1)
    assert once == twice


def test_conditions_are_kept_sorted_and_unique() -> None:
    conditions = []
    for type_ in (
        ConditionType.READY,
        ConditionType.DEGRADED,
        ConditionType.PLANNED,
        ConditionType.READY,
    ):
        conditions = set_condition(conditions, type_, ConditionStatus.TRUE, Reason.PLANNED, "", 1, T0)
    assert [c.type for c in conditions] == ["Degraded", "Planned", "Ready"]
