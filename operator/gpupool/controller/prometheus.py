"""Read a pool's engine metrics from Prometheus into one `MetricsWindow` per model.

One range query per pool and signal each evaluation, grouped by `namespace` and `model_deployment`
(the pods' `gpupool.io/model-deployment` label, relabelled onto the series), never one per model.
Every series is placed on the range's step grid; a model without a series for a signal gets NaN
there, which the policy reads as missing. When Prometheus cannot be queried every window is empty
and `PoolMetrics.error` says why: the policy then holds (it never scales down on missing metrics).
"""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from gpupool.api.v1alpha1 import EngineType
from gpupool.catalog.types import Vendor
from gpupool.scaling import MetricsWindow, Signal

log = logging.getLogger(__name__)

BY = "namespace, model_deployment"
TIMEOUT_SECONDS = 5.0

ModelKey = tuple[str, str]


def queries(pool: str, engine: EngineType, vendor: Vendor) -> dict[Signal, str]:
    """PromQL per signal for one pool and engine, each grouped by model (docs/autoscaling.md)."""
    sel = f'{{pool="{pool}"}}'
    if engine is EngineType.VLLM:
        engine_running = f"vllm:num_requests_running{sel}"
        result = {
            Signal.QPS: f"sum by ({BY}) (rate(vllm:request_success_total{sel}[1m]))",
            Signal.WAITING_REQUESTS: f"sum by ({BY}) (vllm:num_requests_waiting{sel})",
            Signal.RUNNING_REQUESTS: f"sum by ({BY}) ({engine_running})",
            # vllm:gpu_cache_usage_perc: the same gauge before vLLM 0.9.
            Signal.KV_CACHE_USAGE: f"avg by ({BY}) "
            f"(vllm:kv_cache_usage_perc{sel} or vllm:gpu_cache_usage_perc{sel})",
            Signal.TTFT_P99_SECONDS: "histogram_quantile(0.99, sum by "
            f"({BY}, le) (rate(vllm:time_to_first_token_seconds_bucket{sel}[1m])))",
            Signal.ERROR_RATE: f'sum by ({BY}) (rate(vllm:request_success_total{{pool="{pool}", '
            f'finished_reason="abort"}}[1m])) / sum by ({BY}) (rate(vllm:request_success_total{sel}[1m]))',
        }
    else:
        engine_running = f"nv_inference_pending_request_count{sel}"
        # One selector for both counters: nv_inference_request_failure carries a `reason` label
        # that nv_inference_request_success lacks, so `success + failure` would match nothing.
        both = (
            f"sum by ({BY}) (rate({{__name__=~"
            f'"nv_inference_request_success|nv_inference_request_failure", pool="{pool}"}}[1m]))'
        )
        result = {
            Signal.QPS: both,
            Signal.WAITING_REQUESTS: f"sum by ({BY}) (nv_inference_pending_request_count{sel})",
            Signal.ERROR_RATE: f"sum by ({BY}) (rate(nv_inference_request_failure{sel}[1m])) / {both}",
        }
    # Utilisation of the pods that run the engine: join the exporter's per-pod series on the
    # engine's own series, which carry the model label.
    if vendor is Vendor.NVIDIA:
        util = "DCGM_FI_DEV_GPU_UTIL"
    else:
        util = 'label_replace(npu_chip_info_utilization, "pod", "$1", "pod_name", "(.+)")'
    result[Signal.ACCELERATOR_UTILIZATION] = (
        f"avg by ({BY}) ({util} * on (namespace, pod) group_left (model_deployment) "
        f"group by (namespace, pod, model_deployment) ({engine_running})) / 100"
    )
    return result


@dataclass
class PoolMetrics:
    """Windows by (namespace, name); `error` when Prometheus could not be queried."""

    timestamps: list[float]
    series: dict[Signal, dict[ModelKey, list[float]]] = field(default_factory=dict)
    exported: frozenset[Signal] = frozenset()
    error: str | None = None

    def window(self, namespace: str, name: str) -> MetricsWindow:
        if self.error is not None:
            # Expected but absent: every signal the engine exports reads as missing.
            return MetricsWindow(model=f"{namespace}/{name}", **{s.value: [] for s in self.exported})
        values: dict[str, list[float] | None] = {}
        for signal in Signal:
            if signal not in self.exported:
                continue
            by_model = self.series.get(signal, {})
            values[signal.value] = by_model.get((namespace, name)) or [math.nan] * len(self.timestamps)
        return MetricsWindow(model=f"{namespace}/{name}", timestamps=list(self.timestamps), **values)

    def has_series(self, namespace: str, name: str) -> bool:
        return any((namespace, name) in by_model for by_model in self.series.values())


def unavailable(engine: EngineType, vendor: Vendor, reason: str) -> PoolMetrics:
    """Metrics that could not be read at all: every signal of the engine is missing."""
    return PoolMetrics(timestamps=[], exported=frozenset(queries("", engine, vendor)), error=reason)


class PrometheusError(Exception):
    pass


def _get(url: str, params: dict[str, str]) -> object:
    full = f"{url.rstrip('/')}/api/v1/query_range?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(full, timeout=TIMEOUT_SECONDS) as response:
            body = json.load(response)
    except urllib.error.HTTPError as err:
        try:
            detail = json.load(err).get("error", err.reason)
        except (ValueError, AttributeError):
            detail = err.reason
        raise PrometheusError(f"Prometheus at {url} answered {err.code}: {detail}") from err
    except (OSError, ValueError) as err:
        raise PrometheusError(f"Prometheus at {url} cannot be queried: {err}") from err
    if not isinstance(body, dict) or body.get("status") != "success":
        raise PrometheusError(f"Prometheus at {url} answered {body!r:.200}")
    return body.get("data")


def read_pool(
    url: str,
    pool: str,
    engine: EngineType,
    vendor: Vendor,
    now: float,
    range_seconds: float,
    step_seconds: float,
) -> PoolMetrics:
    """One range query per signal over [now - range_seconds, now], every model of the pool at once."""
    step = max(1.0, step_seconds)
    points = max(1, int(range_seconds // step))
    end = math.floor(now / step) * step
    start = end - (points - 1) * step
    timestamps = [start + i * step for i in range(points)]
    result = PoolMetrics(timestamps=timestamps)
    exprs = queries(pool, engine, vendor)
    result.exported = frozenset(exprs)
    index = {round(t, 3): i for i, t in enumerate(timestamps)}
    for signal, expr in exprs.items():
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        try:
            data = _get(url, params)
        except PrometheusError as err:
            log.warning("autoscaler: %s", err, extra={"obj_kind": "InferencePool", "obj_name": pool})
            result.error = str(err)
            return result
        by_model: dict[ModelKey, list[float]] = {}
        for series in (data or {}).get("result", []) if isinstance(data, dict) else []:
            labels = series.get("metric", {})
            key = (labels.get("namespace", ""), labels.get("model_deployment", ""))
            if not key[1]:
                continue
            values = [math.nan] * len(timestamps)
            for time, raw in series.get("values", []):
                slot = index.get(round(float(time), 3))
                if slot is not None:
                    try:
                        values[slot] = float(raw)
                    except ValueError:
                        continue
            by_model[key] = values
        result.series[signal] = by_model
    return result
