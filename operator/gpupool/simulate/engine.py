"""The engine model: how fast one instance serves, and how latency grows with load.

Calibrated to the plan, so that its capacity means what the plan says it means:

- An instance saturates at `qps_per_instance x saturation_margin` requests per second (the margin,
  1.1 by default, is what a measured "QPS within the SLO" leaves below saturation). Utilisation `rho`
  is the served rate over that saturation rate.
- Time to first token = queue wait + an exponential prefill time with mean
  `base_ttft / (1 - rho)`, the slowdown of a processor-sharing (M/M/1-PS) server: a new prefill
  shares the accelerator with the running decode batch. `base_ttft` is chosen so that the p99 time
  to first token equals the SLO exactly at the plan's QPS per instance
  (`base = slo x (1 - 1/margin) / ln 100`), so 100% of the planned capacity is the edge of the SLO.
- Above saturation a FIFO backlog builds; a request arriving behind backlog B waits
  `B / (ready x saturation rate)` (the fluid queue's virtual waiting time; the simulator gives each
  pod its own queue, `ready` = 1). A request that would wait
  longer than `queue_timeout_seconds` is dropped (the client gives up; vLLM counts it as an abort),
  and with no Ready instance every request fails.
- The running batch holds at most `max_running` sequences: vLLM's max_num_seqs (256) or what the KV
  cache holds at prompt + output tokens each, whichever is smaller. A request stays in the batch for
  `max_running / saturation rate` seconds at saturation (Little's law), half that when idle, so
  `running = served rate x time in batch`, and KV-cache usage is running x tokens per sequence over
  the KV capacity.
- Queued requests (vllm:num_requests_waiting) are the backlog plus the Erlang-C queue of an M/M/c
  system with c = max_running batch slots: next to nothing until the batch is nearly full.
- Accelerator utilisation (DCGM_FI_DEV_GPU_UTIL) is the share of time at least one request runs,
  1 - exp(-running) for Poisson arrivals: continuous batching keeps the accelerator busy at a small
  fraction of its capacity, which is why utilisation is a poor scaling signal (DOMAIN §5).

The simulation is fluid (request amounts are real numbers) in fixed steps; arrivals are Poisson.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from gpupool.sizing import Plan
from gpupool.sizing.request import DEFAULT_MEAN_OUTPUT_TOKENS
from gpupool.sizing.throughput import VLLM_DEFAULT_MAX_NUM_SEQS

LN_100 = math.log(100.0)
# Utilisation at which the processor-sharing slowdown is capped: a saturated server's prefill wait
# is then modelled by the backlog, not by an infinite mean.
RHO_CAP = 0.98

# A planning assumption for chat and retrieval prompts; set your own.
DEFAULT_MEAN_PROMPT_TOKENS = 1024
DEFAULT_SATURATION_MARGIN = 1.1
# Typical client and gateway time-outs for a first token are tens of seconds.
DEFAULT_QUEUE_TIMEOUT_SECONDS = 30.0


@lru_cache(maxsize=65_536)
def erlang_c_queue(servers: int, rho_milli: int) -> float:
    """Mean queue length Lq of M/M/c with `servers` servers at utilisation rho = rho_milli / 1000."""
    rho = rho_milli / 1000.0
    if rho <= 0:
        return 0.0
    if rho >= 1:
        return math.inf
    offered = rho * servers
    blocking = 1.0  # Erlang B, by the stable recursion
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    waiting_probability = blocking / (1 - rho * (1 - blocking))
    return waiting_probability * rho / (1 - rho)


@dataclass(frozen=True)
class EngineModel:
    """One instance of a model on its accelerators; see the module docstring."""

    qps_per_instance: float
    latency_slo_seconds: float
    max_running: int
    kv_capacity_tokens: int
    mean_prompt_tokens: int = DEFAULT_MEAN_PROMPT_TOKENS
    mean_output_tokens: int = DEFAULT_MEAN_OUTPUT_TOKENS
    saturation_margin: float = DEFAULT_SATURATION_MARGIN
    queue_timeout_seconds: float = DEFAULT_QUEUE_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if not self.qps_per_instance > 0 or not self.latency_slo_seconds > 0:
            raise ValueError("qps_per_instance and latency_slo_seconds must be positive")
        if self.max_running < 1 or self.kv_capacity_tokens < 1 or self.saturation_margin <= 1:
            raise ValueError("max_running, kv_capacity_tokens >= 1 and saturation_margin > 1 required")

    @classmethod
    def from_plan(
        cls,
        plan: Plan,
        latency_slo_seconds: float,
        *,
        mean_prompt_tokens: int = DEFAULT_MEAN_PROMPT_TOKENS,
        mean_output_tokens: int = DEFAULT_MEAN_OUTPUT_TOKENS,
        saturation_margin: float = DEFAULT_SATURATION_MARGIN,
        queue_timeout_seconds: float = DEFAULT_QUEUE_TIMEOUT_SECONDS,
    ) -> EngineModel:
        if plan.qps_per_instance is None or not plan.fits:
            raise ValueError("the plan has no QPS per instance: the model does not fit")
        kv_tokens = max(1, plan.memory_per_accelerator.kv_cache_tokens)
        per_sequence = mean_prompt_tokens + mean_output_tokens
        return cls(
            qps_per_instance=plan.qps_per_instance,
            latency_slo_seconds=latency_slo_seconds,
            max_running=max(1, min(VLLM_DEFAULT_MAX_NUM_SEQS, kv_tokens // per_sequence)),
            kv_capacity_tokens=kv_tokens,
            mean_prompt_tokens=mean_prompt_tokens,
            mean_output_tokens=mean_output_tokens,
            saturation_margin=saturation_margin,
            queue_timeout_seconds=queue_timeout_seconds,
        )

    @property
    def saturation_qps(self) -> float:
        return self.qps_per_instance * self.saturation_margin

    @property
    def base_ttft_seconds(self) -> float:
        return self.latency_slo_seconds * (1 - 1 / self.saturation_margin) / LN_100

    @property
    def full_batch_seconds(self) -> float:
        """Time a request spends in a full batch (Little's law at saturation)."""
        return self.max_running / self.saturation_qps

    def ttft_mean_seconds(self, rho: float) -> float:
        """Mean of the prefill part of the time to first token at utilisation rho."""
        return self.base_ttft_seconds / (1 - min(max(rho, 0.0), RHO_CAP))

    def in_batch_seconds(self, rho: float) -> float:
        return self.full_batch_seconds * (0.5 + 0.5 * min(max(rho, 0.0), 1.0))

    def batch_queue(self, rho: float) -> float:
        """Mean requests waiting for a batch slot on one instance below saturation (Erlang C)."""
        return erlang_c_queue(self.max_running, min(999, max(0, round(rho * 1000))))

    def tokens_per_sequence(self) -> float:
        """KV tokens a running sequence holds on average: its prompt and half its output."""
        return self.mean_prompt_tokens + self.mean_output_tokens / 2


@dataclass(frozen=True)
class QueueStep:
    """One step of the fluid queue of a model (all Ready instances together)."""

    served: float
    dropped: float
    backlog: float
    wait_seconds: float
    rho: float


def advance_queue(engine: EngineModel, backlog: float, arrivals: float, ready: int, dt: float) -> QueueStep:
    """Serve `arrivals` plus `backlog` for `dt` seconds on `ready` instances (see the module docstring)."""
    capacity_rate = ready * engine.saturation_qps
    if capacity_rate <= 0:
        return QueueStep(served=0.0, dropped=backlog + arrivals, backlog=0.0, wait_seconds=math.inf, rho=0.0)
    offered = backlog + arrivals
    served = min(offered, capacity_rate * dt)
    left = offered - served
    limit = capacity_rate * engine.queue_timeout_seconds
    dropped = max(0.0, left - limit)
    left -= dropped
    wait = (backlog + left) / 2 / capacity_rate
    return QueueStep(
        served=served,
        dropped=dropped,
        backlog=left,
        wait_seconds=min(wait, engine.queue_timeout_seconds),
        rho=served / (capacity_rate * dt) if dt > 0 else 0.0,
    )


def ttft_cdf(x: float, wait: float, mean: float) -> float:
    """P(time to first token <= x) for a wait `wait` plus an exponential prefill of mean `mean`."""
    if x <= wait:
        return 0.0
    return 1.0 - math.exp(-(x - wait) / mean)
