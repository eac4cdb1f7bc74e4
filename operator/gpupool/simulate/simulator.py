"""A discrete-time simulation of a model's instances under a trace, driven by an autoscaler.

Each step of `dt` seconds: pods whose model finished loading start serving, Poisson arrivals go
through the fluid queue of `engine.py`, every serving pod takes an equal share (a round-robin
Service), counters and gauges update, accelerators are billed for every pod that exists (loading,
serving or draining). Every scrape interval the simulated Prometheus stores a scrape; every
evaluation interval the autoscaler decides and the Deployment follows: new pods serve after the
plan's load time, removed pods go loading ones first, then the newest serving ones, which drain
their in-flight requests before their accelerators are freed (the ReplicaSet's deletion order and
DOMAIN §4's safe scale-down).

Nothing here sleeps or reads a clock: a day of traffic runs in seconds. `pod_metrics` gives the
current per-pod values for `metrics.exposition`, so the same model can serve a real Prometheus.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from gpupool.simulate.autoscalers import Autoscaler, ClusterView
from gpupool.simulate.engine import RHO_CAP, EngineModel, advance_queue, ttft_cdf
from gpupool.simulate.metrics import (
    E2E_BUCKETS,
    TTFT_BUCKETS,
    EngineKind,
    Histogram,
    PodMetrics,
    VendorKind,
)
from gpupool.simulate.prometheus import Scrape, SimulatedPrometheus
from gpupool.simulate.traces import Trace

# vLLM's --gpu-memory-utilization default: memory is reserved up front, so it stays flat.
RESERVED_MEMORY_FRACTION = 0.9
# Share of finished requests that stop at max_tokens rather than at an end-of-sequence token.
LENGTH_FINISH_SHARE = 0.1
# The preStop pause before the engine's graceful shutdown, so that endpoints stop routing first.
PRESTOP_SECONDS = 5.0
# What Triton does not export by default, so the autoscaler works without it.
TRITON_NOT_EXPORTED = frozenset(
    {"running_requests", "kv_cache_usage", "ttft_p95_seconds", "ttft_p99_seconds"}
)


@dataclass(frozen=True)
class ModelUnderTest:
    """The model the simulation serves, as the plan and the pool describe it."""

    name: str
    engine: EngineModel
    engine_kind: EngineKind
    vendor: VendorKind
    accelerator_model: str
    accelerators_per_instance: int
    memory_per_accelerator_mib: float
    load_time_seconds: float
    namespace: str = "default"


@dataclass(frozen=True)
class SimulationConfig:
    dt: float = 5.0
    scrape_interval: float = 15.0
    window_seconds: float = 900.0
    seed: int = 0
    poisson: bool = True
    # Metrics outages: scrapes between start and end (seconds) are lost.
    outages: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.dt <= 0 or self.scrape_interval < self.dt:
            raise ValueError("dt must be positive and no longer than the scrape interval")
        ratio = self.scrape_interval / self.dt
        if abs(ratio - round(ratio)) > 1e-9:
            raise ValueError("the scrape interval must be a whole number of steps")


@dataclass
class _Pod:
    name: str
    created: float
    ready_at: float
    serving_since: float | None = None
    terminating_since: float | None = None
    gone_at: float | None = None
    # Per-pod counters at the moment the pod started serving (counters are cumulative per pod).
    offset: _Counters | None = None


@dataclass
class _Counters:
    """What one serving pod has received since the simulation began (equal shares)."""

    finished_stop: float = 0.0
    finished_length: float = 0.0
    aborted: float = 0.0
    prompt_tokens: float = 0.0
    generation_tokens: float = 0.0
    queue_seconds: float = 0.0
    ttft: list[float] = field(default_factory=lambda: [0.0] * len(TTFT_BUCKETS))
    ttft_total: float = 0.0
    ttft_sum: float = 0.0
    e2e: list[float] = field(default_factory=lambda: [0.0] * len(E2E_BUCKETS))
    e2e_total: float = 0.0
    e2e_sum: float = 0.0

    def copy(self) -> _Counters:
        return _Counters(
            self.finished_stop,
            self.finished_length,
            self.aborted,
            self.prompt_tokens,
            self.generation_tokens,
            self.queue_seconds,
            list(self.ttft),
            self.ttft_total,
            self.ttft_sum,
            list(self.e2e),
            self.e2e_total,
            self.e2e_sum,
        )

    @property
    def finished(self) -> float:
        return self.finished_stop + self.finished_length + self.aborted


@dataclass(frozen=True)
class TimelinePoint:
    time: float
    offered_qps: float
    served_qps: float
    dropped_qps: float
    desired: int
    ready: int
    pods: int
    ttft_p99_seconds: float
    accelerator_utilization: float


@dataclass(frozen=True)
class ScaleRecord:
    time: float
    from_replicas: int
    to_replicas: int
    reason: str


@dataclass
class SimulationResult:
    trace: str
    policy: str
    duration_seconds: float
    accelerator_hours: float
    requests: float
    within_slo: float
    failed: float
    cohorts: list[tuple[float, float, float]]
    timeline: list[TimelinePoint]
    scale_events: list[ScaleRecord]
    under_capacity_episodes: list[float]
    latency_slo_seconds: float

    @property
    def slo_attainment(self) -> float:
        return self.within_slo / self.requests if self.requests > 0 else 1.0

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests > 0 else 0.0

    def ttft_quantile(self, quantile: float) -> float:
        """Quantile of the time to first token over all requests; failed requests count as infinite."""
        return mixture_quantile(self.cohorts, self.failed, quantile)

    @property
    def reaction_seconds(self) -> tuple[float, float] | None:
        """Mean and longest time the Ready capacity stayed below the offered load, or None."""
        if not self.under_capacity_episodes:
            return None
        episodes = self.under_capacity_episodes
        return sum(episodes) / len(episodes), max(episodes)

    def summary(self) -> dict[str, object]:
        p99 = self.ttft_quantile(0.99)
        reaction = self.reaction_seconds
        ups = sum(1 for e in self.scale_events if e.to_replicas > e.from_replicas)
        return {
            "trace": self.trace,
            "policy": self.policy,
            "durationSeconds": self.duration_seconds,
            "acceleratorHours": round(self.accelerator_hours, 3),
            "requests": round(self.requests),
            "sloAttainment": round(self.slo_attainment, 5),
            "ttftP50Seconds": _finite_or_none(self.ttft_quantile(0.5)),
            "ttftP99Seconds": _finite_or_none(p99),
            "errorRate": round(self.error_rate, 5),
            "scaleEvents": len(self.scale_events),
            "scaleUps": ups,
            "scaleDowns": len(self.scale_events) - ups,
            "underCapacityEpisodes": len(self.under_capacity_episodes),
            "reactionMeanSeconds": None if reaction is None else round(reaction[0], 1),
            "reactionMaxSeconds": None if reaction is None else round(reaction[1], 1),
            "peakInstances": max((p.pods for p in self.timeline), default=0),
        }


def _finite_or_none(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def mixture_quantile(cohorts: list[tuple[float, float, float]], failed: float, quantile: float) -> float:
    """Quantile of a mixture of shifted exponentials (weight, shift, mean) plus `failed` at infinity."""
    total = sum(w for w, _, _ in cohorts) + failed
    if total <= 0:
        return math.nan
    target = quantile * total
    if sum(w for w, _, _ in cohorts) < target:
        return math.inf

    def below(x: float) -> float:
        return sum(w * ttft_cdf(x, shift, mean) for w, shift, mean in cohorts)

    low, high = 0.0, 1.0
    while below(high) < target:
        high *= 2
        if high > 1e7:
            return math.inf
    for _ in range(60):
        middle = (low + high) / 2
        if below(middle) < target:
            low = middle
        else:
            high = middle
    return high


def _poisson(rng: random.Random, mean: float) -> float:
    if mean <= 0:
        return 0.0
    if mean > 50:
        return max(0.0, rng.gauss(mean, math.sqrt(mean)))
    # Knuth's method for small means.
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return float(count)


class Simulation:
    """One model, one trace, one autoscaler; `run()` returns the result."""

    def __init__(
        self,
        model: ModelUnderTest,
        trace: Trace,
        autoscaler: Autoscaler,
        initial_replicas: int,
        config: SimulationConfig | None = None,
    ) -> None:
        self.model = model
        self.trace = trace
        self.autoscaler = autoscaler
        self.config = config or SimulationConfig()
        self.engine = model.engine
        self.rng = random.Random(self.config.seed)
        self.prometheus = SimulatedPrometheus(
            TTFT_BUCKETS,
            scrape_interval=self.config.scrape_interval,
            not_exported=TRITON_NOT_EXPORTED if model.engine_kind is EngineKind.TRITON else frozenset(),
        )
        self.pods: list[_Pod] = []
        self.counters = _Counters()
        self.backlog = 0.0
        self.now = 0.0
        self._serial = 0
        # Gauges every serving pod shares at this step.
        self.running = 0.0
        self.waiting = 0.0
        self.kv_cache_usage = 0.0
        self.utilization = 0.0
        for _ in range(initial_replicas):
            pod = self._new_pod(-model.load_time_seconds)
            pod.serving_since = 0.0
            pod.offset = self.counters.copy()
        self._model_finished = 0.0
        self._model_aborted = 0.0
        self._model_ttft = [0.0] * (len(TTFT_BUCKETS) + 1)
        self._cohorts: dict[tuple[float, float], float] = {}
        self._within = 0.0
        self._served = 0.0
        self._failed = 0.0

    # ----------------------------------------------------------------------------------------------
    # pods

    def _new_pod(self, created: float) -> _Pod:
        self._serial += 1
        pod = _Pod(
            name=f"{self.model.name}-{self._serial:04d}",
            created=created,
            ready_at=created + self.model.load_time_seconds,
        )
        self.pods.append(pod)
        return pod

    @property
    def active(self) -> list[_Pod]:
        """Pods the Deployment counts: not terminating."""
        return [p for p in self.pods if p.terminating_since is None]

    @property
    def serving(self) -> list[_Pod]:
        return [p for p in self.pods if p.serving_since is not None and p.terminating_since is None]

    def _scale_to(self, desired: int) -> None:
        active = self.active
        if desired > len(active):
            for _ in range(desired - len(active)):
                self._new_pod(self.now)
        elif desired < len(active):
            # The ReplicaSet deletes pods that are not ready first, then the newest.
            victims = sorted(active, key=lambda p: (p.serving_since is not None, -p.created))
            for pod in victims[: len(active) - desired]:
                pod.terminating_since = self.now
                if pod.serving_since is None:
                    pod.gone_at = self.now
                else:
                    drain = self.engine.in_batch_seconds(1.0) + PRESTOP_SECONDS
                    pod.gone_at = self.now + drain

    def pod_metrics(self) -> list[PodMetrics]:
        """Current metrics of every pod that exists, for `metrics.exposition`."""
        out: list[PodMetrics] = []
        memory_total = self.model.memory_per_accelerator_mib
        for pod in self.pods:
            serving = pod.serving_since is not None and pod.terminating_since is None
            metrics = PodMetrics(
                pod=pod.name,
                namespace=self.model.namespace,
                model=self.model.name,
                engine=self.model.engine_kind,
                vendor=self.model.vendor,
                accelerator_model=self.model.accelerator_model,
                accelerators=self.model.accelerators_per_instance,
                memory_total_mib=memory_total,
                serving=serving,
            )
            if pod.serving_since is None:
                loaded = min(
                    1.0, max(0.0, (self.now - pod.created) / max(self.model.load_time_seconds, 1e-9))
                )
                metrics.memory_used_mib = memory_total * RESERVED_MEMORY_FRACTION * loaded
            else:
                metrics.memory_used_mib = memory_total * RESERVED_MEMORY_FRACTION
            if serving and pod.offset is not None:
                base, now = pod.offset, self.counters
                metrics.running = self.running
                metrics.waiting = self.waiting
                metrics.kv_cache_usage = self.kv_cache_usage
                metrics.accelerator_utilization = self.utilization
                metrics.finished_stop = now.finished_stop - base.finished_stop
                metrics.finished_length = now.finished_length - base.finished_length
                metrics.aborted = now.aborted - base.aborted
                metrics.prompt_tokens = now.prompt_tokens - base.prompt_tokens
                metrics.generation_tokens = now.generation_tokens - base.generation_tokens
                metrics.queue_seconds_total = now.queue_seconds - base.queue_seconds
                metrics.ttft = Histogram(
                    TTFT_BUCKETS,
                    [a - b for a, b in zip(now.ttft, base.ttft, strict=True)],
                    now.ttft_total - base.ttft_total,
                    now.ttft_sum - base.ttft_sum,
                )
                metrics.e2e = Histogram(
                    E2E_BUCKETS,
                    [a - b for a, b in zip(now.e2e, base.e2e, strict=True)],
                    now.e2e_total - base.e2e_total,
                    now.e2e_sum - base.e2e_sum,
                )
            out.append(metrics)
        return out

    # ----------------------------------------------------------------------------------------------
    # the loop

    def _in_outage(self, time: float) -> bool:
        return any(start <= time < end for start, end in self.config.outages)

    def _scrape(self) -> None:
        if self._in_outage(self.now):
            self.prometheus.record(self.now, None)
            return
        serving = self.serving
        pod_finished = {}
        for pod in serving:
            assert pod.offset is not None
            pod_finished[pod.name] = self.counters.finished - pod.offset.finished
        utilization = {p.name: (self.utilization if p in serving else 0.0) for p in self.active}
        self.prometheus.record(
            self.now,
            Scrape(
                time=self.now,
                finished=self._model_finished,
                aborted=self._model_aborted,
                ttft_cumulative=tuple(self._model_ttft),
                waiting=self.waiting * len(serving),
                running=self.running * len(serving),
                kv_cache_usage=self.kv_cache_usage,
                accelerator_utilization=self.utilization,
                serving_pods=len(serving),
                pod_finished=pod_finished,
                pod_serving_since={p.name: p.serving_since or 0.0 for p in serving},
                pod_utilization=utilization,
            ),
        )

    def _serve(self, offered_qps: float, dt: float) -> tuple[float, float, float, float]:
        """One step of traffic; returns (arrivals, served, dropped, p99 time to first token)."""
        arrivals = _poisson(self.rng, offered_qps * dt) if self.config.poisson else offered_qps * dt
        serving = self.serving
        n = len(serving)
        step = advance_queue(self.engine, self.backlog, arrivals, n, dt)
        self.backlog = step.backlog
        rho = RHO_CAP if step.backlog > 0 else step.rho
        mean = self.engine.ttft_mean_seconds(rho)
        wait = step.wait_seconds
        if step.served > 0:
            # Cohorts with nearly the same wait and prefill time are merged: quantiles over a day
            # then sum over hundreds of terms, not tens of thousands.
            key = (round(wait, 3), round(mean, 4))
            self._cohorts[key] = self._cohorts.get(key, 0.0) + step.served
            self._within += step.served * ttft_cdf(self.engine.latency_slo_seconds, wait, mean)
        self._served += step.served
        self._failed += step.dropped
        self._model_aborted += step.dropped
        self._model_finished += step.served + step.dropped
        p99 = wait + mean * math.log(100.0) if step.served > 0 else math.nan

        if n > 0:
            share = step.served / n
            counters = self.counters
            counters.finished_stop += share * (1 - LENGTH_FINISH_SHARE)
            counters.finished_length += share * LENGTH_FINISH_SHARE
            counters.aborted += step.dropped / n
            counters.prompt_tokens += share * self.engine.mean_prompt_tokens
            counters.generation_tokens += share * self.engine.mean_output_tokens
            counters.queue_seconds += share * wait
            in_batch = self.engine.in_batch_seconds(step.rho)
            if share > 0:
                for i, bound in enumerate(TTFT_BUCKETS):
                    fraction = ttft_cdf(bound, wait, mean)
                    counters.ttft[i] += share * fraction
                    self._model_ttft[i] += step.served * fraction
                for i, bound in enumerate(E2E_BUCKETS):
                    counters.e2e[i] += share * ttft_cdf(bound - in_batch, wait, mean)
            counters.ttft_total += share
            counters.ttft_sum += share * (wait + mean)
            counters.e2e_total += share
            counters.e2e_sum += share * (wait + mean + in_batch)
            self._model_ttft[-1] += step.served
            if step.backlog > 0:
                self.running = float(self.engine.max_running)
                self.waiting = step.backlog / n
            else:
                self.running = min(float(self.engine.max_running), share / dt * in_batch)
                self.waiting = self.engine.batch_queue(step.rho)
            self.kv_cache_usage = min(
                1.0, self.running * self.engine.tokens_per_sequence() / self.engine.kv_capacity_tokens
            )
            self.utilization = 1.0 - math.exp(-self.running)
        else:
            self.running = self.waiting = self.kv_cache_usage = self.utilization = 0.0
        return arrivals, step.served, step.dropped, p99

    def run(self) -> SimulationResult:
        config = self.config
        dt = config.dt
        timeline: list[TimelinePoint] = []
        events: list[ScaleRecord] = []
        episodes: list[float] = []
        episode_start: float | None = None
        accelerator_seconds = 0.0
        steps = math.floor(self.trace.duration / dt)
        scrape_every = round(config.scrape_interval / dt)
        decide_every = max(1, round(self.autoscaler.interval_seconds / dt))
        start = self.trace.times[0]
        rated = self.engine.qps_per_instance
        for index in range(steps):
            self.now = index * dt
            for pod in self.pods:
                if pod.serving_since is None and pod.terminating_since is None and self.now >= pod.ready_at:
                    pod.serving_since = self.now
                    pod.offset = self.counters.copy()
            self.pods = [p for p in self.pods if p.gone_at is None or p.gone_at > self.now]

            offered = self.trace.at(start + self.now + dt / 2)
            _, served, dropped, p99 = self._serve(offered, dt)
            accelerator_seconds += len(self.pods) * self.model.accelerators_per_instance * dt

            ready = len(self.serving)
            if offered > ready * rated:
                if episode_start is None:
                    episode_start = self.now
            elif episode_start is not None:
                episodes.append(self.now - episode_start)
                episode_start = None

            if index % scrape_every == 0:
                self._scrape()
            if index > 0 and index % decide_every == 0:
                current = len(self.active)
                window = self.prometheus.window_at(self.now, config.window_seconds, self.model.name)
                view = ClusterView(
                    current=current,
                    ready=ready,
                    window=window,
                    pod_utilization=self.prometheus.pod_utilization(),
                    pod_qps=self.prometheus.pod_qps([p.name for p in self.active]),
                )
                desired, reason = self.autoscaler.decide(self.now, view)
                if desired != current:
                    events.append(ScaleRecord(self.now, current, desired, reason))
                    self._scale_to(desired)

            timeline.append(
                TimelinePoint(
                    time=self.now,
                    offered_qps=offered,
                    served_qps=served / dt,
                    dropped_qps=dropped / dt,
                    desired=len(self.active),
                    ready=ready,
                    pods=len(self.pods),
                    ttft_p99_seconds=p99,
                    accelerator_utilization=self.utilization,
                )
            )
        if episode_start is not None:
            episodes.append(steps * dt - episode_start)
        # Requests still queued when the trace ends count as failed: they missed the SLO anyway.
        self._failed += self.backlog
        return SimulationResult(
            trace=self.trace.name,
            policy=self.autoscaler.name,
            duration_seconds=steps * dt,
            accelerator_hours=accelerator_seconds / 3600,
            requests=self._served + self._failed,
            within_slo=self._within,
            failed=self._failed,
            cohorts=[(weight, wait, mean) for (wait, mean), weight in self._cohorts.items()],
            timeline=timeline,
            scale_events=events,
            under_capacity_episodes=episodes,
            latency_slo_seconds=self.engine.latency_slo_seconds,
        )
