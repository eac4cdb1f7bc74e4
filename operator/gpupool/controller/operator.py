"""The one `Controller`: the cluster cache, the models' memory, the autoscaler's state, and the work
queue with its workers, created at start-up and kept in kopf's `memo`.

Two sides meet here. The watch side (`gpupool.controller.handlers`) only updates the cache and
queues keys; it never calls the API server. The worker side takes one key at a time per object
and runs its pass:

| key (kind, namespace, name)          | pass                                                  |
| ------------------------------------ | ----------------------------------------------------- |
| `ModelDeployment`, ns, model         | `reconcile_model`; the models its demand moved are queued |
| `InferencePool`, "", pool            | `reconcile_pools`; the models whose limits changed are queued |
| `Resync`, "", ""                     | queue every pool and each model changed since it settled |
| `Autoscale`, "", pool                | read the pool's metrics, queue its autoscaled models with them |

A clock thread queues the resync every `resync_seconds` and each pool's autoscaler evaluation
when it is due. A pass that fails is retried after its key's backoff (docs/reliability.md).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError, ProtocolError

from gpupool.controller import metrics
from gpupool.controller.apiclient import ApiError
from gpupool.controller.autoscaler import Autoscaling, Evaluation
from gpupool.controller.config import OperatorConfig
from gpupool.controller.kube import Kube
from gpupool.controller.queue import Backoff, Workers, WorkQueue
from gpupool.controller.reconciler import (
    World,
    model_for_label,
    models_of_pool,
    note_preemption,
    reconcile_model,
    reconcile_pools,
    resync,
)
from gpupool.placement.accounting import PREEMPTION_REASON
from gpupool.render.labels import POOL_LABEL, SELECTOR_LABEL

log = logging.getLogger(__name__)

MODEL = "ModelDeployment"
POOL = "InferencePool"
RESYNC = "Resync"
AUTOSCALE = "Autoscale"


class Key(NamedTuple):
    kind: str
    namespace: str
    name: str


RESYNC_KEY = Key(RESYNC, "", "")
# Every so many resyncs (the first included), one lists every child again and passes every model:
# the others leave alone the models unchanged since their last settled pass.
FULL_RESYNC_EVERY = 10


@dataclass(frozen=True)
class Work:
    """Why a key is queued. Two reasons for one key merge into one pass that covers both."""

    # Models: only a Deployment's status changed, so the Deployments alone are compared.
    workloads_only: bool = False
    # Queued by the resync alone: the safety net waits behind everything an event asked for.
    background: bool = False
    # Queued because another pass moved what the model may run (a model's new demand, a pool's
    # recount): it follows the user's own changes, so a new model never waits behind a cascade.
    derived: bool = False
    # Pools: re-plan every model of the pool after the recount (its spec changed, or at start).
    replan: bool = False
    # Models: the autoscaler's readings to decide the count with.
    evaluation: Evaluation | None = None

    @property
    def priority(self) -> int:
        # A user's change first, then what other passes moved, then the status refreshes of a
        # rollout, then the resync's passes.
        if self.background:
            return 0
        if self.workloads_only:
            return 1
        return 2 if self.derived else 3

    @property
    def from_user(self) -> bool:
        """Queued for a change of the model itself (or its own children), not by other passes."""
        return not (self.background or self.workloads_only or self.derived)

    def merge(self, other: Work) -> Work:
        workloads_only = self.workloads_only and other.workloads_only
        background = self.background and other.background
        return Work(
            workloads_only=workloads_only,
            background=background,
            # A user's change in either makes the pass a user's; otherwise it is derived work.
            derived=not (self.from_user or other.from_user or workloads_only or background),
            replan=self.replan or other.replan,
            evaluation=other.evaluation or self.evaluation,
        )


FULL = Work()
WORKLOADS = Work(workloads_only=True)
DERIVED = Work(derived=True)
RESYNCED = Work(background=True)


def model_key(namespace: str, name: str) -> Key:
    return Key(MODEL, namespace, name)


def pool_key(name: str) -> Key:
    return Key(POOL, "", name)


def short_error(err: BaseException) -> tuple[str, bool, bool]:
    """A one-line description of a failed pass; whether it is the API server being unreachable or
    overloaded (a warning: the backoff is the answer); and whether its stack trace is worth logging
    (only for what is neither the API server's absence nor its answer: a bug)."""
    if isinstance(err, ApiError):
        transient = err.status in (0, 429) or (err.status or 0) >= 500
        return f"API server answered {err.status} {err.reason}".strip(), transient, False
    if isinstance(err, Urllib3Error | ConnectionError | TimeoutError):
        cause: BaseException = err.reason if isinstance(err, MaxRetryError) and err.reason else err
        if isinstance(cause, ProtocolError) and len(cause.args) > 1:
            cause = cause.args[1]  # ("Connection aborted.", ConnectionResetError(...))
        # The last part says what happened ("[Errno 111] Connection refused"); the parts before it
        # name urllib3's connection object.
        text = str(cause).rsplit(": ", 1)[-1] or type(cause).__name__
        return f"API server unreachable: {text}", True, False
    return f"{type(err).__name__}: {err}", False, True


class Controller:
    """Everything the operator holds and does, built once from the `OperatorConfig`."""

    def __init__(self, config: OperatorConfig, kube: Kube) -> None:
        self.config = config
        self.world = World(kube, operator_namespace=config.operator_namespace())
        self.autoscaling = Autoscaling(
            persist_seconds=config.autoscaler_persist_seconds, namespace=config.operator_namespace()
        )
        self.queue: WorkQueue[Key, Work] = WorkQueue(
            Backoff(config.retry_base_seconds, config.retry_max_seconds)
        )
        self.workers = Workers(self.queue, self.process, self.failed, config.workers)
        self._stopping = threading.Event()
        self._resyncs = 0
        # What each download Job's status said last: (active, ready, succeeded, failed).
        self._jobs: dict[tuple[str | None, str], tuple[Any, ...]] = {}
        self._clock = threading.Thread(target=self._tick, name="gpupool-clock", daemon=True)

    @property
    def kube(self) -> Kube:
        return self.world.kube

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers and the clock; the first resync is queued at once."""
        self.queue.add(RESYNC_KEY, FULL)
        self.workers.start()
        self._clock.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self.workers.stop(timeout)
        if self._clock.is_alive():
            self._clock.join(timeout=1)

    def _tick(self) -> None:
        next_resync = time.monotonic() + self.config.resync_seconds
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= next_resync:
                self.queue.add(RESYNC_KEY, FULL)
                next_resync = now + self.config.resync_seconds
            for pool in self.autoscaling.due_pools(now):
                self.queue.add(Key(AUTOSCALE, "", pool), FULL)
            metrics.QUEUE_DEPTH.set(len(self.queue))
            metrics.QUEUE_WAITING.set(self.queue.waiting())
            self._stopping.wait(min(self.config.autoscaler_tick_seconds, max(0.0, next_resync - now)))

    # -- the watch side: update the cache, queue keys -----------------------------------------

    def model_changed(self, type_: str | None, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.autoscaling.track(type_, namespace, name, body)
        if type_ == "DELETED":
            self.world.cache.forget_model(body)
            metrics.forget_model(
                namespace, name, self.world.memory.placed_pools.pop((namespace, name), set())
            )
            self.queue.add(model_key(namespace, name), FULL)  # forgets what it asked
            return
        # With a status subresource only spec changes move the generation. A modification whose
        # generation the status already describes is our own status write coming back: nothing to
        # do (the periodic resync still covers drift of the children).
        self.world.cache.remember_model(body)
        observed = (body.get("status") or {}).get("observedGeneration")
        if type_ == "MODIFIED" and observed == body["metadata"].get("generation"):
            return
        self.queue.add(model_key(namespace, name), FULL)

    def workload_changed(self, type_: str | None, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        pool = (meta.get("labels") or {}).get(POOL_LABEL)
        if pool:
            self.queue.add_after(pool_key(pool), FULL, self.config.pool_accounting_seconds)
        if type_ == "DELETED":
            self.world.cache.forget(body)
        elif not self.world.cache.remember(body) or type_ == "ADDED":
            # Nothing the model's status reads changed, or we just applied it in the pass that
            # already wrote the model's status.
            return
        for owner in meta.get("ownerReferences") or []:
            if owner.get("kind") == MODEL and owner.get("apiVersion", "").startswith("gpupool.io/"):
                self.queue.add_after(
                    model_key(meta["namespace"], owner["name"]), WORKLOADS, self.config.status_refresh_seconds
                )

    def job_changed(self, type_: str | None, body: dict[str, Any]) -> None:
        """A weights download Job started, finished or went: its model takes the news. Only the
        counts its status reads (active, ready, succeeded, failed) wake the model."""
        meta = body["metadata"]
        status = body.get("status") or {}
        seen = tuple(status.get(part) for part in ("active", "ready", "succeeded", "failed"))
        key = (meta.get("namespace"), meta["name"])
        if type_ == "DELETED":
            self._jobs.pop(key, None)
        elif self._jobs.get(key) == seen:
            return
        else:
            self._jobs[key] = seen
        if type_ is None:
            return  # the initial listing: the resync passes every model anyway
        for owner in meta.get("ownerReferences") or []:
            if owner.get("kind") == MODEL and owner.get("apiVersion", "").startswith("gpupool.io/"):
                self.queue.add(model_key(meta["namespace"], owner["name"]), FULL)

    def pool_changed(self, type_: str | None, name: str, body: dict[str, Any]) -> None:
        if type_ == "DELETED":
            self.world.cache.forget_pool(name)
            self.world.memory.forget_pool(name)
            return
        self.world.cache.remember_pool(body)
        # Models depend on the pool's spec, not on its status: re-plan them all when the spec
        # changed (or at start-up), not each time the pool's own status write comes back.
        status = body.get("status") or {}
        replan = type_ in (None, "ADDED") or status.get("observedGeneration") != body["metadata"].get(
            "generation"
        )
        self.queue.add(pool_key(name), Work(replan=replan))

    def node_changed(self, type_: str | None, name: str, body: dict[str, Any]) -> None:
        """A node joined, left, was cordoned, became (un)ready or changed labels or capacity:
        recount the pools soon. Heartbeats and other status churn change none of these."""
        status = body.get("status") or {}
        ready = next(
            (c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None
        )
        seen = (
            tuple(sorted((body["metadata"].get("labels") or {}).items())),
            bool((body.get("spec") or {}).get("unschedulable")),
            ready,
            tuple(sorted((status.get("allocatable") or {}).items())),
        )
        nodes = self.world.cache.nodes
        if type_ == "DELETED":
            nodes.pop(name, None)
        elif nodes.get(name) == seen:
            return
        else:
            nodes[name] = seen
        if type_ is None:
            return  # the initial listing: the pools' start-up recount sees every node anyway
        for pool in self.world.cache.known_pools():
            self.queue.add_after(pool_key(pool), FULL, self.config.pool_accounting_seconds)

    def pod_changed(self, type_: str | None, namespace: str | None, name: str, body: dict[str, Any]) -> None:
        """Engine pods: recount their pool soon, and tell a model when the scheduler preempts one."""
        labels = body["metadata"].get("labels") or {}
        pool = labels.get(POOL_LABEL)
        # Only what the accounting reads: where the pod is bound, whether it still holds anything.
        seen = (
            (body.get("spec") or {}).get("nodeName"),
            (body.get("status") or {}).get("phase"),
            bool(body["metadata"].get("deletionTimestamp")),
        )
        pods = self.world.cache.pods
        key = (namespace, name)
        if type_ == "DELETED":
            pods.pop(key, None)
        if pool and (type_ == "DELETED" or pods.get(key) != seen):
            self.queue.add_after(pool_key(pool), FULL, self.config.pool_accounting_seconds)
        if type_ != "DELETED":
            pods[key] = seen
        model = labels.get(SELECTOR_LABEL)
        if namespace is None or not model or type_ == "DELETED":
            return
        for condition in (body.get("status") or {}).get("conditions") or []:
            if (
                condition.get("type") == "DisruptionTarget"
                and condition.get("status") == "True"
                and condition.get("reason") == PREEMPTION_REASON
            ):
                node = (body.get("spec") or {}).get("nodeName") or "its node"
                message = f"{condition.get('message') or 'preempted'} (pod {name} on {node})"
                memory = self.world.memory
                owner = model_for_label(memory, namespace, model)
                if note_preemption(memory, namespace, owner, name, message):
                    self.queue.add(model_key(namespace, owner), FULL)

    # -- the worker side: one pass per key ----------------------------------------------------

    def process(self, key: Key, work: Work) -> None:
        if key.kind == MODEL:
            adjust = None
            if work.evaluation is not None:
                adjust = self.autoscaling.adjuster(self.kube, work.evaluation, (key.namespace, key.name))
            done = reconcile_model(
                self.world, key.namespace, key.name, adjust=adjust, workloads_only=work.workloads_only
            )
            # The model's new demand moved other models' counts: they take theirs now, not at the
            # next recount, so the pool never holds two allocations' counts at once for long.
            for namespace, name in sorted(done.moved):
                self.queue.add(model_key(namespace, name), DERIVED)
            # A deleted model's pools are recounted without its demand, and the others take its share.
            for pool in sorted(done.pools):
                self.queue.add(pool_key(pool), FULL)
            # A failed weights download is retried when its delay is over.
            if done.requeue_after is not None:
                self.queue.add_after(key, FULL, done.requeue_after)
        elif key.kind == POOL:
            changed = set(reconcile_pools(self.world, [key.name]))
            if work.replan:
                changed |= set(models_of_pool(self.world, key.name))
            # Models whose tier, quota or room on the pool changed: waiting for room, or holding
            # borrowed accelerators their lender now wants back.
            for namespace, name in sorted(changed):
                self.queue.add(model_key(namespace, name), DERIVED)
        elif key.kind == RESYNC:
            started = time.perf_counter()
            every_model = self._resyncs % FULL_RESYNC_EVERY == 0
            # The first resync registers every model's demand before any of them takes a count;
            # from then on a new model registers its own in its first pass.
            pools, models, unchanged = resync(
                self.world, every_model=every_model, register=self._resyncs == 0
            )
            self._resyncs += 1
            for pool in pools:
                self.queue.add(pool_key(pool), RESYNCED)
            for namespace, name in models:
                self.queue.add(model_key(namespace, name), RESYNCED)
            metrics.RESYNC_MODELS.labels("queued").inc(len(models))
            metrics.RESYNC_MODELS.labels("unchanged").inc(unchanged)
            log.info(
                "%s: %d pools and %d models queued, %d unchanged (listed in %.1fs)",
                "full resync" if every_model else "resync",
                len(pools),
                len(models),
                unchanged,
                time.perf_counter() - started,
            )
        elif key.kind == AUTOSCALE:
            evaluation, models = self.autoscaling.evaluate(self.kube, key.name)
            for namespace, name in models:
                self.queue.add(model_key(namespace, name), Work(evaluation=evaluation))
        else:
            raise ValueError(f"no pass for a key of kind {key.kind!r}")

    def failed(self, key: Key, work: Work, err: Exception, delay: float) -> None:
        """One log line per failed pass, with the retry's number and delay."""
        if key.kind in (MODEL, POOL):
            metrics.RECONCILE_ERRORS.labels(key.kind).inc()
        metrics.QUEUE_RETRIES.labels(key.kind).inc()
        message, transient, trace = short_error(err)
        what = "/".join(part for part in (key.namespace, key.name) if part)
        extra = {"obj_kind": key.kind, "obj_namespace": key.namespace or None, "obj_name": key.name or None}
        log.log(
            logging.WARNING if transient else logging.ERROR,
            "%s%s failed (%s); retry %d in %.2fs",
            key.kind,
            f" {what}" if what else "",
            message,
            self.queue.failures(key),
            delay,
            exc_info=err if trace else None,
            extra=extra,
        )
