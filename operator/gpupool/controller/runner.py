"""`gpupool run`: the operator process (kopf) with its health and metrics endpoints."""

from __future__ import annotations

import json
import logging
import os

import kopf
from prometheus_client import start_http_server


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


def run_operator(
    *,
    kubeconfig: str | None,
    health_address: str,
    metrics_port: int,
    metrics_address: str,
    verbose: bool,
    log_format: str = "text",
) -> None:
    if kubeconfig and os.environ.get("KUBECONFIG") != kubeconfig:
        raise RuntimeError("set KUBECONFIG before importing the operator (gpupool run does)")
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
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
