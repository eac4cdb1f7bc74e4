"""The HPA baseline: replica_calculator's arithmetic and the default behaviour."""

from __future__ import annotations

from gpupool.scaling import ScalerState
from gpupool.scaling.hpa import HpaBehavior, hpa_decide, metric_replicas


class TestMetricReplicas:
    def test_ceil_of_ratio_times_pods(self) -> None:
        # Mean 90 against 60: ratio 1.5, 3 pods -> ceil(4.5) = 5.
        assert metric_replicas(3, {"a": 80.0, "b": 90.0, "c": 100.0}, 60.0) == 5
        # Mean 20 against 60: ratio 1/3, ceil(1.0) = 1.
        assert metric_replicas(3, {"a": 20.0, "b": 20.0, "c": 20.0}, 60.0) == 1

    def test_within_tolerance_keeps_the_count(self) -> None:
        # Ratio 1.08: within 10%.
        assert metric_replicas(4, dict.fromkeys("abcd", 65.0), 60.0) == 4

    def test_missing_pods_count_at_target_when_scaling_down(self) -> None:
        # Two pods at 30 (ratio 0.5), one missing counted at 60: mean 40, ratio 2/3, ceil(2.0) = 2.
        assert metric_replicas(3, {"a": 30.0, "b": 30.0, "c": None}, 60.0) == 2

    def test_missing_pods_count_at_zero_when_scaling_up(self) -> None:
        # Two pods at 120 (ratio 2), two missing at 0: mean 60, ratio 1.0 -> no change.
        assert metric_replicas(4, {"a": 120.0, "b": 120.0, "c": None, "d": None}, 60.0) == 4
        # Two at 150, one missing: mean 100, ratio 1.67, ceil(5) = 5.
        assert metric_replicas(3, {"a": 150.0, "b": 150.0, "c": None}, 60.0) == 5

    def test_no_metrics_no_decision(self) -> None:
        assert metric_replicas(3, {"a": None}, 60.0) is None


def test_scale_up_by_the_larger_of_four_pods_or_double_per_15_s() -> None:
    hot = {f"p{i}": 100.0 for i in range(2)}
    desired, state = hpa_decide(hot, 10.0, ScalerState(), 2, 1, 100, now=0.0)
    assert desired == 6  # 2 + max(4, 100% of 2)
    desired, state = hpa_decide({f"p{i}": 100.0 for i in range(6)}, 10.0, state, 6, 1, 100, now=10.0)
    assert desired == 6  # still within the 15 s period of the last increase
    desired, _ = hpa_decide({f"p{i}": 100.0 for i in range(6)}, 10.0, state, 6, 1, 100, now=16.0)
    assert desired == 12  # 6 + max(4, 100% of 6)


def test_scale_down_waits_for_the_300_s_window() -> None:
    busy, idle = dict.fromkeys("abcd", 60.0), dict.fromkeys("abcd", 10.0)
    _, state = hpa_decide(busy, 60.0, ScalerState(), 4, 1, 10, now=0.0)
    desired, state = hpa_decide(idle, 60.0, state, 4, 1, 10, now=100.0)
    assert desired == 4  # 4 was recommended 100 s ago
    desired, _ = hpa_decide(idle, 60.0, state, 4, 1, 10, now=301.0)
    assert desired == 1  # ceil(4 x 10 / 60) = 1, and 100% may go per 15 s


def test_behavior_defaults() -> None:
    behavior = HpaBehavior()
    assert behavior.scale_up.stabilization_window_seconds == 0
    assert [(p.type, p.value, p.period_seconds) for p in behavior.scale_up.policies] == [
        ("Percent", 100, 15),
        ("Pods", 4, 15),
    ]
    assert behavior.scale_down.stabilization_window_seconds == 300
