"""Tier caps and the borrowing rule, on the default tiers (P0 40%, P1 30%, P2 30% preemptible)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from placement_fixtures import make_pool, node, pod

from gpupool.api.v1alpha1 import Tier
from gpupool.placement import InstanceRequest, PlacementReason, PoolState, account_pool, tier_cap, tier_room

POOL = make_pool()
NODES = [node(f"n{i}") for i in range(10)]  # 80 accelerators: P0 32, P1 24, P2 24, none unreserved


def state(
    *claims: tuple[str, str, int], unmanaged: int = 0, pool: Any = POOL, nodes: Any = NODES
) -> PoolState:
    """Pending pods (tier, workload, accelerators); tier caps count pending and bound alike."""
    pods = [
        pod(f"{workload}-{i}", count, model=workload, tier=tier, namespace="ns")
        for i, (tier, workload, count) in enumerate(claims)
    ]
    if unmanaged:
        pods.append(pod("outsider", unmanaged, node_name="n0", pool=None, model=None, tier=None))
    return account_pool(pool, nodes, pods)


def ask(tier: str, instances: int, tp: int = 4, workload: str = "new") -> InstanceRequest:
    return InstanceRequest(
        workload=f"ns/{workload}", namespace="ns", tier=tier, tensor_parallel=tp, instances=instances
    )


def test_an_empty_pool_gives_each_tier_its_reserve_and_what_it_may_borrow() -> None:
    empty = state()
    assert (empty.total, [empty.reserved(t) for t in empty.tiers], empty.unreserved) == (80, [32, 24, 24], 0)
    # P0: its 32, nothing to borrow (it never borrows from lower tiers).
    assert tier_cap(empty, ask("P0", 20)).allowed == 8
    # P1: its 24 plus P0's 32 idle.
    assert tier_cap(empty, ask("P1", 20)).allowed == 14
    # P2: anything idle, the whole pool.
    assert tier_cap(empty, ask("P2", 50, tp=2)).allowed == 40


def test_p1_borrows_only_the_part_of_p0s_reserve_that_p0_leaves_idle() -> None:
    assert tier_room(state(("P0", "chat", 20)), "P1").room == 24 + 12
    full = state(("P0", "chat", 32))
    assert tier_room(full, "P1").room == 24
    assert tier_room(full, "P1").borrowable == 0
    # P0 over its reserve (possible only outside gpupool's caps) leaves P1 its own reserve.
    assert tier_room(state(("P0", "chat", 40)), "P1").entitlement == 24


def test_p0_takes_its_reserve_back_from_a_borrowing_p1() -> None:
    borrowed = state(("P1", "batch", 40))  # 16 of P0's reserve
    assert tier_cap(borrowed, ask("P0", 8)).allowed == 8
    # ... and P1's borrowing shrinks as P0 grows: the operator then scales P1 back.
    after = state(("P1", "batch", 40), ("P0", "chat", 32))
    assert tier_cap(after, ask("P1", 10, workload="batch")).allowed == 6


def test_p0_never_borrows_p1s_idle_reserve() -> None:
    assert tier_room(state(), "P0").entitlement == 32


def test_p2_uses_idle_capacity_and_keeps_its_reserve_when_the_others_are_full() -> None:
    assert tier_room(state(("P0", "chat", 10)), "P2").room == 70
    assert tier_room(state(("P0", "chat", 32), ("P1", "rag", 24)), "P2").room == 24
    # P0 and P1 cannot grow into P2's reserve: their shares end at 32 + 24.
    busy = state(("P0", "chat", 32), ("P1", "rag", 24), ("P2", "batch", 24))
    assert tier_room(busy, "P0").room == 0
    assert tier_room(busy, "P1").room == 0


def test_a_workloads_own_pods_do_not_count_against_it() -> None:
    held = state(("P0", "chat", 16), ("P0", "chat", 16))
    assert tier_cap(held, ask("P0", 8, workload="chat")).allowed == 8
    assert tier_cap(held, ask("P0", 8, workload="other")).allowed == 0


def test_pods_outside_gpupool_limit_what_any_tier_can_reach() -> None:
    crowded = state(
        unmanaged=8, nodes=[node("n0", 8), node("n1", 8), node("n2", 8), node("n3", 8), node("n4", 8)]
    )
    # 40 accelerators: P0 16; but only 32 are reachable, which does not bind P0.
    assert tier_room(crowded, "P0").room == 16
    packed = state(
        ("P1", "rag", 24),
        unmanaged=8,
        nodes=[node("n0", 8), node("n1", 8), node("n2", 8), node("n3", 8), node("n4", 8)],
    )
    # P1 holds 24 of 40 with 8 outside gpupool: P2 may use what is left, 8.
    room = tier_room(packed, "P2")
    assert room.room == 8
    cap = tier_cap(packed, ask("P2", 4, tp=4))
    assert cap.allowed == 2 and cap.reason is PlacementReason.TIER_CAPPED


def test_equal_priority_tiers_share_the_unreserved_rest_but_lend_nothing() -> None:
    pool = make_pool(
        tiers=[
            Tier(name="A", priority=10, reserved_percent=40).to_wire(),
            Tier(name="B", priority=10, reserved_percent=40).to_wire(),
        ]
    )
    # 80 accelerators: A 32, B 32, 16 unreserved; A holds 40, 8 of them unreserved.
    room = tier_room(state(("A", "x", 40), pool=pool), "B")
    assert (room.reserve, room.unreserved_left, room.borrowable, room.entitlement) == (32, 8, 0, 40)


def test_the_refusal_names_the_numbers_and_who_uses_the_tier() -> None:
    cap = tier_cap(state(("P0", "chat", 20), ("P1", "rag", 28)), ask("P1", 4, tp=4))
    assert cap.capped and cap.reason is PlacementReason.TIER_CAPPED
    # P1: its 24 plus 12 of P0's idle reserve = 36; rag holds 28, leaving 8: 2 of 4 instances.
    assert cap.allowed == 2
    for fragment in (
        "may hold 36",
        "its reserve of 24",
        "12 borrowed from the idle reserve of P0",
        "ns/rag 28",
        "leaving 8 accelerators",
        "2 of the 4 instances of 4 accelerators",
    ):
        assert fragment in cap.message, (fragment, cap.message)


# --------------------------------------------------------------------------------------------------
# Properties

TIERS = ["P0", "P1", "P2"]
claims_strategy = st.lists(
    st.tuples(
        st.sampled_from(TIERS), st.sampled_from(["w1", "w2", "w3", "w4"]), st.sampled_from([1, 2, 4, 8])
    ),
    max_size=16,
)


@settings(max_examples=200, deadline=None)
@given(
    claims_strategy,
    st.sampled_from(TIERS),
    st.sampled_from([1, 2, 4, 8]),
    st.integers(0, 40),
    st.sampled_from([0, 4, 8]),
    st.sampled_from(["w1", "new"]),
)
def test_a_cap_never_exceeds_the_tiers_share_nor_the_pool(
    claims: list[tuple[str, str, int]], tier: str, tp: int, asked: int, unmanaged: int, workload: str
) -> None:
    s = state(*claims, unmanaged=unmanaged)
    request = ask(tier, asked, tp=tp, workload=workload)
    cap = tier_cap(s, request)
    use = {
        t: sum(c.accelerators for c in s.claims if c.tier == t and c.workload != request.workload)
        for t in TIERS
    }
    granted = cap.allowed * tp
    assert 0 <= cap.allowed <= asked
    policy = {t.name: t for t in s.tiers}
    unreachable = s.unmanaged + sum(
        use[t] for t in TIERS if t != tier and policy[t].priority >= policy[tier].priority
    )
    if granted == 0:
        return  # the state may already be over any share (pods made outside gpupool's caps)
    assert use[tier] + granted <= s.total - unreachable  # never beyond the pool
    if policy[tier].preemptible:
        assert granted + sum(use.values()) + s.unmanaged <= s.total
    else:
        lenders = [
            t for t in TIERS if not policy[t].preemptible and policy[t].priority > policy[tier].priority
        ]
        # Never beyond its reserve, the unreserved rest and its lenders' reserves.
        share = s.reserved(policy[tier]) + s.unreserved + sum(s.reserved(policy[t]) for t in lenders)
        assert use[tier] + granted <= share


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(TIERS), st.sampled_from([1, 2, 4, 8]), st.integers(0, 30)),
        min_size=1,
        max_size=8,
    )
)
def test_models_settle_within_their_tiers_and_leave_lower_reserves_alone(
    asks: list[tuple[str, int, int]],
) -> None:
    """Every model repeatedly takes what its cap allows; the pool settles, and at rest the
    non-preemptible tiers hold no more than their reserves plus the unreserved rest."""
    held: dict[str, tuple[str, int, int]] = {}  # workload -> (tier, tp, instances)
    for _ in range(len(asks) + 2):
        changed = False
        for index, (tier, tp, instances) in enumerate(asks):
            name = f"w{index}"
            current = state(*[(t, w, n * p) for w, (t, p, n) in held.items() if n])
            allowed = tier_cap(current, ask(tier, instances, tp=tp, workload=name)).allowed
            if held.get(name, (tier, tp, 0))[2] != allowed:
                held[name] = (tier, tp, allowed)
                changed = True
        if not changed:
            break
    assert not changed, "caps did not settle"
    final = state(*[(t, w, n * p) for w, (t, p, n) in held.items() if n])
    use = {t.name: t.used for t in final.tier_accounts()}
    reserve = {t.name: t.reserved for t in final.tier_accounts()}
    assert sum(use.values()) <= final.total
    assert use["P0"] <= reserve["P0"] + final.unreserved
    assert use["P0"] + use["P1"] <= reserve["P0"] + reserve["P1"] + final.unreserved
