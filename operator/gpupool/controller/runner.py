"""`gpupool run`: the operator process (kopf) with its health and metrics endpoints."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

import kopf
from prometheus_client import start_http_server

from gpupool.controller.config import OperatorConfig
from gpupool.controller.leader import (
    KubernetesLeaseStore,
    LeaderElectionSettings,
    LeaderElector,
    LeaseElection,
    exit_on_lost_leadership,
)

log = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the object a record is about when the record names one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # `extra` keys may not shadow LogRecord's own attributes (`name` is the logger's).
        for key in ("kind", "namespace", "name"):
            value = getattr(record, f"obj_{key}", None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


# glibc's mallopt parameter for the number of malloc arenas (malloc.h: M_ARENA_MAX -8).
M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def cap_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas before the workers start; True when capped.

    glibc gives threads arenas of their own, up to eight per core, and memory freed in one is
    reused by that arena alone: the workers' passes, the watches and the listings each grew their
    own. Python's small objects come from its own allocator, but every larger string and dict
    table (the cache's compact copies, a page of a listing) comes from malloc. Two arenas held
    `make bench`'s operator at 1,000 models to 135 MiB where the default held 148 MiB. A
    MALLOC_ARENA_MAX in the environment, or a C library that is not glibc, is left alone.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def run_operator(config: OperatorConfig, leader_election: LeaderElectionSettings | None = None) -> None:
    """Run the operator until SIGTERM; with `leader_election`, only once this process leads."""
    handler = logging.StreamHandler()
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if config.verbose else logging.INFO, handlers=[handler])
    # kopf's own per-event chatter is noise at INFO.
    logging.getLogger("kopf").setLevel(logging.INFO if config.verbose else logging.WARNING)
    cap_malloc_arenas()
    # Importing the handlers registers them with kopf.
    from gpupool.controller import handlers  # noqa: F401

    start_http_server(config.metrics_port, addr=config.metrics_address)
    elector = None
    if leader_election is not None:
        elector = _lead_or_stand_by(config.kubeconfig, config.health_address, leader_election)
        if elector is None:
            return  # stopped while standing by
    try:
        kopf.run(
            clusterwide=True,
            standalone=True,
            liveness_endpoint=f"http://{config.health_address}/healthz",
            memo=kopf.Memo(config=config),
        )
    finally:
        if elector is not None:
            elector.release()


def _lead_or_stand_by(
    kubeconfig: str | None, health_address: str, settings: LeaderElectionSettings
) -> LeaderElector | None:
    """Wait for the Lease before any handler starts, answering /healthz meanwhile (a standby is
    alive); then renew it in the background. None when SIGTERM or SIGINT came first."""
    from gpupool.controller.kube import load_client

    store = KubernetesLeaseStore(load_client(kubeconfig), settings, timeout=settings.renew_deadline / 2)
    elector = LeaderElector(LeaseElection(store, settings))

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("leader election: %s received while standing by; exiting", signal.Signals(signum).name)
        elector.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    health = _standby_health_server(health_address)
    try:
        leading = elector.wait_for_leadership()
    finally:
        health.shutdown()
        health.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not leading:
        return None
    elector.keep_leading(on_lost=exit_on_lost_leadership)
    return elector


class _StandbyHealth(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path.split("?")[0] == "/healthz"
        body = b'{"leader": false, "state": "standby"}' if ok else b"not found"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json" if ok else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # probes every few seconds are noise


def _standby_health_server(address: str) -> ThreadingHTTPServer:
    """/healthz of a standby; kopf serves it on the same address once this process leads."""
    host, _, port = address.rpartition(":")
    server = ThreadingHTTPServer((host.strip("[]") or "0.0.0.0", int(port)), _StandbyHealth)
    threading.Thread(target=server.serve_forever, name="standby-health", daemon=True).start()
    return server
