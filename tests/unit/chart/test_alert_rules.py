"""The PrometheusRule's alerts, checked and exercised by promtool on synthetic series."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_rendering import CHART, Render, one


@pytest.fixture(scope="module")
def rules(render: Render) -> dict[str, Any]:
    objects = render("-f", str(CHART / "ci" / "monitoring-values.yaml"))
    return {"groups": one(objects, "PrometheusRule")["spec"]["groups"]}


def expr(rules: dict[str, Any], alert: str, **labels: str) -> str:
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == alert and labels.items() <= rule["labels"].items():
                return str(rule["expr"])
    raise AssertionError(f"no alert {alert} {labels}")


def test_promtool_accepts_the_rules(promtool: str, rules: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_utilisation_alert_crosses_at_the_threshold(
    promql_tests: Callable[..., None], rules: dict[str, Any]
) -> None:
    alert = expr(rules, "GpupoolAcceleratorUtilisationHigh", metric="DCGM_FI_DEV_GPU_UTIL")
    series = [
        {"series": 'DCGM_FI_DEV_GPU_UTIL{gpu="0", Hostname="busy"}', "values": "95x30"},
        {"series": 'DCGM_FI_DEV_GPU_UTIL{gpu="1", Hostname="calm"}', "values": "60x30"},
    ]
    busy = [{"labels": '{gpu="0", Hostname="busy"}', "value": 95}]
    promql_tests(series, [(alert, "20m", busy)])


def test_latency_alert_uses_the_configured_quantile_and_threshold(
    promql_tests: Callable[..., None], rules: dict[str, Any]
) -> None:
    alert = expr(rules, "GpupoolModelTimeToFirstTokenHigh")
    bucket = "vllm:time_to_first_token_seconds_bucket"
    # 100 requests a minute per model: "slow" answers 15% of them after 0.4 s, "fast" none. The
    # scenario alerts when p99 exceeds 0.4 s.
    cumulative = {
        "slow": {"0.1": 50, "0.4": 85, "0.5": 90, "1": 100, "+Inf": 100},
        "fast": {"0.1": 50, "0.4": 100, "0.5": 100, "1": 100, "+Inf": 100},
    }
    series = [
        {
            "series": f'{bucket}{{namespace="ns", model_name="{model}", le="{le}"}}',
            "values": f"0+{count}x20",
        }
        for model, buckets in cumulative.items()
        for le, count in buckets.items()
    ]
    promql_tests(
        series,
        [(f"count by (model_name) ({alert})", "15m", [{"labels": '{model_name="slow"}', "value": 1}])],
    )


def test_error_rate_alert_counts_triton_failures(
    promql_tests: Callable[..., None], rules: dict[str, Any]
) -> None:
    alert = expr(rules, "GpupoolModelErrorRateHigh")
    series = [
        {"series": 'nv_inference_request_success{namespace="ns", model="bad"}', "values": "0+95x20"},
        {"series": 'nv_inference_request_failure{namespace="ns", model="bad"}', "values": "0+5x20"},
        {"series": 'nv_inference_request_success{namespace="ns", model="good"}', "values": "0+1000x20"},
        {"series": 'nv_inference_request_failure{namespace="ns", model="good"}', "values": "0+1x20"},
    ]
    promql_tests(
        series,
        [(alert, "10m", [{"labels": '{namespace="ns", model="bad"}', "value": 0.05}])],
    )


def test_operator_alerts(promql_tests: Callable[..., None], rules: dict[str, Any]) -> None:
    job = 'job="gpupool-metrics"'
    series = [
        {"series": f'up{{{job}, instance="a"}}', "values": "1x5 0x10"},
        {"series": f'gpupool_reconcile_errors_total{{{job}, kind="ModelDeployment"}}', "values": "0+6x15"},
        {"series": f'gpupool_reconcile_errors_total{{{job}, kind="InferencePool"}}', "values": "0x15"},
        {
            "series": f'gpupool_model_desired_replicas{{{job}, namespace="ns", name="short"}}',
            "values": "3x15",
        },
        {"series": f'gpupool_model_ready_replicas{{{job}, namespace="ns", name="short"}}', "values": "1x15"},
        {"series": f'gpupool_model_desired_replicas{{{job}, namespace="ns", name="full"}}', "values": "2x15"},
        {"series": f'gpupool_model_ready_replicas{{{job}, namespace="ns", name="full"}}', "values": "2x15"},
    ]
    promql_tests(
        series,
        [
            (expr(rules, "GpupoolOperatorDown"), "3m", []),
            (
                expr(rules, "GpupoolOperatorDown"),
                "10m",
                [{"labels": f'up{{{job}, instance="a"}}', "value": 0}],
            ),
            (
                expr(rules, "GpupoolReconcileErrors"),
                "10m",
                [{"labels": '{kind="ModelDeployment"}', "value": 0.1}],
            ),
            (
                expr(rules, "GpupoolModelReplicasMismatch"),
                "10m",
                [{"labels": '{namespace="ns", name="short"}', "value": 2}],
            ),
        ],
    )
    # No series at all for the job: absent() makes the operator-down alert fire too.
    promql_tests(
        [{"series": 'up{job="other"}', "values": "1x5"}],
        [(expr(rules, "GpupoolOperatorDown"), "3m", [{"labels": f"{{{job}}}", "value": 1}])],
    )
