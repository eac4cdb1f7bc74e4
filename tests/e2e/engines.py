"""Simulated engines for the model's pods: vLLM metrics served on loopback, scraped by a real Prometheus.

The pods run nowhere (kwok plays their kubelets). `ServingPods` follows the Running and Ready pods
of one ModelDeployment (once a second), keeps a `PodMetrics` per pod, and publishes them as
Prometheus file service discovery targets on the loopback server of `gpupool.simulate.server`,
each with the pod's labels Prometheus relabels onto the series as the chart's PodMonitor does
(`pool`, `model_deployment`, `revision`; `relabel_configs`). Subclasses move the counters in
`_advance` from the load they model.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from cluster import Cluster
from operator_process import free_port
from test_observability import Prometheus

from gpupool.simulate.metrics import EngineKind, PodMetrics, VendorKind
from gpupool.simulate.server import serve_in_background

# The pods' labels, as Prometheus sees them from the targets, and the series labels they become.
POD_LABELS = {
    "pool": "gpupool.io/pool",
    "model_deployment": "gpupool.io/model-deployment",
    "revision": "gpupool.io/revision",
}


def relabel_configs() -> list[dict[str, Any]]:
    return [{"source_labels": [f"__pod_label_{label}"], "target_label": label} for label in POD_LABELS]


def prometheus_config(sd_file: Path) -> dict[str, Any]:
    """Scrape every simulated pod once a second."""
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "simulated-engines",
                "file_sd_configs": [{"files": [str(sd_file)], "refresh_interval": "1s"}],
                "relabel_configs": relabel_configs(),
            }
        ],
    }


class ServingPods:
    """Engine metrics for the Running and Ready pods of one model of `namespace`."""

    def __init__(self, cluster: Cluster, namespace: str, model: str, sd_file: Path) -> None:
        self.cluster, self.namespace, self.model, self.sd_file = cluster, namespace, model, sd_file
        self.load_qps = 0.0
        self.port = 0
        self._pods: dict[str, PodMetrics] = {}
        self._labels: dict[str, dict[str, str]] = {}
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="pod-watcher", daemon=True)

    def start(self, port: int) -> None:
        self.port = port
        self._write_sd()
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        self._watcher.join(timeout=10)

    def _serving(self) -> dict[str, dict[str, str]] | None:
        """The labels of each serving pod, by name; None when the API server did not answer."""
        result = self.cluster.kubectl(
            "get", "pods", "-n", self.namespace, "-l", f"gpupool.io/model-deployment={self.model}",
            "-o", "json", check=False,
        )  # fmt: skip
        if result.returncode != 0:
            return None
        serving = {}
        for pod in json.loads(result.stdout)["items"]:
            ready = any(
                c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
            )
            if (
                pod["status"].get("phase") == "Running"
                and ready
                and not pod["metadata"].get("deletionTimestamp")
            ):
                serving[pod["metadata"]["name"]] = pod["metadata"].get("labels", {})
        return serving

    def _watch(self) -> None:
        """Follow the model's pods and publish them as scrape targets."""
        while not self._stop.wait(1.0):
            serving = self._serving()
            if serving is None:
                continue
            with self._lock:
                self._advance()
                for name in set(self._pods) - set(serving):
                    del self._pods[name]
                for name in set(serving) - set(self._pods):
                    self._pods[name] = PodMetrics(
                        pod=name,
                        namespace=self.namespace,
                        model="llama-3.1-8b",
                        engine=EngineKind.VLLM,
                        vendor=VendorKind.NVIDIA,
                        accelerator_model="NVIDIA H100 80GB HBM3",
                        accelerators=1,
                        memory_total_mib=81_559,
                        serving=True,
                    )
                changed = serving != self._labels
                self._labels = serving
            if changed:
                self._write_sd()

    def _write_sd(self) -> None:
        groups = [
            {
                "targets": [f"127.0.0.1:{self.port}"],
                "labels": {
                    "__metrics_path__": f"/pods/{name}/metrics",
                    "namespace": self.namespace,
                    "pod": name,
                    **{f"__pod_label_{k}": labels.get(v, "") for k, v in POD_LABELS.items()},
                },
            }
            for name, labels in sorted(self._labels.items())
        ]
        tmp = self.sd_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(self.sd_file)

    def _tick(self) -> float:
        """Seconds since the last move of the counters."""
        now = time.monotonic()
        dt, self._last = now - self._last, now
        return dt

    def _advance(self) -> None:
        """Move every pod's counters and gauges to now (under the lock)."""
        raise NotImplementedError

    def snapshot(self) -> list[PodMetrics]:
        with self._lock:
            self._advance()
            return list(self._pods.values())


@contextmanager
def scraped(pods: ServingPods, work: Path) -> Iterator[Prometheus]:
    """The pods' metrics served on loopback and a Prometheus of `work`'s own scraping them, for
    the block; both stopped however it ends."""
    sd_file = pods.sd_file
    server = serve_in_background(pods.snapshot)
    pods.start(server.server_port)
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(sd_file)))
    prometheus = Prometheus(work / "prometheus-state", free_port())
    try:
        prometheus.start(config)
        yield prometheus
    finally:
        pods.stop()
        server.shutdown()
        server.server_close()
        prometheus.stop()
