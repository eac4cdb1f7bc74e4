"""The simulated Prometheus: histogram_quantile as Prometheus computes it, rates, gaps."""

from __future__ import annotations

import math

import pytest

from gpupool.simulate.prometheus import Scrape, SimulatedPrometheus, histogram_quantile

BOUNDS = (0.1, 0.5, 1.0)


def test_histogram_quantile_interpolates_within_the_bucket() -> None:
    # 100 observations: 50 <= 0.1, 90 <= 0.5, 100 <= 1.0. p50 is the top of the first bucket; p80
    # is 3/4 into the second: 0.1 + 0.4 x (80 - 50) / 40 = 0.4.
    cumulative = [50.0, 90.0, 100.0, 100.0]
    assert histogram_quantile(0.5, BOUNDS, cumulative) == pytest.approx(0.1)
    assert histogram_quantile(0.8, BOUNDS, cumulative) == pytest.approx(0.4)
    # The first bucket starts at 0.
    assert histogram_quantile(0.25, BOUNDS, cumulative) == pytest.approx(0.05)


def test_histogram_quantile_in_the_inf_bucket_and_empty() -> None:
    assert histogram_quantile(0.99, BOUNDS, [0.0, 0.0, 0.0, 10.0]) == 1.0
    assert math.isnan(histogram_quantile(0.99, BOUNDS, [0.0, 0.0, 0.0, 0.0]))


def scrape(time: float, finished: float, aborted: float = 0.0) -> Scrape:
    return Scrape(
        time=time,
        finished=finished,
        aborted=aborted,
        ttft_cumulative=(finished, finished, finished, finished),
        waiting=1.0,
        running=5.0,
        kv_cache_usage=0.5,
        accelerator_utilization=0.9,
        serving_pods=2,
        pod_finished={"a": finished / 2, "b": finished / 2},
        pod_serving_since={"a": 0.0, "b": 0.0},
        pod_utilization={"a": 0.9, "b": 0.9},
    )


def test_rates_over_a_minute_and_gaps_during_an_outage() -> None:
    prometheus = SimulatedPrometheus(BOUNDS)
    for index in range(10):
        time = index * 15.0
        prometheus.record(
            time, None if index == 8 else scrape(time, finished=10.0 * time, aborted=0.1 * time)
        )
    window = prometheus.window_at(now=135.0, seconds=60.0)
    assert window.timestamps == [75.0, 90.0, 105.0, 120.0, 135.0]
    assert window.qps is not None and window.error_rate is not None
    assert window.qps[:3] == pytest.approx([10.0, 10.0, 10.0])
    assert math.isnan(window.qps[3])  # the lost scrape at 120 s
    assert window.qps[4] == pytest.approx(10.0)  # 135 s against 75 s
    assert window.error_rate[0] == pytest.approx(0.01)
    assert window.ttft_p99_seconds is not None and window.ttft_p99_seconds[0] == pytest.approx(0.099)
    assert prometheus.pod_qps(["a", "b", "c"]) == {"a": 5.0, "b": 5.0, "c": None}
