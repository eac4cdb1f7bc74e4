"""A discrete-time simulation of a model's instances under a trace, driven by an autoscaler.

Each step of `dt` seconds: pods whose model finished loading start serving, Poisson arrivals go
through a load balancer to the serving pods, each pod serves its own queue with the fluid model of
`engine.py`, gauges update, accelerators are billed for every pod that exists (loading, serving or
draining). Every scrape interval the simulated Prometheus stores a scrape; every evaluation interval
of the autoscaler (its own, rounded to whole steps) it decides and the Deployment follows.

What makes it worth trusting:

- Each pod has its own queue behind the balancer (`Balancer`): round robin splits the arrivals
  evenly whatever the queues hold; least-request sends them to the pods with the fewest requests
  in flight first (water-filling). A backlog stays on the pods that hold it: a new pod takes only
  new arrivals, as with a real Service or gateway.
- The true capacity of an instance is `capacity_error` times the plan's estimate (0.7: the plan
  was optimistic); the autoscalers still get the estimate.
- A new pod serves after `provisioning_delay_seconds` (a node to provision; 0 by default) plus its
  model load time, drawn uniformly within +-`load_time_spread` of the plan's.
- A request that times out in a queue (or finds no Ready pod) is retried once by its client one
  time-out later; a retry that is served missed the SLO anyway, a retry that fails again is a
  failed request.
- New pods are added at once; removed pods go loading ones first, then the newest serving ones,
  which drain their in-flight requests before their accelerators are freed (the ReplicaSet's
  deletion order and DOMAIN §4's safe scale-down).

Nothing here sleeps or reads a clock: a day of traffic runs in seconds, and the same seed gives the
same result. `pod_metrics` gives the current per-pod values for `metrics.exposition`, so the same
model can serve a real Prometheus.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field, replace
from enum import StrEnum

from gpupool.scaling.window import MetricsWindow
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


class Balancer(StrEnum):
    ROUND_ROBIN = "round-robin"
    LEAST_REQUEST = "least-request"


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
    balancer: Balancer = Balancer.LEAST_REQUEST
    # True capacity of an instance over the plan's estimate.
    capacity_error: float = 1.0
    # Each pod's load time is the plan's times a factor drawn uniformly in [1 - spread, 1 + spread].
    load_time_spread: float = 0.0
    provisioning_delay_seconds: float = 0.0
    # Clients retry a timed-out request once.
    retry: bool = True

    def __post_init__(self) -> None:
        if self.dt <= 0 or self.scrape_interval < self.dt:
            raise ValueError("dt must be positive and no longer than the scrape interval")
        ratio = self.scrape_interval / self.dt
        if abs(ratio - round(ratio)) > 1e-9:
            raise ValueError("the scrape interval must be a whole number of steps")
        if not self.capacity_error > 0:
            raise ValueError("the capacity error must be positive (1.0: the plan is right)")
        if not 0 <= self.load_time_spread < 1:
            raise ValueError("the load time spread must be in [0, 1)")
        if self.provisioning_delay_seconds < 0:
            raise ValueError("the provisioning delay cannot be negative")

    def slowest_start_seconds(self, load_time_seconds: float) -> float:
        """The longest a new pod can take to serve."""
        return self.provisioning_delay_seconds + load_time_seconds * (1 + self.load_time_spread)


# A pod's requests, grouped by (queue wait, mean prefill time, time in batch): histograms and
# quantiles are computed from these groups when asked, not at every step.
Cohorts = dict[tuple[float, float, float], float]


@dataclass
class _Pod:
    name: str
    created: float
    ready_at: float
    serving_since: float | None = None
    terminating_since: float | None = None
    gone_at: float | None = None
    backlog: float = 0.0
    served: float = 0.0
    aborted: float = 0.0
    queue_seconds: float = 0.0
    cohorts: Cohorts = field(default_factory=lambda: defaultdict(float))
    # Gauges at this step.
    running: float = 0.0
    waiting: float = 0.0
    kv_cache_usage: float = 0.0
    utilization: float = 0.0

    @property
    def in_flight(self) -> float:
        return self.running + self.waiting


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
    starting: int = 0
    failed_qps: float = 0.0


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


def balance(balancer: Balancer, backlogs: list[float], arrivals: float) -> list[float]:
    """How `arrivals` spread over pods holding `backlogs`: evenly (round robin), or to the pods with
    the fewest requests waiting first, until they are level (least-request, water-filling)."""
    n = len(backlogs)
    if n == 0:
        return []
    if balancer is Balancer.ROUND_ROBIN or arrivals <= 0:
        return [arrivals / n] * n
    order = sorted(backlogs)
    level, filled = order[0], 0
    left = arrivals
    for index in range(n):
        filled = index + 1
        ceiling = order[index + 1] if index + 1 < n else math.inf
        room = (ceiling - order[index]) * filled if math.isfinite(ceiling) else math.inf
        if room >= left:
            level = order[index] + left / filled
            break
        left -= room
        level = ceiling
    return [max(0.0, level - b) for b in backlogs]


def _histogram(
    bounds: tuple[float, ...], cohorts: Cohorts, with_batch: bool
) -> tuple[list[float], float, float]:
    """Cumulative counts, count and sum of the time to first token (or the end-to-end latency)."""
    counts = [0.0] * len(bounds)
    total = sum_ = 0.0
    for (wait, mean, in_batch), weight in cohorts.items():
        extra = in_batch if with_batch else 0.0
        for i, bound in enumerate(bounds):
            counts[i] += weight * ttft_cdf(bound - extra, wait, mean)
        total += weight
        sum_ += weight * (wait + mean + extra)
    return counts, total, sum_


@dataclass(frozen=True)
class _PodStep:
    """What one step does to one pod's queue."""

    served: float
    dropped: float
    backlog: float
    wait: float
    mean: float
    in_batch: float
    within: float  # share of the served requests within the SLO
    running: float
    waiting: float
    kv_cache_usage: float
    utilization: float


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
        # The engine as it is; the plan's estimate (model.engine) is what the autoscalers are told.
        self.engine = replace(
            model.engine, qps_per_instance=model.engine.qps_per_instance * self.config.capacity_error
        )
        self.rng = random.Random(self.config.seed)
        # Load times draw from their own generator, so arrivals do not depend on scaling.
        self.pod_rng = random.Random(self.config.seed * 7919 + 17)
        self.prometheus = SimulatedPrometheus(
            TTFT_BUCKETS,
            scrape_interval=self.config.scrape_interval,
            not_exported=TRITON_NOT_EXPORTED if model.engine_kind is EngineKind.TRITON else frozenset(),
        )
        self.pods: list[_Pod] = []
        self.now = 0.0
        self._serial = 0
        for _ in range(initial_replicas):
            pod = self._new_pod(-model.load_time_seconds)
            pod.serving_since = 0.0
        self._model_finished = 0.0
        self._model_aborted = 0.0
        self._model_ttft = [0.0] * (len(TTFT_BUCKETS) + 1)
        self._cohorts: dict[tuple[float, float], float] = defaultdict(float)
        self._within = 0.0
        self._served = 0.0
        self._failed = 0.0
        self._requests = 0.0
        # Timed-out requests their clients send again, by the step they come back in.
        self._retries: dict[int, float] = defaultdict(float)
        self._step = 0

    # ----------------------------------------------------------------------------------------------
    # pods

    def _new_pod(self, created: float) -> _Pod:
        self._serial += 1
        load = self.model.load_time_seconds
        spread = self.config.load_time_spread
        if spread > 0:
            load *= 1 + self.pod_rng.uniform(-spread, spread)
        pod = _Pod(
            name=f"{self.model.name}-{self._serial:04d}",
            created=created,
            ready_at=created + self.config.provisioning_delay_seconds + load,
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
                span = max(pod.ready_at - pod.created, 1e-9)
                loaded = min(1.0, max(0.0, (self.now - pod.created) / span))
                metrics.memory_used_mib = memory_total * RESERVED_MEMORY_FRACTION * loaded
            else:
                metrics.memory_used_mib = memory_total * RESERVED_MEMORY_FRACTION
            if serving:
                metrics.running = pod.running
                metrics.waiting = pod.waiting
                metrics.kv_cache_usage = pod.kv_cache_usage
                metrics.accelerator_utilization = pod.utilization
                metrics.finished_stop = pod.served * (1 - LENGTH_FINISH_SHARE)
                metrics.finished_length = pod.served * LENGTH_FINISH_SHARE
                metrics.aborted = pod.aborted
                metrics.prompt_tokens = pod.served * self.engine.mean_prompt_tokens
                metrics.generation_tokens = pod.served * self.engine.mean_output_tokens
                metrics.queue_seconds_total = pod.queue_seconds
                metrics.ttft = Histogram(TTFT_BUCKETS, *_histogram(TTFT_BUCKETS, pod.cohorts, False))
                metrics.e2e = Histogram(E2E_BUCKETS, *_histogram(E2E_BUCKETS, pod.cohorts, True))
            out.append(metrics)
        return out

    # ----------------------------------------------------------------------------------------------
    # the loop

    def _in_outage(self, time: float) -> bool:
        return any(start <= time < end for start, end in self.config.outages)

    def _scrape(self, serving: list[_Pod]) -> None:
        if self._in_outage(self.now):
            self.prometheus.record(self.now, None)
            return
        n = len(serving)
        utilization = {p.name: 0.0 for p in self.pods if p.terminating_since is None}
        for pod in serving:
            utilization[pod.name] = pod.utilization
        self.prometheus.record(
            self.now,
            Scrape(
                time=self.now,
                finished=self._model_finished,
                aborted=self._model_aborted,
                ttft_cumulative=tuple(self._model_ttft),
                waiting=sum(p.waiting for p in serving),
                running=sum(p.running for p in serving),
                kv_cache_usage=sum(p.kv_cache_usage for p in serving) / n if n else 0.0,
                accelerator_utilization=sum(p.utilization for p in serving) / n if n else 0.0,
                serving_pods=n,
                pod_finished={p.name: p.served + p.aborted for p in serving},
                pod_serving_since={p.name: p.serving_since or 0.0 for p in serving},
                pod_utilization=utilization,
            ),
        )

    def _fail(self, first_attempts: float, retries: float) -> float:
        """Requests that timed out: first attempts come back once, one time-out later; returns the
        requests that failed for good."""
        if self.config.retry and first_attempts > 0:
            back = self._step + max(1, math.ceil(self.engine.queue_timeout_seconds / self.config.dt))
            self._retries[back] += first_attempts
            gone = retries
        else:
            gone = first_attempts + retries
        self._failed += gone
        return gone

    def _serve(
        self, serving: list[_Pod], draining: list[_Pod], fresh: float, dt: float
    ) -> tuple[float, float, float, float]:
        """One step of traffic; returns (served, timed out, failed for good, p99 time to first token)."""
        retries = self._retries.pop(self._step, 0.0)
        arrivals = fresh + retries
        retry_share = retries / arrivals if arrivals > 0 else 0.0
        shares = balance(self.config.balancer, [p.backlog for p in serving], arrivals)
        step_cohorts: dict[tuple[float, float], float] = defaultdict(float)
        served = dropped = 0.0
        # Pods in the same state get the same arrivals and behave alike: each state is computed once.
        outcomes: dict[tuple[float, float], _PodStep] = {}
        for pod, share in zip([*serving, *draining], [*shares, *([0.0] * len(draining))], strict=True):
            state = (pod.backlog, share)
            outcome = outcomes.get(state)
            if outcome is None:
                outcome = outcomes[state] = self._pod_step(pod.backlog, share, dt)
            self._apply(pod, outcome, retry_share, step_cohorts)
            served += outcome.served
            dropped += outcome.dropped
        if not serving:  # nobody to send them to: they fail at once
            dropped += arrivals
            self._model_aborted += arrivals
            self._model_finished += arrivals
        failed = self._fail(dropped * (1 - retry_share), dropped * retry_share)
        for (wait, mean), weight in step_cohorts.items():
            for i, bound in enumerate(TTFT_BUCKETS):
                self._model_ttft[i] += weight * ttft_cdf(bound, wait, mean)
            self._model_ttft[-1] += weight
        if len(step_cohorts) == 1:
            ((wait, mean),) = step_cohorts
            p99 = wait + mean * math.log(100.0)
        elif step_cohorts:
            p99 = mixture_quantile([(w, a, m) for (a, m), w in step_cohorts.items()], 0.0, 0.99)
        else:
            p99 = math.nan
        return served, dropped, failed, p99

    def _pod_step(self, backlog: float, arrivals: float, dt: float) -> _PodStep:
        """One pod's queue for one step."""
        engine = self.engine
        queue = advance_queue(engine, backlog, arrivals, 1, dt)
        served, left, wait, rho = queue.served, queue.backlog, queue.wait_seconds, queue.rho
        mean = engine.ttft_mean_seconds(RHO_CAP if left > 0 else rho)
        in_batch = engine.in_batch_seconds(rho)
        if left > 0:
            running, waiting = float(engine.max_running), left
        else:
            running = min(float(engine.max_running), served / dt * in_batch)
            waiting = engine.batch_queue(rho)
        return _PodStep(
            served=served,
            dropped=queue.dropped,
            backlog=left,
            wait=wait,
            mean=mean,
            in_batch=in_batch,
            within=ttft_cdf(engine.latency_slo_seconds, wait, mean),
            running=running,
            waiting=waiting,
            kv_cache_usage=min(1.0, running * engine.tokens_per_sequence() / engine.kv_capacity_tokens),
            utilization=1.0 - math.exp(-running),
        )

    def _apply(
        self,
        pod: _Pod,
        step: _PodStep,
        retry_share: float,
        step_cohorts: dict[tuple[float, float], float],
    ) -> None:
        served = step.served
        if served > 0:
            # Requests with nearly the same wait and prefill time are merged: quantiles over a day
            # then sum over hundreds of terms, not tens of thousands.
            key = (round(step.wait, 3), round(step.mean, 4))
            pod.cohorts[(*key, round(step.in_batch, 2))] += served
            step_cohorts[key] += served
            first = served * (1 - retry_share)
            self._cohorts[key] += first
            self._within += first * step.within
            if retry_share > 0:
                # A served retry's client waited a time-out before sending it again.
                retry_key = (round(step.wait + self.engine.queue_timeout_seconds, 3), key[1])
                self._cohorts[retry_key] += served - first
        pod.backlog = step.backlog
        pod.served += served
        pod.aborted += step.dropped
        pod.queue_seconds += served * step.wait
        pod.running, pod.waiting = step.running, step.waiting
        pod.kv_cache_usage, pod.utilization = step.kv_cache_usage, step.utilization
        self._served += served
        self._model_aborted += step.dropped
        self._model_finished += served + step.dropped

    def view(self, current: int, ready: list[_Pod]) -> ClusterView:
        """What the autoscaler sees now (the Prometheus window only for those that read it)."""
        if getattr(self.autoscaler, "reads_window", True):
            window = self.prometheus.window_at(self.now, self.config.window_seconds, self.model.name)
        else:
            window = MetricsWindow(model=self.model.name)
        return ClusterView(
            current=current,
            ready=len(ready),
            window=window,
            pod_utilization=self.prometheus.pod_utilization(),
            pod_qps=self.prometheus.pod_qps([p.name for p in self.active]),
            pod_in_flight={p.name: p.in_flight for p in ready},
            pod_waiting={p.name: p.waiting for p in ready},
            pod_kv_cache_usage={p.name: p.kv_cache_usage for p in ready},
        )

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
        per_pod = self.model.accelerators_per_instance * dt
        for index in range(steps):
            self._step = index
            self.now = now = index * dt
            kept: list[_Pod] = []
            for pod in self.pods:
                if pod.gone_at is not None and pod.gone_at <= now:
                    # What a removed pod still held is cut off: its clients retry.
                    if pod.backlog > 0:
                        self._model_aborted += pod.backlog
                        self._model_finished += pod.backlog
                        self._fail(pod.backlog, 0.0)
                    continue
                if pod.serving_since is None and pod.terminating_since is None and now >= pod.ready_at:
                    pod.serving_since = now
                kept.append(pod)
            self.pods = kept
            serving = [p for p in kept if p.serving_since is not None and p.terminating_since is None]
            draining = [p for p in kept if p.serving_since is not None and p.terminating_since is not None]

            offered = self.trace.at(start + now + dt / 2)
            fresh = _poisson(self.rng, offered * dt) if config.poisson else offered * dt
            self._requests += fresh
            served, dropped, failed, p99 = self._serve(serving, draining, fresh, dt)
            accelerator_seconds += len(kept) * per_pod

            ready = len(serving)
            if offered > ready * rated:
                if episode_start is None:
                    episode_start = now
            elif episode_start is not None:
                episodes.append(now - episode_start)
                episode_start = None

            if index % scrape_every == 0:
                self._scrape(serving)
            active = len(kept) - len(draining)
            if index > 0 and index % decide_every == 0:
                desired, reason = self.autoscaler.decide(now, self.view(active, serving))
                if desired != active:
                    events.append(ScaleRecord(now, active, desired, reason))
                    self._scale_to(desired)
                    active = desired

            timeline.append(
                TimelinePoint(
                    time=now,
                    offered_qps=offered,
                    served_qps=served / dt,
                    dropped_qps=dropped / dt,
                    desired=active,
                    ready=ready,
                    pods=len(self.pods),
                    ttft_p99_seconds=p99,
                    accelerator_utilization=sum(p.utilization for p in serving) / ready if ready else 0.0,
                    starting=active - ready if active > ready else 0,
                    failed_qps=failed / dt,
                )
            )
        if episode_start is not None:
            episodes.append(steps * dt - episode_start)
        # Requests still queued or waiting to be retried when the trace ends count as failed: they
        # missed the SLO anyway.
        self._failed += sum(p.backlog for p in self.pods) + sum(self._retries.values())
        return SimulationResult(
            trace=self.trace.name,
            policy=self.autoscaler.name,
            duration_seconds=steps * dt,
            accelerator_hours=accelerator_seconds / 3600,
            requests=self._requests,
            within_slo=self._within,
            failed=self._failed,
            cohorts=[(weight, wait, mean) for (wait, mean), weight in self._cohorts.items()],
            timeline=timeline,
            scale_events=events,
            under_capacity_episodes=episodes,
            latency_slo_seconds=self.engine.latency_slo_seconds,
        )
