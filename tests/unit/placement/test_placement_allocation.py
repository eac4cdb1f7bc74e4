"""One allocation per pool: reserves as floors, idle capacity lent in priority order, a fixed point."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from placement_fixtures import make_pool, node

from gpupool.placement import PoolState, account_pool
from gpupool.placement.allocation import (
    MAX_INSTANCES_WITHOUT_NODES,
    Allocation,
    Demand,
    allocate,
    reallocate,
    recount,
)


def pool_of(nodes: int, gpus: int = 8, **spec: Any) -> PoolState:
    pool = make_pool(**spec)
    return account_pool(pool, [node(f"n{i}", gpus) for i in range(nodes)], [], tenants=pool.spec.tenants)


def ask(workload: str, tier: str, instances: int, tp: int = 8, running: int = 0, pending: int = 0) -> Demand:
    return Demand(
        workload=f"ns/{workload}",
        tier=tier,
        tensor_parallel=tp,
        instances=instances,
        running=running,
        pending=pending,
    )


def counts(allocation: Allocation) -> dict[str, int]:
    return {w.removeprefix("ns/"): c for w, c in allocation.counts.items()}


def run(demands: list[Demand], allocation: Allocation) -> list[Demand]:
    """The demands once every allocated instance runs (and the cut ones are gone)."""
    return [replace(d, running=allocation.count(d.workload), pending=0) for d in demands]


def test_three_models_of_one_tier_on_a_pool_smaller_than_their_demand_share_it_and_settle() -> None:
    state = pool_of(12)  # 96 GPUs: P0 38, P1 28, P2 28 reserved, 2 unreserved
    demands = [ask(f"llama-{i}", "P1", 12, tp=4) for i in range(3)]
    first = allocate(state, demands)
    # P1's 28 plus every idle accelerator (nobody else asks): 96 / 4 = 24 instances, 8 each.
    assert counts(first) == {"llama-0": 8, "llama-1": 8, "llama-2": 8}
    again = allocate(state, run(demands, first))
    assert again.counts == first.counts


def test_p0_grows_into_an_idle_pool_then_gives_the_reserves_back() -> None:
    state = pool_of(4)  # 32 GPUs: P0 12, P1 9, P2 9, 2 unreserved
    chat = ask("chat", "P0", 4)
    alone = allocate(state, [chat])
    assert counts(alone) == {"chat": 4}  # all 32, far beyond its reserve of 12
    assert alone.share("P0") is not None and alone.share("P0").borrowed == 20  # type: ignore[union-attr]
    # P1 asks for its reserve: P0 gives back one instance (8 >= P1's 9 - 1 is one instance's rounding).
    chat = replace(chat, running=4)
    rag = ask("rag", "P1", 2, tp=4)
    back = allocate(state, [chat, rag])
    assert counts(back) == {"chat": 3, "rag": 2}
    assert back.reclaims == {"ns/chat": (1, "P1")}
    p1 = back.share("P1")
    assert p1 is not None and p1.reclaimed == (("P0", 8),)
    # Once settled, nothing moves.
    assert allocate(state, run([chat, rag], back)).counts == back.counts


def test_a_borrower_that_runs_keeps_its_instances_until_a_reserve_is_asked_for() -> None:
    state = pool_of(4)
    batch = ask("batch", "P2", 4, running=4)  # all 32, P2's reserve is 9
    # P1 wants to borrow beyond its reserve: it gets idle capacity only, never a running instance.
    rag = ask("rag", "P1", 4, tp=8)
    result = allocate(state, [batch, rag])
    # P1's reserve is 9: one instance of 8 taken back from P2, no more.
    assert counts(result) == {"batch": 3, "rag": 1}


def test_a_tier_that_does_not_reclaim_waits() -> None:
    tiers = [
        {"name": "P0", "priority": 1000, "reservedPercent": 50, "reclaim": False},
        {"name": "P1", "priority": 100, "reservedPercent": 50},
    ]
    state = pool_of(2, tiers=tiers)
    result = allocate(state, [ask("a", "P1", 2, running=2), ask("b", "P0", 1)])
    assert counts(result) == {"a": 2, "b": 0}


def test_a_reserve_that_is_not_lendable_stays_idle_and_a_borrowing_limit_holds() -> None:
    tiers = [
        {"name": "P0", "priority": 1000, "reservedPercent": 50, "lendable": False},
        {"name": "P1", "priority": 100, "reservedPercent": 25, "borrowingLimitPercent": 0},
        {"name": "P2", "priority": 10, "reservedPercent": 0, "preemptible": True},
    ]
    state = pool_of(4, tiers=tiers)  # 32: P0 16 (kept), P1 8 (no borrowing), 8 unreserved
    result = allocate(state, [ask("rag", "P1", 4), ask("batch", "P2", 4)])
    assert counts(result) == {"rag": 1, "batch": 1}
    assert result.idle == 16


def test_lost_capacity_never_cuts_what_runs_on_the_healthy_nodes() -> None:
    # Two of four nodes are gone: 16 GPUs left, each model still runs one instance there.
    state = pool_of(2)
    demands = [ask("a", "P1", 2, running=1), ask("b", "P0", 2, running=1)]
    assert counts(allocate(state, demands)) == {"a": 1, "b": 1}


def test_counts_are_bounded_without_nodes() -> None:
    state = pool_of(0)
    result = allocate(state, [ask("huge", "P1", 10**9, tp=1)])
    assert counts(result) == {"huge": MAX_INSTANCES_WITHOUT_NODES}
    assert not result.bounded


def test_a_tenants_quota_bounds_its_models() -> None:
    tenants = [{"name": "team", "namespaces": ["ns"], "maxAccelerators": 8}]
    state = pool_of(4, tenants=tenants)
    demands = [
        replace(ask("a", "P1", 4, tp=4), tenant="team"),
        replace(ask("b", "P1", 4, tp=4), tenant="team"),
    ]
    result = allocate(state, demands)
    assert sum(result.counts.values()) == 2
    assert result.tenant_capped == frozenset({"ns/a", "ns/b"})


# --------------------------------------------------------------------------------------------------
# Properties over random pools, demands and recount orders

TIERS = ("P0", "P1", "P2")
demand_strategy = st.tuples(
    st.sampled_from(TIERS), st.sampled_from((1, 2, 4, 8)), st.integers(0, 12), st.integers(0, 12)
)


def demands_from(raw: list[tuple[str, int, int, int]]) -> list[Demand]:
    return [ask(f"m{i}", tier, asked, tp=tp, running=0) for i, (tier, tp, asked, _) in enumerate(raw)]


def check_invariants(state: PoolState, demands: list[Demand], result: Allocation) -> None:
    by = {d.workload: d for d in demands}
    held = sum(result.count(w) * d.tensor_parallel for w, d in by.items())
    assert held <= result.capacity  # bounded by the pool
    for workload, demand in by.items():
        assert 0 <= result.count(workload) <= demand.instances
        # Running instances are cut only to give a reserve back.
        if result.count(workload) < min(demand.running, demand.instances):
            assert workload in result.reclaims
    free = result.capacity - held
    for share in result.tiers:
        tier = state.tier(share.name)
        assert tier is not None
        for demand in demands:
            if demand.tier != share.name or result.count(demand.workload) >= demand.instances:
                continue
            # Unmet: no room for one more instance, or the tier's borrowing limit stops it.
            within = share.limit is None or share.allocated + demand.tensor_parallel <= share.limit
            assert free < demand.tensor_parallel or not within


@settings(max_examples=150, deadline=None)
@given(
    nodes=st.integers(1, 8),
    raw=st.lists(demand_strategy, min_size=1, max_size=8),
)
def test_the_allocation_is_a_fixed_point_and_fills_the_pool(nodes: int, raw: list[Any]) -> None:
    state = pool_of(nodes)
    demands = demands_from(raw)
    first = allocate(state, demands)
    check_invariants(state, demands, first)
    settled = run(demands, first)
    second = allocate(state, settled)
    assert second.counts == first.counts
    assert not second.reclaims
    # Pods of the allocation that are created but not bound yet count the same.
    half = [replace(d, running=d.running // 2, pending=d.running - d.running // 2) for d in settled]
    assert allocate(state, half).counts == first.counts


@settings(max_examples=100, deadline=None)
@given(
    nodes=st.integers(1, 8),
    raw=st.lists(demand_strategy, min_size=1, max_size=6),
    steps=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 12)), min_size=1, max_size=8),
)
def test_demand_changes_in_any_order_settle_with_reserves_back_in_one_cycle(
    nodes: int, raw: list[Any], steps: list[tuple[int, int]]
) -> None:
    state = pool_of(nodes)
    demands = demands_from(raw)
    for index, asked in steps:
        target = index % len(demands)
        demands[target] = replace(demands[target], instances=asked)
        result = allocate(state, demands)
        check_invariants(state, demands, result)
        # Every tier with reclaim gets its reserve back in this one pass, to within one instance.
        for share in result.tiers:
            sizes = [d.tensor_parallel for d in demands if d.tier == share.name]
            if sizes:
                floor = min(share.demand, share.reserve)
                assert share.allocated >= floor - (max(sizes) - 1)
        demands = run(demands, result)
        again = allocate(state, demands)
        assert again.counts == result.counts  # a recount that moves nothing changes nothing


@settings(max_examples=150, deadline=None)
@given(
    nodes=st.integers(0, 8),
    raw=st.lists(demand_strategy, min_size=0, max_size=8),
    tier=st.sampled_from((*TIERS, "P9")),
)
def test_a_new_model_that_asks_nothing_changes_no_count_and_costs_no_allocation(
    nodes: int, raw: list[Any], tier: str
) -> None:
    state = pool_of(nodes)
    demands = demands_from(raw)
    held = allocate(state, demands)
    idle = ask("idle", tier, 0)
    again = reallocate(state, held, idle)
    assert again == allocate(state, [*demands, idle])
    assert again.counts == {**held.counts, **({"ns/idle": 0} if tier != "P9" else {})}


def test_a_recount_drops_the_demand_of_a_model_that_is_gone() -> None:
    state = pool_of(2)
    both = allocate(state, [ask("a", "P1", 2), ask("b", "P2", 2)])
    assert counts(both) == {"a": 2, "b": 0}
    after = recount(state, both, ["ns/b"])
    assert after is not None and counts(after) == {"b": 2}


def _claim(name: str, accelerators: int, node_name: str | None) -> Any:
    from gpupool.placement.accounting import Claim

    return Claim("ns", name, accelerators, node_name, "P2", "ns/llama-405b", None)


def test_a_group_runs_only_when_all_its_pods_are_bound() -> None:
    from gpupool.placement.allocation import held_instances

    # A LeaderWorkerSet group of two pods of 8 is one instance of 16 accelerators.
    whole = [_claim("g-0", 8, "n0"), _claim("g-0-1", 8, "n1")]
    assert held_instances(whole, 16) == (1, 0)
    # Half bound (being placed, or taken apart after a preemption): not a running instance.
    half = [_claim("g-0", 8, "n0"), _claim("g-0-1", 8, None)]
    assert held_instances(half, 16) == (0, 1)
    assert held_instances(whole[:1], 16) == (0, 1)
    # One pod per instance: as many instances as pods.
    singles = [_claim("a", 1, "n0"), _claim("b", 1, None), _claim("c", 1, "n1")]
    assert held_instances(singles, 1) == (2, 1)
