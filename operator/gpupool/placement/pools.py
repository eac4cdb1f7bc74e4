"""Placing one model across several pools: cheapest that meets the SLO first, overflow, way back.

A model may allow several pools (ModelDeployment.spec.pools), e.g. NVIDIA preferred and Ascend
allowed. Each pool has its own plan (tensor-parallel size, QPS per instance) and price. The rule:

1. A pool is skipped when its plan does not fit, when its QPS per instance is unknown, when its
   latency (measured, or the roofline floor of `latency_floor_ms`) exceeds the latency SLO, or
   when the caller marks it (unknown tier, pool not found).
2. The others are ranked by the preference's priority (higher first), then by cost per request
   served: price x accelerators per instance / QPS per instance, because an instance of a slower
   accelerator serves fewer requests and a cheaper instance-hour can be the dearer way to serve
   the load. Pools without a price come after priced ones of the same priority; ties go by name.
3. The demand, in requests per second with headroom, is filled in rank order: each pool takes
   ceil(remaining / QPS per instance) instances, up to its room (what its tier, quota, capacity
   and maxInstances allow, running instances included). What a pool cannot take overflows to the
   next. Demand nothing can take is reported as unmet.
4. Way back, with hysteresis: while a lower-ranked pool still runs instances of the model, a
   higher-ranked pool offers `hysteresis` instances less room than it has (never less than it
   already runs). Instances move back to the preferred pool only when it has room for them and
   `hysteresis` more, so one freed slot does not pull an instance back that the next neighbour's
   scale-up would push out again. Once moved, a pool's running instances count in its room, so
   the next pass is stable. Overflow, on the other hand, is immediate: serving the load wins.
5. Scaling down empties the lowest-ranked pools first, which is the same ranking read backwards.

The same inputs always give the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from gpupool.api.tenancy import PoolPlacement
from gpupool.catalog.types import Accelerator
from gpupool.placement.request import PlacementReason, plural
from gpupool.sizing import Plan
from gpupool.sizing.throughput import decode_batch

DEFAULT_HYSTERESIS_INSTANCES = 1
# Ratios are rounded to this many decimals before ceil(), as the sizing engine does.
_RATIO_DECIMALS = 9


def latency_floor_ms(plan: Plan, accelerator: Accelerator) -> float | None:
    """A lower bound on time to first token at the plan's concurrency, from memory bandwidth.

    One engine step at the planned batch reads the weight shard and the batch's KV cache (each
    sequence halfway to maxModelLen on average); a new request waits at least one such step for
    its first token. Compute, queueing and the prompt's own prefill only add to it, so a pool
    whose floor misses the SLO can never meet it. None without a published bandwidth.
    """
    bandwidth = accelerator.memory_bandwidth_bytes_per_second
    if bandwidth is None or not plan.fits:
        return None
    memory = plan.memory_per_accelerator
    batch = decode_batch(plan.max_concurrent_sequences)
    read = memory.weights_bytes + batch * (plan.max_model_len / 2) * memory.kv_cache_bytes_per_token
    return 1000 * read / bandwidth


@dataclass(frozen=True)
class PoolOption:
    """One pool a model may use, with everything the split needs to know about it."""

    pool: str
    plan: Plan
    room: int  # instances the model may have here now, running ones included
    running: int = 0  # instances of the model running here now
    price_per_accelerator_hour: float | None = None
    priority: int = 0
    max_instances: int | None = None
    latency_ms: float | None = None  # measured, or latency_floor_ms; None when unknown
    unusable: str | None = None  # why the caller rules the pool out (unknown tier, ...)

    @property
    def qps_per_instance(self) -> float:
        return self.plan.qps_per_instance or 0.0

    @property
    def cost_per_instance_hour(self) -> float | None:
        if self.price_per_accelerator_hour is None:
            return None
        return self.price_per_accelerator_hour * self.plan.accelerators_per_instance

    @property
    def cost_per_qps_hour(self) -> float | None:
        cost = self.cost_per_instance_hour
        if cost is None or self.qps_per_instance <= 0:
            return None
        return cost / self.qps_per_instance


@dataclass(frozen=True)
class PoolShare:
    pool: str
    accelerator: str
    tensor_parallel: int
    instances: int
    qps: float
    cost_per_hour: float | None

    def status(self) -> PoolPlacement:
        return PoolPlacement(
            pool=self.pool,
            accelerator=self.accelerator,
            tensor_parallel=self.tensor_parallel,
            instances=self.instances,
            qps=round(self.qps, 3),
            cost_per_hour=None if self.cost_per_hour is None else round(self.cost_per_hour, 4),
        )


@dataclass(frozen=True)
class CrossPoolPlacement:
    """How a model's instances split over its pools, and why."""

    shares: tuple[PoolShare, ...]  # in rank order, pools with zero instances included
    skipped: tuple[tuple[str, str], ...]  # (pool, why)
    demand_qps: float
    unmet_qps: float
    reason: PlacementReason
    message: str
    ranked: tuple[str, ...] = field(default=())

    @property
    def instances(self) -> dict[str, int]:
        return {s.pool: s.instances for s in self.shares}

    @property
    def cost_per_hour(self) -> float | None:
        costs = [s.cost_per_hour for s in self.shares if s.instances]
        if any(c is None for c in costs):
            return None
        return sum(c for c in costs if c is not None)


def why_unusable(option: PoolOption, latency_slo_ms: float | None) -> str | None:
    """Why the pool cannot serve the model, or None."""
    if option.unusable:
        return option.unusable
    if not option.plan.fits:
        return f"the model does not fit {option.plan.accelerator}: {option.plan.reason}"
    if option.qps_per_instance <= 0:
        return "its QPS per instance is unknown"
    if latency_slo_ms is not None and option.latency_ms is not None and option.latency_ms > latency_slo_ms:
        return f"its latency of at least {option.latency_ms:,.0f} ms exceeds the {latency_slo_ms:,.0f} ms SLO"
    return None


def rank_key(option: PoolOption) -> tuple[int, bool, float, str]:
    cost = option.cost_per_qps_hour
    return (-option.priority, cost is None, cost if cost is not None else 0.0, option.pool)


def _needed(remaining: float, qps: float) -> int:
    return max(0, math.ceil(round(remaining / qps, _RATIO_DECIMALS)))


def place_across_pools(
    options: Sequence[PoolOption],
    demand_qps: float,
    *,
    latency_slo_ms: float | None = None,
    min_instances: int = 0,
    hysteresis: int = DEFAULT_HYSTERESIS_INSTANCES,
) -> CrossPoolPlacement:
    """Split `demand_qps` (peak with headroom) over the pools, as the module docstring describes.

    `min_instances` keeps at least that many instances in all (e.g. minReplicas), on the
    best-ranked pools with room.
    """
    if demand_qps < 0 or min_instances < 0 or hysteresis < 0:
        raise ValueError("demand, min_instances and hysteresis cannot be negative")
    names = [o.pool for o in options]
    if len(set(names)) != len(names):
        raise ValueError(f"pools must be distinct: {names}")
    skipped = []
    usable = []
    for option in options:
        why = why_unusable(option, latency_slo_ms)
        if why is None:
            usable.append(option)
        else:
            skipped.append((option.pool, why))
    ranked = sorted(usable, key=rank_key)

    counts: list[int] = []
    rooms: list[int] = []
    remaining = demand_qps
    for position, option in enumerate(ranked):
        room = max(0, option.room)
        if option.max_instances is not None:
            room = min(room, option.max_instances)
        if any(o.running > 0 for o in ranked[position + 1 :]) and room > option.running:
            room = max(option.running, room - hysteresis)
        rooms.append(room)
        count = min(room, _needed(remaining, option.qps_per_instance)) if remaining > 0 else 0
        counts.append(count)
        remaining = max(0.0, remaining - count * option.qps_per_instance)
    for position in range(len(ranked)):
        short = min_instances - sum(counts)
        if short <= 0:
            break
        counts[position] += max(0, min(short, rooms[position] - counts[position]))

    shares = tuple(
        PoolShare(
            pool=o.pool,
            accelerator=o.plan.accelerator,
            tensor_parallel=o.plan.tensor_parallel,
            instances=n,
            qps=n * o.qps_per_instance,
            cost_per_hour=None if o.cost_per_instance_hour is None else n * o.cost_per_instance_hour,
        )
        for o, n in zip(ranked, counts, strict=True)
    )
    unmet = remaining if remaining > 1e-9 else 0.0
    placed = [s for s in shares if s.instances]
    overflowed = any(s.instances for s in shares[1:])
    if unmet > 0 or (min_instances and sum(counts) < min_instances):
        reason = PlacementReason.INSUFFICIENT_CAPACITY
    elif overflowed:
        reason = PlacementReason.OVERFLOWED
    else:
        reason = PlacementReason.PLACED
    parts = [
        f"{s.pool}: {plural(s.instances, 'instance')} of TP {s.tensor_parallel} ({s.qps:,.2f} QPS)"
        for s in placed
    ]
    message = f"{demand_qps:,.2f} QPS with headroom" + (
        f" on {'; '.join(parts)}" if parts else ", nothing placed"
    )
    if overflowed and ranked:
        message += f"; {ranked[0].pool}, the first choice, has room for {rooms[0]}"
    if unmet > 0:
        message += f"; {unmet:,.2f} QPS unmet: no allowed pool has room"
    if skipped:
        message += "; skipped " + "; ".join(f"{pool} ({why})" for pool, why in skipped)
    return CrossPoolPlacement(
        shares=shares,
        skipped=tuple(skipped),
        demand_qps=demand_qps,
        unmet_qps=unmet,
        reason=reason,
        message=message,
        ranked=tuple(o.pool for o in ranked),
    )
