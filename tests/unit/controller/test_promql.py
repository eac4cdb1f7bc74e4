"""The operator's PromQL evaluated by Prometheus' own engine (promtool) on synthetic series.

Shapes alone do not show that a query matches: `a + b` over series whose labels differ returns
nothing. promtool's `test rules` runs each expression on series laid out like the real exporters'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gpupool.api.v1alpha1 import EngineType
from gpupool.catalog.types import Vendor
from gpupool.controller.prometheus import history_query, in_flight_query, queries
from gpupool.scaling import Signal

POD = 'namespace="a", pod="m-1", pool="p", model_deployment="m"'


def evaluate(promql_tests: Callable[..., None], series: list[dict[str, str]], cases: list[Any]) -> None:
    """Every (expr, expected samples) at 10 minutes, series sampled every 15 s."""
    promql_tests(series, [(e, "10m", samples) for e, samples in cases], interval="15s")


def model(value: float) -> list[dict[str, Any]]:
    return [{"labels": '{namespace="a", model_deployment="m"}', "value": value}]


def test_triton_counts_failures_that_carry_a_reason(promql_tests: Callable[..., None]) -> None:
    # Triton: 1 success and 0.5 failure (reason="CANCELED") per second.
    series = [
        {"series": f'nv_inference_request_success{{{POD}, model="m", version="1"}}', "values": "0+15x60"},
        {
            "series": f'nv_inference_request_failure{{{POD}, model="m", version="1", reason="CANCELED"}}',
            "values": "0+7.5x60",
        },
    ]
    exprs = queries("p", EngineType.TRITON, Vendor.NVIDIA)
    evaluate(
        promql_tests,
        series,
        [(exprs[Signal.QPS], model(1.5)), (exprs[Signal.ERROR_RATE], model(1 / 3))],
    )


def test_the_history_query_reads_every_engine(promql_tests: Callable[..., None]) -> None:
    vllm = 'namespace="a", pod="v-1", pool="p", model_deployment="chat"'
    series = [
        {"series": f'vllm:request_success_total{{{vllm}, finished_reason="stop"}}', "values": "0+30x60"},
        {"series": f'vllm:request_success_total{{{vllm}, finished_reason="abort"}}', "values": "0+15x60"},
        {"series": f'nv_inference_request_success{{{POD}, model="m"}}', "values": "0+15x60"},
        {
            "series": f'nv_inference_request_failure{{{POD}, model="m", reason="REJECTED"}}',
            "values": "0+15x60",
        },
        # Another pool's model is not read.
        {
            "series": 'vllm:request_success_total{namespace="a", pool="q", model_deployment="x"}',
            "values": "0+15x60",
        },
    ]
    evaluate(
        promql_tests,
        series,
        [
            (
                history_query("p", 300),
                [
                    {"labels": '{namespace="a", model_deployment="chat"}', "value": 3.0},
                    {"labels": '{namespace="a", model_deployment="m"}', "value": 2.0},
                ],
            )
        ],
    )


def test_in_flight_adds_running_and_waiting_per_pod(promql_tests: Callable[..., None]) -> None:
    series = [
        {
            "series": 'vllm:num_requests_running{namespace="a", pod="v-1", pool="p", engine="0"}',
            "values": "12x60",
        },
        {
            "series": 'vllm:num_requests_waiting{namespace="a", pod="v-1", pool="p", engine="0"}',
            "values": "3x60",
        },
        {
            "series": 'vllm:num_requests_running{namespace="a", pod="v-2", pool="p", engine="0"}',
            "values": "4x60",
        },
        {"series": f'nv_inference_pending_request_count{{{POD}, model="m"}}', "values": "7x60"},
        {"series": 'vllm:num_requests_running{namespace="a", pod="o-1", pool="q"}', "values": "9x60"},
    ]
    evaluate(
        promql_tests,
        series,
        [
            (
                in_flight_query("p"),
                [
                    {"labels": '{namespace="a", pod="v-1"}', "value": 15},
                    {"labels": '{namespace="a", pod="v-2"}', "value": 4},
                    {"labels": '{namespace="a", pod="m-1"}', "value": 7},
                ],
            )
        ],
    )
