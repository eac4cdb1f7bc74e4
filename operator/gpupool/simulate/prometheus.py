"""A stand-in for Prometheus: scrapes of the simulated pods, and the queries the operator would run.

The operator reads a model's signals with PromQL (one batched query per pool and signal, grouped by
model); `window_at` computes the same numbers from the stored scrapes, with the same arithmetic:

| signal                  | query (vLLM)                                                                 |
| ----------------------- | ---------------------------------------------------------------------------- |
| qps                     | `sum by (model_name) (rate(vllm:request_success_total[1m]))`                  |
| waiting / running       | `sum by (model_name) (vllm:num_requests_waiting)` / `..._running`            |
| KV-cache usage          | `avg by (model_name) (vllm:kv_cache_usage_perc)`                             |
| accelerator utilisation | `avg by (pod) (DCGM_FI_DEV_GPU_UTIL) / 100`, averaged over the model's pods  |
| TTFT p95 / p99          | `histogram_quantile(0.99, sum by (model_name, le) (rate(..._bucket[1m])))`  |
| error rate              | aborted over all finished requests, both as `rate(...[1m])`                  |

A scrape during a metrics outage stores nothing, so the window shows a gap (NaN), as a range query
over a Prometheus that lost its targets would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gpupool.scaling.window import MetricsWindow

NAN = math.nan


def histogram_quantile(quantile: float, bounds: Sequence[float], cumulative: Sequence[float]) -> float:
    """Prometheus's histogram_quantile over finite bucket bounds plus an implicit +Inf bucket whose
    count is the last cumulative value; NaN without observations."""
    if not cumulative or cumulative[-1] <= 0:
        return NAN
    total = cumulative[-1]
    rank = quantile * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(bounds, cumulative[: len(bounds)], strict=True):
        if count >= rank:
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    # In the +Inf bucket: Prometheus returns the upper bound of the last finite bucket.
    return bounds[-1]


@dataclass(frozen=True)
class Scrape:
    """One scrape of all pods of a model (None during an outage)."""

    time: float
    finished: float
    aborted: float
    ttft_cumulative: tuple[float, ...]  # per bucket bound, then the total
    waiting: float
    running: float
    kv_cache_usage: float
    accelerator_utilization: float
    serving_pods: int
    # Per-pod values for the HPA baselines.
    pod_finished: dict[str, float]
    pod_serving_since: dict[str, float]
    pod_utilization: dict[str, float]


SIGNALS = (
    "qps",
    "waiting_requests",
    "running_requests",
    "kv_cache_usage",
    "accelerator_utilization",
    "ttft_p95_seconds",
    "ttft_p99_seconds",
    "error_rate",
)


@dataclass
class SimulatedPrometheus:
    ttft_bounds: tuple[float, ...]
    scrape_interval: float = 15.0
    rate_window: float = 60.0
    history_step: float = 300.0
    history_keep: float = 2 * 86_400.0 + 3600.0
    # Signals the engine does not export (Triton: no batch, KV-cache or first-token metrics by
    # default); the window leaves them out rather than reporting gaps.
    not_exported: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.times: list[float] = []
        self.scrapes: list[Scrape | None] = []
        # The query results at each scrape time, computed once.
        self.values: list[tuple[float, ...]] = []
        self.history_times: list[float] = []
        self.history_values: list[float] = []

    def record(self, time: float, scrape: Scrape | None) -> None:
        self.times.append(time)
        self.scrapes.append(scrape)
        self.values.append(self._query(len(self.scrapes) - 1))
        lag = round(self.history_step / self.scrape_interval)
        on_boundary = round(time / self.scrape_interval) % lag == 0
        if on_boundary and len(self.scrapes) > lag:
            now, then = self.scrapes[-1], self.scrapes[-1 - lag]
            if now is not None and then is not None and now.serving_pods > 0:
                self.history_times.append(time)
                self.history_values.append(max(0.0, now.finished - then.finished) / self.history_step)
                while self.history_times and self.history_times[0] < time - self.history_keep:
                    self.history_times.pop(0)
                    self.history_values.pop(0)

    def _lagged(self, index: int) -> Scrape | None:
        lag = round(self.rate_window / self.scrape_interval)
        return self.scrapes[index - lag] if index >= lag else None

    def _query(self, index: int) -> tuple[float, ...]:
        """The value of each signal at scrape `index`, NaN where the query returns nothing."""
        scrape, before = self.scrapes[index], self._lagged(index)
        values = dict.fromkeys(SIGNALS, NAN)
        if scrape is not None and scrape.serving_pods > 0:
            values["waiting_requests"] = scrape.waiting
            values["running_requests"] = scrape.running
            values["kv_cache_usage"] = scrape.kv_cache_usage
            values["accelerator_utilization"] = scrape.accelerator_utilization
            if before is not None:
                span = scrape.time - before.time
                finished = max(0.0, scrape.finished - before.finished)
                aborted = max(0.0, scrape.aborted - before.aborted)
                values["qps"] = finished / span
                values["error_rate"] = aborted / finished if finished > 0 else 0.0
                delta = [
                    max(0.0, a - b)
                    for a, b in zip(scrape.ttft_cumulative, before.ttft_cumulative, strict=True)
                ]
                values["ttft_p95_seconds"] = histogram_quantile(0.95, self.ttft_bounds, delta)
                values["ttft_p99_seconds"] = histogram_quantile(0.99, self.ttft_bounds, delta)
        return tuple(values[name] for name in SIGNALS)

    def window_at(self, now: float, seconds: float, model: str = "") -> MetricsWindow:
        """The model's signals over the last `seconds`, as range queries at the scrape interval."""
        start = len(self.times)
        while start > 0 and self.times[start - 1] >= now - seconds:
            start -= 1
        rows = self.values[start:]
        body: dict[str, object] = {
            "model": model,
            "timestamps": self.times[start:],
            "qpsHistoryTimestamps": list(self.history_times),
            "qpsHistory": list(self.history_values),
        }
        for position, name in enumerate(SIGNALS):
            if name not in self.not_exported:
                body[name] = [row[position] for row in rows]
        return MetricsWindow.model_validate(body)

    def pod_utilization(self) -> dict[str, float | None]:
        """The newest scrape's accelerator utilisation per non-terminating pod (0-1)."""
        latest = self.scrapes[-1] if self.scrapes else None
        if latest is None:
            return {}
        return dict(latest.pod_utilization)

    def pod_qps(self, pods: Sequence[str]) -> dict[str, float | None]:
        """rate(finished[1m]) per pod; None for a pod without two samples (still loading, or new)."""
        latest = self.scrapes[-1] if self.scrapes else None
        if latest is None:
            return dict.fromkeys(pods)
        before = self._lagged(len(self.scrapes) - 1)
        out: dict[str, float | None] = {}
        for pod in pods:
            if pod not in latest.pod_finished:
                out[pod] = None
                continue
            since = max(latest.pod_serving_since[pod], before.time if before is not None else -math.inf)
            span = latest.time - since
            if span < self.scrape_interval:
                out[pod] = None
                continue
            start = before.pod_finished.get(pod, 0.0) if before is not None else 0.0
            out[pod] = max(0.0, latest.pod_finished[pod] - start) / span
        return out
