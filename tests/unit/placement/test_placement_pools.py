"""Splitting a model over several pools: ranking, overflow, the way back, and skipped pools."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.catalog.accelerators import get_accelerator
from gpupool.catalog.models import get_model
from gpupool.placement import PlacementReason, PoolOption, latency_floor_ms, place_across_pools
from gpupool.sizing import Plan, SizingRequest, plan_deployment


@cache
def plan(
    accelerator: str, model: str = "llama-3.1-70b", qps: float | None = None, nodes: int | None = None
) -> Plan:
    return plan_deployment(
        get_model(model).architecture,
        get_accelerator(accelerator),
        SizingRequest(max_model_len=8192, peak_qps=20, qps_per_instance=qps, max_nodes_per_instance=nodes),
        model_name=model,
    )


def nvidia(room: int, running: int = 0, priority: int = 0, max_instances: int | None = None) -> PoolOption:
    """H100, TP 4 at 10 QPS each, 3.0 per accelerator-hour: 12 per instance-hour."""
    return PoolOption(
        "h100",
        plan("H100-80GB", qps=10),
        room=room,
        running=running,
        priority=priority,
        max_instances=max_instances,
        price_per_accelerator_hour=3.0,
    )


def ascend(room: int, running: int = 0) -> PoolOption:
    """910B, TP 4 at 4 QPS each, 1.0 per accelerator-hour: 4 per instance-hour."""
    return PoolOption(
        "ascend", plan("Ascend910B", qps=4), room=room, running=running, price_per_accelerator_hour=1.0
    )


def test_the_cheapest_per_request_comes_first_not_the_cheapest_instance() -> None:
    # H100: 4 x 3.0 = 12/h for 10 QPS (1.2 per QPS-hour); 910B: 4 x 1.0 = 4/h for 4 QPS (1.0).
    result = place_across_pools([nvidia(10), ascend(10)], 20)
    assert result.ranked == ("ascend", "h100")
    assert result.instances == {"ascend": 5, "h100": 0}
    assert result.reason is PlacementReason.PLACED
    # A dearer Ascend price flips the order: 4 x 1.5 / 4 = 1.5 per QPS-hour.
    dear = PoolOption("ascend", plan("Ascend910B", qps=4), room=10, price_per_accelerator_hour=1.5)
    assert place_across_pools([nvidia(10), dear], 20).ranked == ("h100", "ascend")


def test_priority_overrides_cost_and_overflow_goes_to_the_next_pool() -> None:
    result = place_across_pools([nvidia(1, priority=1), ascend(10)], 20)
    assert result.ranked == ("h100", "ascend")
    # h100 has room for 1 instance (10 QPS); the other 10 QPS need 3 Ascend instances of 4 QPS.
    assert result.instances == {"h100": 1, "ascend": 3}
    assert result.reason is PlacementReason.OVERFLOWED
    assert result.cost_per_hour == 12 + 12
    assert "h100, the first choice, has room for 1" in result.message


def test_unmet_demand_is_reported() -> None:
    result = place_across_pools([nvidia(1, priority=1), ascend(1)], 30)
    assert result.instances == {"h100": 1, "ascend": 1}
    assert result.unmet_qps == 16
    assert result.reason is PlacementReason.INSUFFICIENT_CAPACITY
    assert "16.00 QPS unmet" in result.message


def test_instances_come_back_only_when_the_preferred_pool_has_room_to_spare() -> None:
    # Overflowed: 2 on h100 (full), 1 on ascend... (10 + 10 + 4 QPS for 24).
    start = place_across_pools([nvidia(2, priority=1), ascend(10)], 24)
    assert start.instances == {"h100": 2, "ascend": 1}
    # One slot frees up on h100: not enough to move back with a margin of one.
    one = place_across_pools([nvidia(3, running=2, priority=1), ascend(10, running=1)], 24)
    assert one.instances == {"h100": 2, "ascend": 1}
    # Two free: one instance moves back and one slot stays spare.
    two = place_across_pools([nvidia(4, running=2, priority=1), ascend(10, running=1)], 24)
    assert two.instances == {"h100": 3, "ascend": 0}
    # Without hysteresis it would have moved on the first free slot.
    assert place_across_pools(
        [nvidia(3, running=2, priority=1), ascend(10, running=1)], 24, hysteresis=0
    ).instances == {
        "h100": 3,
        "ascend": 0,
    }


def test_pools_that_cannot_serve_are_skipped_with_the_reason() -> None:
    too_big = PoolOption(
        "l4", plan("L4-24GB", model="llama-3.1-405b", nodes=2), room=10, price_per_accelerator_hour=0.5
    )
    slow = PoolOption(
        "a100", plan("A100-80GB", qps=10), room=10, price_per_accelerator_hour=0.1, latency_ms=900
    )
    wrong_tier = PoolOption("h200", plan("H200-141GB", qps=10), room=10, unusable="pool h200 has no tier P0")
    result = place_across_pools([too_big, slow, wrong_tier, nvidia(10)], 10, latency_slo_ms=500)
    assert result.instances == {"h100": 1}
    skipped = dict(result.skipped)
    assert "does not fit" in skipped["l4"]
    assert "900 ms exceeds the 500 ms SLO" in skipped["a100"]
    assert skipped["h200"] == "pool h200 has no tier P0"


def test_max_instances_and_min_instances() -> None:
    capped = place_across_pools([nvidia(10, priority=1, max_instances=1), ascend(10)], 20)
    assert capped.instances == {"h100": 1, "ascend": 3}
    idle = place_across_pools([nvidia(10), ascend(10)], 0, min_instances=1)
    assert idle.instances == {"ascend": 1, "h100": 0}


def test_the_latency_floor_is_one_full_batch_step_from_memory_bandwidth() -> None:
    h100 = plan("H100-80GB")
    floor = latency_floor_ms(h100, get_accelerator("H100-80GB"))
    assert floor is not None
    memory = h100.memory_per_accelerator
    weights_only = 1000 * memory.weights_bytes / 3.35e12
    assert weights_only < floor < 500  # a 70B shard at 3.35 TB/s: milliseconds, far below the SLO


# --------------------------------------------------------------------------------------------------
# Properties

option_args = st.tuples(
    st.integers(0, 12), st.integers(0, 6), st.integers(-1, 1), st.sampled_from([1.0, 2.0, 3.0, None])
)


def options_from(args: list[tuple[int, int, int, float | None]]) -> list[PoolOption]:
    accelerators = ["H100-80GB", "Ascend910B", "A100-80GB", "H200-141GB"]
    return [
        PoolOption(
            f"pool-{i}",
            plan(accelerators[i], qps=3.0 + 2 * i),
            room=room,
            running=min(running, room),
            priority=priority,
            price_per_accelerator_hour=price,
        )
        for i, (room, running, priority, price) in enumerate(args)
    ]


@settings(max_examples=150, deadline=None)
@given(st.lists(option_args, min_size=1, max_size=4), st.floats(0, 80), st.permutations(range(4)))
def test_placement_is_deterministic_bounded_and_settles(
    args: list[tuple[int, int, int, float | None]], demand: float, order: list[int]
) -> None:
    options = options_from(args)
    result = place_across_pools(options, demand)
    shuffled = [options[i] for i in order if i < len(options)]
    assert place_across_pools(shuffled, demand) == result
    by_pool = {o.pool: o for o in options}
    for share in result.shares:
        assert 0 <= share.instances <= by_pool[share.pool].room
    served = sum(s.qps for s in result.shares)
    assert served + result.unmet_qps >= demand - 1e-6
    # Once the instances run where they were placed, the next pass changes nothing.
    settled = [
        PoolOption(
            o.pool,
            o.plan,
            room=o.room,
            running=result.instances[o.pool],
            priority=o.priority,
            price_per_accelerator_hour=o.price_per_accelerator_hour,
        )
        for o in options
    ]
    again = place_across_pools(settled, demand)
    assert again.instances == result.instances
