"""What the policy sees of one model: a short time series per signal, and how fresh each one is.

The operator fills a `MetricsWindow` from Prometheus range queries (one per signal and pool, grouped
by model) aligned on common timestamps; the simulator fills it from simulated scrapes. A signal is

- `None`: the engine does not export it (Triton has no KV-cache gauge), so the policy does without;
- an empty list or a list of NaN: expected but missing (Prometheus returns gaps as NaN);
- present: the newest finite sample counts if it is younger than the policy's `metricsMaxAgeSeconds`.

A negative or infinite sample, or a ratio above 1 where the signal is a fraction, is nonsensical:
the whole signal is then unusable until it reports sensible values again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from gpupool.api.base import ApiModel

# Fractions may overshoot 1 by rounding in the exporter (vLLM computes KV usage as 1 - free/total).
_FRACTION_SLACK = 1e-6


class Signal(StrEnum):
    """The signals of a window, by the name of their field."""

    QPS = "qps"
    WAITING_REQUESTS = "waiting_requests"
    RUNNING_REQUESTS = "running_requests"
    KV_CACHE_USAGE = "kv_cache_usage"
    ACCELERATOR_UTILIZATION = "accelerator_utilization"
    TTFT_P95_SECONDS = "ttft_p95_seconds"
    TTFT_P99_SECONDS = "ttft_p99_seconds"
    ERROR_RATE = "error_rate"


FRACTIONS = frozenset(
    {Signal.KV_CACHE_USAGE, Signal.ACCELERATOR_UTILIZATION, Signal.ERROR_RATE},
)


class MetricsWindow(ApiModel):
    """Recent samples of one model's signals, aligned on `timestamps` (Unix seconds, ascending)."""

    model: str = Field(default="", description="The model the samples belong to, for messages.")
    timestamps: list[float] = Field(default_factory=list, description="Sample times, Unix seconds.")
    qps: list[float] | None = Field(
        default=None,
        description="Requests finished per second, all pods together: "
        "sum(rate(vllm:request_success_total[1m])) or Triton's success plus failure rates.",
    )
    waiting_requests: list[float] | None = Field(
        default=None, description="Queued requests, all Ready pods together."
    )
    running_requests: list[float] | None = Field(
        default=None, description="Requests in the running batch, all Ready pods together."
    )
    kv_cache_usage: list[float] | None = Field(
        default=None, description="Mean KV-cache usage of the Ready pods, 0-1."
    )
    accelerator_utilization: list[float] | None = Field(
        default=None, description="Mean accelerator utilisation of the Ready pods, 0-1."
    )
    ttft_p95_seconds: list[float] | None = Field(default=None, description="p95 time to first token.")
    ttft_p99_seconds: list[float] | None = Field(default=None, description="p99 time to first token.")
    error_rate: list[float] | None = Field(
        default=None, description="Share of requests that failed or were aborted, 0-1."
    )
    qps_history_timestamps: list[float] = Field(
        default_factory=list,
        description="Times of the long, coarse QPS history the seasonal forecast reads.",
    )
    qps_history: list[float] = Field(
        default_factory=list,
        description="QPS averaged over coarse steps (e.g. 5 min) over the last seasonal period or more.",
    )

    @model_validator(mode="after")
    def _aligned(self) -> Self:
        for signal in Signal:
            values = self.series(signal)
            if values is not None and values and len(values) != len(self.timestamps):
                raise ValueError(
                    f"{signal.value} has {len(values)} samples for {len(self.timestamps)} timestamps"
                )
        if len(self.qps_history) != len(self.qps_history_timestamps):
            raise ValueError("qps_history and qps_history_timestamps differ in length")
        return self

    def series(self, signal: Signal) -> list[float] | None:
        values: list[float] | None = getattr(self, signal.value)
        return values


class SignalStatus(StrEnum):
    OK = "ok"
    NOT_EXPORTED = "not exported"
    NO_SAMPLES = "no samples"
    STALE = "stale"
    INVALID = "invalid"


@dataclass(frozen=True)
class Reading:
    """The usable value of one signal now, or why there is none."""

    signal: Signal
    status: SignalStatus
    value: float | None = None
    age_seconds: float | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is SignalStatus.OK

    @property
    def missing(self) -> bool:
        """Expected but unusable: exported by the engine, yet empty, stale or nonsensical."""
        return self.status in (SignalStatus.NO_SAMPLES, SignalStatus.STALE, SignalStatus.INVALID)

    def describe(self) -> str:
        name = self.signal.value.replace("_", " ")
        if self.ok:
            return f"{name} {self.value:g}"
        return f"{name} {self.status.value}" + (f" ({self.detail})" if self.detail else "")


def _nonsensical(signal: Signal, value: float) -> bool:
    if math.isinf(value) or value < 0:
        return True
    return signal in FRACTIONS and value > 1 + _FRACTION_SLACK


def read_signal(window: MetricsWindow, signal: Signal, now: float, max_age_seconds: float) -> Reading:
    """The newest usable sample of `signal` no older than `max_age_seconds`.

    NaN samples are gaps and skipped. A sample in the future (beyond the age limit) or a
    nonsensical value among the fresh samples makes the signal invalid.
    """
    values = window.series(signal)
    if values is None:
        return Reading(signal, SignalStatus.NOT_EXPORTED)
    if not values or all(math.isnan(v) for v in values):
        return Reading(signal, SignalStatus.NO_SAMPLES)
    fresh: list[tuple[float, float]] = []
    newest_time: float | None = None
    for time, value in zip(window.timestamps, values, strict=True):
        if math.isnan(value) or math.isnan(time):
            continue
        newest_time = time if newest_time is None else max(newest_time, time)
        age = now - time
        if age > max_age_seconds:
            continue
        if age < -max_age_seconds:
            return Reading(signal, SignalStatus.INVALID, detail=f"sample {-age:.0f} s in the future")
        if _nonsensical(signal, value):
            return Reading(signal, SignalStatus.INVALID, detail=f"nonsensical value {value:g}")
        fresh.append((time, value))
    if not fresh:
        assert newest_time is not None
        return Reading(
            signal,
            SignalStatus.STALE,
            age_seconds=now - newest_time,
            detail=f"newest sample {now - newest_time:.0f} s old, limit {max_age_seconds:.0f} s",
        )
    time, value = max(fresh)
    return Reading(signal, SignalStatus.OK, value=value, age_seconds=max(0.0, now - time))


def fresh_points(
    window: MetricsWindow, signal: Signal, now: float, since_seconds: float
) -> list[tuple[float, float]]:
    """(time, value) of the finite, sensible samples of the last `since_seconds`, oldest first."""
    values = window.series(signal)
    if not values:
        return []
    return [
        (time, value)
        for time, value in zip(window.timestamps, values, strict=True)
        if not math.isnan(value) and not _nonsensical(signal, value) and now - since_seconds <= time <= now
    ]


def growth_per_second(points: Sequence[tuple[float, float]]) -> float | None:
    """Change per second from the first to the last point, or None with fewer than two."""
    if len(points) < 2:
        return None
    (t0, v0), (t1, v1) = points[0], points[-1]
    if t1 <= t0:
        return None
    return (v1 - v0) / (t1 - t0)
