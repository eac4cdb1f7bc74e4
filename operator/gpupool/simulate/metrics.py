"""The metrics a simulated pod exposes, under the names the real exporters use, in Prometheus text
format (version 0.0.4), so that a real Prometheus can scrape the simulator.

Names and labels, checked against each project's source or documentation:

- vLLM (vllm/v1/metrics/loggers.py; labels `model_name`, `engine`): `vllm:num_requests_running`,
  `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc` (0-1; it replaced
  `vllm:gpu_cache_usage_perc`, deprecated in 0.9 and hidden in later releases, which is also
  emitted here for older dashboards), `vllm:request_success_total` (label `finished_reason`: stop,
  length, abort; client time-outs end as abort), `vllm:prompt_tokens_total`,
  `vllm:generation_tokens_total`, and the histograms `vllm:time_to_first_token_seconds` and
  `vllm:e2e_request_latency_seconds` with vLLM's bucket bounds.
- Triton (docs: user_guide/metrics.md; labels `model`, `version`): `nv_inference_request_success`,
  `nv_inference_request_failure`, `nv_inference_count`, `nv_inference_exec_count`,
  `nv_inference_request_duration_us`, `nv_inference_queue_duration_us` (cumulative counters),
  `nv_inference_pending_request_count` (gauge), `nv_gpu_utilization` (0-1, label `gpu_uuid`).
- NVIDIA DCGM exporter: `DCGM_FI_DEV_GPU_UTIL` (percent), `DCGM_FI_DEV_FB_USED` (MiB), labels
  `gpu`, `UUID`, `device`, `modelName`, `Hostname`, and `namespace`, `pod`, `container` when the
  exporter maps devices to pods.
- Ascend NPU exporter (MindCluster docs, Prometheus Metrics API): `npu_chip_info_utilization` (AI
  Core percent), `npu_chip_info_hbm_used_memory` and `npu_chip_info_hbm_total_memory` (MB), labels
  `id`, `model_name`, `namespace`, `pod_name`, `container_name`.

vLLM and Triton know nothing of pods: Prometheus adds `namespace` and `pod` when it scrapes. An
exposition for one pod therefore carries no pod labels on engine metrics; `with_pod_labels=True`
adds them, for one endpoint that serves many simulated pods. The accelerator exporters run per node
in a real cluster; the simulator serves their series beside the engine's for convenience.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

# vLLM's bucket bounds (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
E2E_BUCKETS: tuple[float, ...] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
    40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip

VLLM_RUNNING = "vllm:num_requests_running"
VLLM_WAITING = "vllm:num_requests_waiting"
VLLM_KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
VLLM_GPU_CACHE_USAGE = "vllm:gpu_cache_usage_perc"
VLLM_REQUEST_SUCCESS = "vllm:request_success_total"
VLLM_PROMPT_TOKENS = "vllm:prompt_tokens_total"
VLLM_GENERATION_TOKENS = "vllm:generation_tokens_total"
VLLM_TTFT = "vllm:time_to_first_token_seconds"
VLLM_E2E = "vllm:e2e_request_latency_seconds"

TRITON_SUCCESS = "nv_inference_request_success"
TRITON_FAILURE = "nv_inference_request_failure"
TRITON_COUNT = "nv_inference_count"
TRITON_EXEC_COUNT = "nv_inference_exec_count"
TRITON_REQUEST_DURATION = "nv_inference_request_duration_us"
TRITON_QUEUE_DURATION = "nv_inference_queue_duration_us"
TRITON_PENDING = "nv_inference_pending_request_count"
TRITON_GPU_UTILIZATION = "nv_gpu_utilization"

DCGM_GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
DCGM_FB_USED = "DCGM_FI_DEV_FB_USED"
NPU_UTILIZATION = "npu_chip_info_utilization"
NPU_HBM_USED = "npu_chip_info_hbm_used_memory"
NPU_HBM_TOTAL = "npu_chip_info_hbm_total_memory"


class EngineKind(StrEnum):
    VLLM = "vllm"
    TRITON = "triton"


class VendorKind(StrEnum):
    NVIDIA = "nvidia"
    ASCEND = "ascend"


@dataclass
class Histogram:
    """Cumulative bucket counts, as Prometheus keeps them."""

    bounds: tuple[float, ...]
    counts: list[float] = field(default_factory=list)
    total: float = 0.0
    sum: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0.0] * len(self.bounds)


@dataclass
class PodMetrics:
    """What one pod (one engine instance and its accelerators) reports right now.

    Counters only grow; `serving` is False while the model loads, when the engine exports nothing.
    """

    pod: str
    namespace: str
    model: str
    engine: EngineKind
    vendor: VendorKind
    accelerator_model: str
    accelerators: int
    memory_total_mib: float
    serving: bool = False
    running: float = 0.0
    waiting: float = 0.0
    kv_cache_usage: float = 0.0
    accelerator_utilization: float = 0.0  # 0-1
    memory_used_mib: float = 0.0
    finished_stop: float = 0.0
    finished_length: float = 0.0
    aborted: float = 0.0
    prompt_tokens: float = 0.0
    generation_tokens: float = 0.0
    queue_seconds_total: float = 0.0
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    e2e: Histogram = field(default_factory=lambda: Histogram(E2E_BUCKETS))

    @property
    def finished(self) -> float:
        """Requests finished in any way (vllm:request_success_total summed over finished_reason)."""
        return self.finished_stop + self.finished_length + self.aborted


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _bound(value: float) -> str:
    return "+Inf" if math.isinf(value) else repr(float(value))


class _Families:
    """Samples grouped by metric family, in first-seen order, each with HELP and TYPE once."""

    def __init__(self) -> None:
        self._order: list[str] = []
        self._meta: dict[str, tuple[str, str]] = {}
        self._lines: dict[str, list[str]] = {}

    def add(self, name: str, kind: str, help_text: str, labels: dict[str, str], value: float) -> None:
        self._family(name, kind, help_text).append(f"{name}{_labels(labels)} {_number(value)}")

    def histogram(self, name: str, help_text: str, labels: dict[str, str], hist: Histogram) -> None:
        lines = self._family(name, "histogram", help_text)
        for bound, count in zip((*hist.bounds, math.inf), (*hist.counts, hist.total), strict=True):
            lines.append(f"{name}_bucket{_labels({**labels, 'le': _bound(bound)})} {_number(count)}")
        lines.append(f"{name}_sum{_labels(labels)} {_number(hist.sum)}")
        lines.append(f"{name}_count{_labels(labels)} {_number(hist.total)}")

    def _family(self, name: str, kind: str, help_text: str) -> list[str]:
        if name not in self._meta:
            self._order.append(name)
            self._meta[name] = (kind, help_text)
            self._lines[name] = []
        return self._lines[name]

    def text(self) -> str:
        out: list[str] = []
        for name in self._order:
            kind, help_text = self._meta[name]
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *self._lines[name]]
        return "\n".join(out) + "\n" if out else ""


def _device_uuid(pod: PodMetrics, index: int) -> str:
    digest = sum(ord(c) * (i + 1) for i, c in enumerate(pod.pod)) % 16**8
    return f"GPU-{digest:08x}-0000-4000-8000-{index:012x}"


def _vllm(families: _Families, pod: PodMetrics, extra: dict[str, str]) -> None:
    base = {**extra, "engine": "0", "model_name": pod.model}
    families.add(VLLM_RUNNING, "gauge", "Number of requests in model execution batches.", base, pod.running)
    families.add(VLLM_WAITING, "gauge", "Number of requests waiting to be processed.", base, pod.waiting)
    families.add(
        VLLM_KV_CACHE_USAGE, "gauge", "KV-cache usage. 1 means 100 percent usage.", base, pod.kv_cache_usage
    )
    families.add(
        VLLM_GPU_CACHE_USAGE,
        "gauge",
        "GPU KV-cache usage. 1 means 100 percent usage. DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
        base,
        pod.kv_cache_usage,
    )
    for reason, value in (
        ("stop", pod.finished_stop),
        ("length", pod.finished_length),
        ("abort", pod.aborted),
    ):
        families.add(
            VLLM_REQUEST_SUCCESS,
            "counter",
            "Count of successfully processed requests.",
            {**base, "finished_reason": reason},
            value,
        )
    families.add(
        VLLM_PROMPT_TOKENS, "counter", "Number of prefill tokens processed.", base, pod.prompt_tokens
    )
    families.add(
        VLLM_GENERATION_TOKENS,
        "counter",
        "Number of generation tokens processed.",
        base,
        pod.generation_tokens,
    )
    families.histogram(VLLM_TTFT, "Histogram of time to first token in seconds.", base, pod.ttft)
    families.histogram(VLLM_E2E, "Histogram of e2e request latency in seconds.", base, pod.e2e)


def _triton(families: _Families, pod: PodMetrics, extra: dict[str, str]) -> None:
    base = {**extra, "model": pod.model, "version": "1"}
    succeeded = pod.finished_stop + pod.finished_length
    families.add(
        TRITON_SUCCESS, "counter", "Number of successful inference requests, all batch sizes", base, succeeded
    )
    families.add(
        TRITON_FAILURE,
        "counter",
        "Number of failed inference requests, all batch sizes",
        {**base, "reason": "CANCELED"},
        pod.aborted,
    )
    families.add(
        TRITON_COUNT,
        "counter",
        "Number of inferences performed (does not include cached requests)",
        base,
        succeeded,
    )
    families.add(
        TRITON_EXEC_COUNT,
        "counter",
        "Number of model executions performed (does not include cached requests)",
        base,
        succeeded,
    )
    families.add(
        TRITON_REQUEST_DURATION,
        "counter",
        "Cumulative inference request duration in microseconds (includes cached requests)",
        base,
        pod.e2e.sum * 1e6,
    )
    families.add(
        TRITON_QUEUE_DURATION,
        "counter",
        "Cumulative inference queuing duration in microseconds (includes cached requests)",
        base,
        pod.queue_seconds_total * 1e6,
    )
    families.add(
        TRITON_PENDING,
        "gauge",
        "Instantaneous number of pending requests awaiting execution per-model.",
        base,
        pod.waiting,
    )
    for index in range(pod.accelerators):
        families.add(
            TRITON_GPU_UTILIZATION,
            "gauge",
            "GPU utilization rate [0.0 - 1.0)",
            {**extra, "gpu_uuid": _device_uuid(pod, index)},
            pod.accelerator_utilization,
        )


def _accelerators(families: _Families, pod: PodMetrics) -> None:
    for index in range(pod.accelerators):
        if pod.vendor is VendorKind.NVIDIA:
            labels = {
                "gpu": str(index),
                "UUID": _device_uuid(pod, index),
                "device": f"nvidia{index}",
                "modelName": pod.accelerator_model,
                "Hostname": f"node-{pod.pod}",
                "container": pod.engine.value,
                "namespace": pod.namespace,
                "pod": pod.pod,
            }
            families.add(
                DCGM_GPU_UTIL,
                "gauge",
                "GPU utilization (in %).",
                labels,
                round(pod.accelerator_utilization * 100),
            )
            families.add(
                DCGM_FB_USED, "gauge", "Framebuffer memory used (in MiB).", labels, round(pod.memory_used_mib)
            )
        else:
            labels = {
                "id": str(index),
                "model_name": pod.accelerator_model,
                "namespace": pod.namespace,
                "pod_name": pod.pod,
                "container_name": pod.engine.value,
            }
            families.add(
                NPU_UTILIZATION,
                "gauge",
                "the ai core utilization",
                labels,
                round(pod.accelerator_utilization * 100),
            )
            families.add(NPU_HBM_USED, "gauge", "the npu hbm used memory", labels, round(pod.memory_used_mib))
            families.add(
                NPU_HBM_TOTAL, "gauge", "the npu hbm total memory", labels, round(pod.memory_total_mib)
            )


def exposition(pod_states: Iterable[PodMetrics], *, with_pod_labels: bool = False) -> str:
    """The Prometheus text exposition of these pods' engine and accelerator metrics."""
    families = _Families()
    pods: Sequence[PodMetrics] = list(pod_states)
    for pod in pods:
        extra = {"namespace": pod.namespace, "pod": pod.pod} if with_pod_labels else {}
        if pod.serving:
            if pod.engine is EngineKind.VLLM:
                _vllm(families, pod, extra)
            else:
                _triton(families, pod, extra)
        _accelerators(families, pod)
    return families.text()
