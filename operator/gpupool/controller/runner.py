"""`gpupool run`: the operator process (kopf) with its health and metrics endpoints."""

from __future__ import annotations

import logging
import os

import kopf
from prometheus_client import start_http_server


def run_operator(
    *,
    kubeconfig: str | None,
    health_address: str,
    metrics_port: int,
    metrics_address: str,
    verbose: bool,
) -> None:
    if kubeconfig and os.environ.get("KUBECONFIG") != kubeconfig:
        raise RuntimeError("set KUBECONFIG before importing the operator (gpupool run does)")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kopf's own per-event chatter is noise at INFO.
    logging.getLogger("kopf").setLevel(logging.INFO if verbose else logging.WARNING)
    # Importing the handlers registers them with kopf.
    from gpupool.controller import handlers  # noqa: F401

    start_http_server(metrics_port, addr=metrics_address)
    kopf.run(
        clusterwide=True,
        standalone=True,
        liveness_endpoint=f"http://{health_address}/healthz",
    )
