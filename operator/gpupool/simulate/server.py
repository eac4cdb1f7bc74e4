"""Serve simulated pods' metrics over HTTP, for a real Prometheus to scrape (standard library only).

- `/metrics`: every pod, engine metrics labelled with `namespace` and `pod` (one scrape target for
  the whole simulated model);
- `/pods/<pod>/metrics`: one pod exactly as its engine would expose it (one target per pod, the way
  a PodMonitor scrapes real engines; Prometheus adds the pod labels);
- `/healthz`: 200.

`source` is called on every request, so a simulation advancing in another thread is seen live.
Bind to loopback unless told otherwise: this serves made-up numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from gpupool.simulate.metrics import PodMetrics, exposition

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

PodSource = Callable[[], Sequence[PodMetrics]]


class _Handler(BaseHTTPRequestHandler):
    source: ClassVar[PodSource]

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/healthz":
            self._reply(200, "ok\n", "text/plain; charset=utf-8")
            return
        pods = list(type(self).source())
        if path == "/metrics":
            self._reply(200, exposition(pods, with_pod_labels=True), CONTENT_TYPE)
            return
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "pods" and parts[3] == "metrics":
            chosen = [p for p in pods if p.pod == parts[2]]
            if chosen:
                self._reply(200, exposition(chosen), CONTENT_TYPE)
                return
        self._reply(404, "not found\n", "text/plain; charset=utf-8")

    def _reply(self, status: int, body: str, content_type: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        del format, args  # scrapes every few seconds would flood the log


def metrics_server(source: PodSource, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server (not yet serving) for `source`'s pods; port 0 picks a free port (`server_port`)."""
    handler = type("SimulatedPodMetrics", (_Handler,), {"source": staticmethod(source)})
    return ThreadingHTTPServer((host, port), handler)


def serve_in_background(source: PodSource, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; call `shutdown()` and `server_close()` to stop."""
    server = metrics_server(source, host, port)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="simulated-metrics", daemon=True
    )
    thread.start()
    return server
