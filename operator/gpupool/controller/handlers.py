"""kopf handlers: thin. Each one hands what it saw to the `Controller`, which updates its cache and
queues keys; the Controller's workers do every pass (`gpupool.controller.operator`).

Only `on.event`, `on.login`, `on.startup` and `on.cleanup` are used. kopf's create/update handlers keep their
progress in annotations on the user's object and its daemons add finalizers; gpupool needs neither
(owner references take care of deletion, and a periodic resync gives level-triggered behaviour),
so the user's objects are never written except for their status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import kopf

from gpupool.controller.apiclient import ConfigError
from gpupool.controller.config import OperatorConfig
from gpupool.controller.kube import Kube, load_client
from gpupool.controller.operator import Controller
from gpupool.render.labels import MANAGED_BY, MANAGED_BY_LABEL

log = logging.getLogger(__name__)

# Threads kopf runs these (plain `def`) handlers in. Each only updates memory and queues keys.
HANDLER_THREADS = 4
# Seconds between kopf's attempts at a request (its watches above all) while the API server is
# unreachable: doubling, then every WATCH_RETRY_MAX_SECONDS for as long as it takes.
WATCH_RETRY_MAX_SECONDS = 10.0


class WatchBackoffs:
    """kopf's request backoffs, without end: by default kopf gives up on a watch after eight
    attempts (about a minute), and a watcher that gives up stops the operator. Each call of
    `iter` starts again from the first pause (kopf iterates once per request)."""

    def __iter__(self) -> Iterator[float]:
        delay = 1.0
        while True:
            yield delay
            delay = min(delay * 2, WATCH_RETRY_MAX_SECONDS)


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf's watches log in as the operator's own client does (gpupool.controller.apiclient),
    reading the credentials again each time kopf asks (at start, and after a 401)."""
    config = memo.get("config") or OperatorConfig()
    try:
        return kopf.ConnectionInfo(**load_client(config.kubeconfig).connection_info())
    except ConfigError as err:
        raise kopf.LoginError(str(err)) from err


@kopf.on.startup()
def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = memo.get("config") or OperatorConfig()
    tune(settings, config)
    controller = Controller(config, Kube(load_client(config.kubeconfig)))
    controller.start()
    memo.controller = controller


def tune(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    # Events are posted deliberately by the reconciler, only when something changed.
    settings.posting.enabled = False
    settings.execution.max_workers = HANDLER_THREADS
    # kopf starts a task per object with events and keeps it a while after its last event. A
    # thousand models applied at once would otherwise hold a thousand parsed events in memory
    # while the handler threads work through them; past this many the watch waits instead.
    settings.queueing.worker_limit = config.queued_objects
    settings.queueing.idle_timeout = 0.5
    settings.watching.server_timeout = 300
    # While the API server is away, kopf retries its watches with a growing pause (one log line
    # per attempt), and never gives up: they are back within WATCH_RETRY_MAX_SECONDS of its return.
    settings.networking.error_backoffs = WatchBackoffs()
    # Only gpupool's Deployments and pods reach the operator: the API server filters the watches
    # (the handlers' own label filters are applied by kopf after the events arrive).
    managed = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    settings.watching.label_selectors["apps", "deployments"] = managed
    settings.watching.label_selectors["pods"] = managed
    settings.watching.label_selectors["batch", "jobs"] = managed
    settings.networking.request_timeout = 60


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    controller = memo.get("controller")
    if controller is not None:
        # A pass in flight finishes; what is still queued is recomputed at the next start.
        await asyncio.to_thread(controller.stop)


@kopf.on.event("gpupool.io", "v1alpha1", "modeldeployments")
def model_changed(
    type: str | None, event: kopf.RawEvent, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    if namespace is not None:
        # Plain JSON data, which the cache keeps as it is.
        memo.controller.model_changed(type, namespace, name, dict(event["object"]))


@kopf.on.event("apps", "v1", "deployments", labels={MANAGED_BY_LABEL: MANAGED_BY})
def workload_changed(type: str | None, event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    # The raw event carries the object as plain JSON data, which the cache keeps as it is.
    memo.controller.workload_changed(type, dict(event["object"]))


@kopf.on.event("batch", "v1", "jobs", labels={MANAGED_BY_LABEL: MANAGED_BY})
def job_changed(type: str | None, event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    memo.controller.job_changed(type, dict(event["object"]))


@kopf.on.event("gpupool.io", "v1alpha1", "inferencepools")
def pool_changed(type: str | None, event: kopf.RawEvent, name: str, memo: Any, **_: Any) -> None:
    memo.controller.pool_changed(type, name, dict(event["object"]))


@kopf.on.event("", "v1", "nodes")
def node_changed(type: str | None, event: kopf.RawEvent, name: str, memo: Any, **_: Any) -> None:
    memo.controller.node_changed(type, name, dict(event["object"]))


@kopf.on.event("", "v1", "pods", labels={MANAGED_BY_LABEL: MANAGED_BY})
def pod_changed(
    type: str | None, event: kopf.RawEvent, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    memo.controller.pod_changed(type, namespace, name, dict(event["object"]))
