"""The engine model: calibration to the plan, Erlang C, and the fluid queue."""

from __future__ import annotations

import math

import pytest

from gpupool.simulate.engine import EngineModel, advance_queue, erlang_c_queue, ttft_cdf

ENGINE = EngineModel(
    qps_per_instance=10.0, latency_slo_seconds=0.5, max_running=64, kv_capacity_tokens=200_000
)


def test_p99_ttft_meets_the_slo_exactly_at_the_planned_qps() -> None:
    rho = ENGINE.qps_per_instance / ENGINE.saturation_qps  # 1 / 1.1
    mean = ENGINE.ttft_mean_seconds(rho)
    assert ttft_cdf(0.5, 0.0, mean) == pytest.approx(0.99)
    # Lighter load, shorter prefill; the cap keeps the mean finite at saturation.
    assert ENGINE.ttft_mean_seconds(0.5) < mean < ENGINE.ttft_mean_seconds(1.5) < math.inf


def test_erlang_c_matches_closed_forms() -> None:
    # M/M/1: Lq = rho^2 / (1 - rho) = 0.25 / 0.5 at rho = 0.5.
    assert erlang_c_queue(1, 500) == pytest.approx(0.5)
    # M/M/2 at rho = 0.5 (a = 1): P(wait) = 1/3, Lq = 1/3 x 0.5 / 0.5 = 1/3.
    assert erlang_c_queue(2, 500) == pytest.approx(1 / 3)
    assert erlang_c_queue(64, 1000) == math.inf
    # A large batch hardly queues until it is nearly full (Halfin-Whitt: P(wait) ~ 7e-4 at 80%).
    assert erlang_c_queue(256, 800) < 0.01
    assert erlang_c_queue(256, 990) > 1


def test_queue_conserves_requests() -> None:
    backlog = 0.0
    total_in = total_out = 0.0
    for arrivals in [50.0, 80.0, 200.0, 10.0, 0.0, 0.0]:
        step = advance_queue(ENGINE, backlog, arrivals, ready=2, dt=5.0)
        total_in += arrivals
        total_out += step.served + step.dropped
        backlog = step.backlog
    assert total_in == pytest.approx(total_out + backlog)


def test_below_saturation_there_is_no_wait() -> None:
    step = advance_queue(ENGINE, 0.0, 50.0, ready=2, dt=5.0)  # 10 QPS on 2 x 11 QPS
    assert step.served == 50 and step.backlog == 0 and step.wait_seconds == 0
    assert step.rho == pytest.approx(10 / 22)


def test_overload_queues_then_times_out() -> None:
    # 2 instances serve 22 QPS; 100 QPS for 5 s leaves 390 waiting, 8.9 s of work on average.
    step = advance_queue(ENGINE, 0.0, 500.0, ready=2, dt=5.0)
    assert step.served == pytest.approx(110) and step.backlog == pytest.approx(390)
    assert step.wait_seconds == pytest.approx(390 / 2 / 22)
    # A backlog beyond 30 s of work is dropped.
    step = advance_queue(ENGINE, 600.0, 500.0, ready=2, dt=5.0)
    assert step.backlog == pytest.approx(22 * 30) and step.dropped == pytest.approx(1100 - 110 - 660)


def test_no_ready_instance_fails_everything() -> None:
    step = advance_queue(ENGINE, 10.0, 40.0, ready=0, dt=5.0)
    assert step.served == 0 and step.dropped == 50 and step.backlog == 0


def test_batch_slots_come_from_the_kv_cache_or_max_num_seqs() -> None:
    from gpupool.simulate.engine import DEFAULT_MEAN_PROMPT_TOKENS

    assert ENGINE.tokens_per_sequence() == DEFAULT_MEAN_PROMPT_TOKENS + 128
    with pytest.raises(ValueError):
        EngineModel(qps_per_instance=0, latency_slo_seconds=0.5, max_running=1, kv_capacity_tokens=1)
