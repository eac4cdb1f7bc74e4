"""The closed loop: Prometheus metrics -> `decide_replicas` -> status -> the normal reconcile.

The ModelDeployment watch keeps a list of the models the autoscaler owns (autoscaling enabled,
spec.replicas unset). Every evaluation interval (the smallest of a pool's models' intervals) the
loop reads each of those pools once per signal (`gpupool.controller.prometheus`), then reconciles
each model with one extra step: decide the count from its window and its persisted `ScalerState`
(`gpupool.services.autoscaling`) and hand the decision to `decide()` as its `scaling` input, which
records it and the `MetricsAvailable` condition in status and renders the Deployment with the new
count. A decision that changes nothing writes nothing, except a refresh of the persisted state at
most every `autoscaler_persist_seconds`, so a restart loses at most that much of the stabilisation
history.

Around that step:

- Credentials for Prometheus come from Secrets in the operator's own namespace
  (`OperatorConfig.operator_namespace()`), read at each evaluation so that a rotated password is used at once.
- The seasonal forecast's QPS history is one coarse range query per pool, cached for minutes
  (`seasonal_history`), not read at every evaluation.
- Before a model's count goes down, each of its pods gets its in-flight requests as
  `controller.kubernetes.io/pod-deletion-cost` (one instant query per pool, only when some model of
  the pool scales down), so the ReplicaSet controller removes the least busy instance.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gpupool.api.conditions import Reason
from gpupool.api.v1alpha1 import EngineType, InferencePool, ModelDeployment
from gpupool.catalog.types import Vendor
from gpupool.controller import metrics
from gpupool.controller.apiclient import ApiError
from gpupool.controller.config import DEFAULT_OPERATOR_NAMESPACE
from gpupool.controller.kube import INFERENCE_POOL, POD, Kube
from gpupool.controller.prometheus import (
    Connection,
    CredentialsError,
    HistoryPlan,
    PodKey,
    PoolMetrics,
    PrometheusError,
    QpsHistory,
    SecretReader,
    connect,
    history_plan,
    read_history,
    read_in_flight,
    read_pool,
    secret_reader,
    unavailable,
)
from gpupool.controller.reconciler import Adjust
from gpupool.render.labels import SELECTOR_LABEL, label_value
from gpupool.scaling import AutoscalingPolicy, ScalerState
from gpupool.scaling.deletion import POD_DELETION_COST, cost_changes
from gpupool.services.autoscaling import Scaling, scale
from gpupool.services.modeldeployment import WorkloadObservation

log = logging.getLogger(__name__)

# Range queries cover the trend window plus the queue-growth span, capped at 15 minutes.
MAX_RANGE_SECONDS = 900
MAX_STEP_SECONDS = 15

ModelKey = tuple[str, str]


@dataclass(frozen=True)
class Tracked:
    pool: str
    engine: EngineType
    policy: AutoscalingPolicy
    # The plan's load time (status.plan.loadTimeSeconds), for the forecast horizon.
    load_time_seconds: float = 0.0

    @property
    def horizon_seconds(self) -> float:
        return self.policy.horizon_seconds(self.load_time_seconds)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """One pool's readings at one evaluation, shared by the passes of its autoscaled models."""

    pool: InferencePool | None
    readings: dict[EngineType, PoolMetrics]
    loads: PodLoads


@dataclass
class _CachedHistory:
    plan: HistoryPlan
    url: str
    history: QpsHistory | None
    next_read: float


class Autoscaling:
    """The autoscaler's state: the models it owns (kept by the ModelDeployment watch), their newest
    scaling state, each pool's next evaluation and its cached seasonal history."""

    def __init__(self, persist_seconds: float = 60.0, namespace: str = DEFAULT_OPERATOR_NAMESPACE) -> None:
        self.persist_seconds = persist_seconds
        # Where Prometheus credentials are read from: the operator's own namespace.
        self.namespace = namespace
        self._tracked: dict[ModelKey, Tracked] = {}
        # The newest state of each model, which may be newer than the persisted one.
        self._states: dict[ModelKey, ScalerState] = {}
        # Pools' next evaluation, monotonic seconds.
        self._due: dict[str, float] = {}
        # The seasonal QPS history by pool, re-read every `HistoryPlan.refresh_seconds`.
        self._histories: dict[str, _CachedHistory] = {}

    def track(self, type_: str | None, namespace: str, name: str, body: Any) -> None:
        """Follow a ModelDeployment event: start or stop autoscaling it."""
        key = (namespace, name)
        spec = dict(body.get("spec") or {}) if body is not None else {}
        raw = spec.get("autoscaling") or {}
        if type_ == "DELETED" or not raw.get("enabled") or spec.get("replicas") is not None:
            self._tracked.pop(key, None)
            if self._states.pop(key, None) is not None:
                metrics.forget_autoscaler(namespace, name)
            return
        try:
            policy = AutoscalingPolicy.model_validate(raw)
            engine = EngineType((spec.get("engine") or {}).get("type", EngineType.VLLM.value))
            plan = (body.get("status") or {}).get("plan") or {}
            load_time = float(plan.get("loadTimeSeconds") or 0.0)
        except (ValidationError, ValueError, TypeError):
            self._tracked.pop(key, None)
            return
        self._tracked[key] = Tracked(
            pool=str(spec.get("pool", "")), engine=engine, policy=policy, load_time_seconds=load_time
        )

    def due_pools(self, now: float) -> dict[str, list[ModelKey]]:
        """The pools whose evaluation interval has passed, with their autoscaled models."""
        by_pool: dict[str, list[ModelKey]] = {}
        by_interval: dict[ModelKey, int] = {}
        # The watch changes the dict from other threads; copy() is atomic, iterating it is not.
        for key, tracked in sorted(self._tracked.copy().items()):
            by_pool.setdefault(tracked.pool, []).append(key)
            by_interval[key] = tracked.policy.evaluation_interval_seconds
        due = {}
        for pool, models in by_pool.items():
            if self._due.get(pool, 0.0) <= now:
                interval = min(by_interval[m] for m in models)
                self._due[pool] = now + interval
                due[pool] = models
        for pool in set(self._due) - set(by_pool):
            del self._due[pool]
        for pool in set(self._histories) - set(by_pool):
            self._histories.pop(pool, None)
        return due

    def models_of(self, pool: str) -> dict[ModelKey, Tracked]:
        return {key: t for key, t in self._tracked.copy().items() if t.pool == pool}

    def seasonal_history(
        self, conn: Connection, pool: str, models: list[Tracked], now: float
    ) -> QpsHistory | None:
        """The pool's QPS history for its predictive models, from the cache while it is fresh enough.

        One range query per pool at most every refresh interval; a failed read keeps the last answer
        (still usable for most of a period) and is retried at the next refresh, not at every
        evaluation.
        """
        plan = history_plan(
            (t.policy.seasonal_period_seconds, t.horizon_seconds) for t in models if t.policy.predictive
        )
        cached = self._histories.get(pool)
        if plan is None:
            self._histories.pop(pool, None)
            return None
        same = cached is not None and cached.plan == plan and cached.url == conn.url
        if same and cached is not None and now < cached.next_read:
            return cached.history
        history = cached.history if same and cached is not None else None
        try:
            history = read_history(conn, pool, plan, now)
        except PrometheusError as err:
            log.warning(
                "autoscaler: seasonal history not read: %s",
                err,
                extra={"obj_kind": "InferencePool", "obj_name": pool},
            )
        self._histories[pool] = _CachedHistory(
            plan=plan, url=conn.url, history=history, next_read=now + plan.refresh_seconds
        )
        return history

    def evaluate(self, kube: Kube, pool_name: str) -> tuple[Evaluation, list[ModelKey]]:
        """Read the pool's metrics once per signal and engine for its autoscaled models, whose own
        passes then decide from them (`adjuster`)."""
        now = time.time()
        body = kube.get(INFERENCE_POOL, None, pool_name)
        pool: InferencePool | None = None
        if body is not None:
            try:
                pool = InferencePool(metadata=body["metadata"], spec=body["spec"])
            except ValidationError:
                pool = None
        tracked = self.models_of(pool_name)
        readings, conn = self._read_metrics(kube, pool, tracked, now)
        return Evaluation(pool, readings, PodLoads(conn, pool_name, now)), sorted(tracked)

    def adjuster(self, kube: Kube, evaluation: Evaluation, key: ModelKey) -> Adjust | None:
        """The step a model's pass takes before its decision; None when it is no longer autoscaled."""
        entry = self._tracked.get(key)
        if entry is None:
            return None
        pool_metrics = evaluation.readings.get(entry.engine)
        return functools.partial(self._adjust, kube, pool_metrics, evaluation.pool, evaluation.loads)

    def _read_metrics(
        self, kube: Kube, pool: InferencePool | None, tracked: dict[ModelKey, Tracked], now: float
    ) -> tuple[dict[EngineType, PoolMetrics], Connection | None]:
        """The pool's metrics by engine (empty without spec.prometheus), with the connection used."""
        if pool is None or pool.spec.prometheus is None:
            return {}, None
        name = pool.metadata["name"]
        engines = sorted({t.engine for t in tracked.values()})
        namespace = self.namespace
        try:
            conn = connect(pool.spec.prometheus, namespace, _secret_reader(kube, namespace))
        except CredentialsError as err:
            log.warning("autoscaler: %s", err, extra={"obj_kind": "InferencePool", "obj_name": name})
            return {
                engine: unavailable(engine, pool.spec.vendor, str(err), err.reason) for engine in engines
            }, None
        readings: dict[EngineType, PoolMetrics] = {}
        for engine in engines:
            policies = [t.policy for t in tracked.values() if t.engine is engine]
            step = min(MAX_STEP_SECONDS, min(p.evaluation_interval_seconds for p in policies))
            span = max(
                max(p.trend_window_seconds + max(60, 2 * p.evaluation_interval_seconds) for p in policies),
                max(p.metrics_max_age_seconds for p in policies),
            )
            readings[engine] = read_pool(
                conn, name, engine, pool.spec.vendor, now, min(MAX_RANGE_SECONDS, span + step), step
            )
        if any(r.error is None for r in readings.values()):
            history = self.seasonal_history(conn, name, list(tracked.values()), now)
            for reading in readings.values():
                reading.history = history.by_model if history is not None else {}
        return readings, conn

    def _adjust(
        self,
        kube: Kube,
        pool_metrics: PoolMetrics | None,
        pool: InferencePool | None,
        loads: PodLoads,
        md: ModelDeployment,
        workload: WorkloadObservation | None,
    ) -> Scaling | None:
        scaling = self.autoscale(md, workload, pool_metrics, pool, time.time())
        if scaling is not None and md.status is not None and scaling.replicas < md.status.replicas:
            # Before the Deployment is rendered with fewer replicas: the ReplicaSet controller reads
            # the costs when it picks the pods to delete.
            mark_least_busy(kube, md.metadata["namespace"], md.metadata["name"], loads)
        return scaling

    def autoscale(
        self,
        md: ModelDeployment,
        workload: WorkloadObservation | None,
        pool_metrics: PoolMetrics | None,
        pool: InferencePool | None,
        now: float,
    ) -> Scaling | None:
        """The autoscaler's decision for the model (`gpupool.services.autoscaling.scale`) from the
        pool's metrics, kept as the newest state and counted in the operator's metrics."""
        namespace, name = md.metadata["namespace"], md.metadata["name"]
        key = (namespace, name)
        if pool_metrics is None:
            vendor = pool.spec.vendor if pool is not None else Vendor.NVIDIA
            pool_metrics = unavailable(md.spec.engine.type, vendor, "no Prometheus to read")
        scaling = scale(
            md,
            workload.ready_replicas if workload else 0,
            pool_metrics.window(namespace, name),
            _unavailable(pool, pool_metrics, key),
            self._states.get(key),
            now,
            self.persist_seconds,
        )
        if scaling is None:
            return None  # not planned yet: the next evaluation decides
        decision = scaling.decision
        self._states[key] = decision.state
        metrics.SCALING_DECISIONS.labels(decision.direction.value).inc()
        metrics.AUTOSCALER_DESIRED.labels(namespace, name).set(decision.desired)
        if decision.desired != decision.current:
            log.info(
                "autoscaler: %s",
                decision.reason,
                extra={"obj_kind": "ModelDeployment", "obj_namespace": namespace, "obj_name": name},
            )
        return scaling


def _secret_reader(kube: Kube, namespace: str) -> SecretReader:
    return secret_reader(kube.read_secret, namespace)


class PodLoads:
    """In-flight requests per pod of one pool: one instant query, made the first time a model of the
    pool scales down in an evaluation, and never when none does."""

    def __init__(self, conn: Connection | None, pool: str, now: float) -> None:
        self.conn, self.pool, self.now = conn, pool, now
        self._loads: dict[PodKey, float] | None = None
        self._error: str | None = None

    def get(self) -> dict[PodKey, float]:
        """Raises PrometheusError when Prometheus cannot say (every later call too)."""
        if self._error is not None:
            raise PrometheusError(self._error)
        if self._loads is None:
            if self.conn is None:
                self._error = "no Prometheus to read"
                raise PrometheusError(self._error)
            try:
                self._loads = read_in_flight(self.conn, self.pool, self.now)
            except PrometheusError as err:
                self._error = str(err)
                raise
        return self._loads


def mark_least_busy(kube: Kube, namespace: str, name: str, loads: PodLoads) -> int:
    """Give each pod of the model its in-flight requests as deletion cost; returns the writes made.

    Only pods whose annotation differs are patched. Without a sample the scale-down still goes
    ahead (the pods drain either way); it just cannot pick the least busy one.
    """
    extra = {"obj_kind": "ModelDeployment", "obj_namespace": namespace, "obj_name": name}
    try:
        in_flight = loads.get()
    except PrometheusError as err:
        log.warning("scale-down without in-flight requests per pod: %s", err, extra=extra)
        return 0
    pods = {
        pod["metadata"]["name"]: (pod["metadata"].get("annotations") or {}).get(POD_DELETION_COST)
        for pod in kube.list(POD, namespace, label_selector=f"{SELECTOR_LABEL}={label_value(name)}")
        if not pod["metadata"].get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    }
    changes = cost_changes(pods, {pod: value for (ns, pod), value in in_flight.items() if ns == namespace})
    writes = 0
    for pod, cost in changes.items():
        try:
            kube.annotate(POD, namespace, pod, {POD_DELETION_COST: cost})
            writes += 1
        except ApiError as err:
            if err.status != 404:  # a pod that is already gone needs no cost
                log.warning("pod %s: deletion cost not set: %s %s", pod, err.status, err.reason, extra=extra)
    if changes:
        log.info(
            "deletion costs before scale-down: %s",
            ", ".join(f"{pod}={cost}" for pod, cost in changes.items()),
            extra=extra,
        )
    return writes


def _unavailable(
    pool: InferencePool | None, pool_metrics: PoolMetrics, key: ModelKey
) -> tuple[Reason, str] | None:
    """Why the model's metrics cannot be read at all, or None."""
    if pool is None or pool.spec.prometheus is None:
        return (Reason.PROMETHEUS_NOT_CONFIGURED, "the pool has no spec.prometheus.url; the count is held")
    if pool_metrics.error is not None:
        return (pool_metrics.error_reason, f"{pool_metrics.error}; the count is held")
    if not pool_metrics.has_series(*key):
        return (
            Reason.NO_METRICS,
            "Prometheus has no series for this model (pool and model_deployment labels); the count is held",
        )
    return None
