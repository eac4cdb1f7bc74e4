"""How many instances, nodes and accelerators a load needs, what they cost, and how long they
take to start."""

from __future__ import annotations

import math

# Ratios are rounded to this many decimals before ceil(), so that 10 x 1.2 / 6 (which floating
# point makes 2.0000000000000004) needs 2 instances, not 3.
_RATIO_DECIMALS = 9
# Beyond this a float no longer holds every whole number: the count is an error, not a plan.
_MAX_INSTANCES = 2**53


def plan_instances(peak_qps: float, qps_per_instance: float, headroom: float) -> int:
    """ceil(peak_qps x (1 + headroom) / qps_per_instance), and at least one instance."""
    if qps_per_instance <= 0:
        raise ValueError(f"qps_per_instance must be positive, got {qps_per_instance}")
    if peak_qps < 0 or headroom < 0:
        raise ValueError("peak_qps and headroom cannot be negative")
    needed = peak_qps * (1 + headroom) / qps_per_instance
    if not math.isfinite(needed) or needed > _MAX_INSTANCES:
        # ceil() of infinity raises; a count this large is a typo, never a plan.
        raise OverflowError(
            f"{peak_qps:g} QPS with {headroom:.0%} headroom at {qps_per_instance:g} QPS per instance "
            f"needs more than {_MAX_INSTANCES:,} instances"
        )
    return max(1, math.ceil(round(needed, _RATIO_DECIMALS)))


def instances_per_node(accelerators_per_node: int, tensor_parallel: int) -> int:
    """Instances a node fits: tensor-parallel groups never straddle nodes."""
    return accelerators_per_node // tensor_parallel


def nodes_needed(instances: int, accelerators_per_node: int, tensor_parallel: int) -> int:
    """Nodes for `instances` instances of `tensor_parallel` accelerators each."""
    per_node = instances_per_node(accelerators_per_node, tensor_parallel)
    if per_node < 1:
        raise ValueError(
            f"a tensor-parallel group of {tensor_parallel} does not fit a node of "
            f"{accelerators_per_node} accelerators"
        )
    return math.ceil(instances / per_node)


def cost_per_hour(
    instances: int, tensor_parallel: int, price_per_accelerator_hour: float | None
) -> float | None:
    """instances x tensor_parallel x price, or None when no price is known."""
    if price_per_accelerator_hour is None:
        return None
    return instances * tensor_parallel * price_per_accelerator_hour


def load_time_seconds(
    weights_bytes: int, weight_load_bytes_per_second: int, engine_start_seconds: int
) -> int:
    """Seconds from container start to serving: engine start plus reading all the weights."""
    return engine_start_seconds + math.ceil(weights_bytes / weight_load_bytes_per_second)
