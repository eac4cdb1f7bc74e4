"""Tier caps: how much of a pool each priority tier may hold, and the borrowing rule.

Notation, in accelerators of one pool: T is the pool's schedulable total; R(t) = floor(T x
reservedPercent(t) / 100) is tier t's reserve; U = T - sum of R is the unreserved rest; use(t) is
what tier t's pods request, bound and pending.

The rule follows from one principle: a tier may use capacity it does not own only when the owner
can take it back by preemption. The scheduler lets a pod preempt pods of strictly lower priority
(preemptible tiers have preemptionPolicy Never and preempt nobody). So:

- A non-preemptible tier t may hold
      R(t) + max(0, U - excess of higher and equal tiers) + idle reserve of higher tiers,
  where a tier's excess is max(0, use - R) and its idle reserve max(0, R - use), counted over the
  non-preemptible tiers of strictly higher priority (equal priority: peers, whose excess only uses
  up U). With the defaults: P0 may hold its 40% plus the unreserved rest; P1 its 30%, the rest P0
  leaves of U, and every accelerator of P0's reserve P0 does not use. P1 never borrows from P2
  and P0 never borrows from P1: neither lender could preempt the borrower to get it back. Lower
  tiers' use is ignored: t preempts whatever of theirs stands in its way, and the bound above keeps
  t out of their reserves.
- A preemptible tier may hold whatever nobody else holds, except the idle reserve of other
  preemptible tiers (they could not take it back): T - unmanaged - use of every other tier -
  idle reserve of other preemptible tiers. Its own reserve stays safe because the non-preemptible
  tiers' bounds leave it out; everything above it is lent, and the scheduler evicts it first.
- In every case the tier also cannot hold more than is physically there: T minus what pods
  outside gpupool hold and what tiers it cannot preempt (equal or higher priority) use.

A workload's own pods never count against it, so a model keeps what it holds while its share
allows, and its cap is the room left by everyone else.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.api.tenancy import LimitKind
from gpupool.api.v1alpha1 import Tier
from gpupool.placement.accounting import Claim, PoolState
from gpupool.placement.request import Cap, InstanceRequest, instances_of, plural, who


@dataclass(frozen=True)
class TierRoom:
    """The numbers behind a tier's cap, for one workload of the tier."""

    tier: str
    preemptible: bool
    total: int
    reserve: int
    unreserved_left: int  # U left after higher and equal tiers' excess (non-preemptible tiers)
    borrowable: int  # idle reserve of higher non-preemptible tiers (non-preemptible tiers)
    entitlement: int  # the most the tier may hold
    physical: int  # the most the tier can reach: T - unmanaged - tiers it cannot preempt
    others: int  # what the tier's other workloads use
    room: int  # accelerators left to the workload
    lenders: tuple[str, ...]  # tiers whose idle reserve is borrowable
    blockers: tuple[tuple[str, int], ...]  # (tier or "outside gpupool", use) it cannot preempt


def _use(state: PoolState, tier: str, exclude: str | None) -> int:
    return state.tier_use(tier, exclude)


def tier_room(state: PoolState, tier_name: str, exclude_workload: str | None = None) -> TierRoom:
    """The room tier `tier_name` leaves a workload (`exclude_workload`'s own pods do not count)."""
    tier = state.tier(tier_name)
    if tier is None:
        raise ValueError(f"pool {state.pool} has no tier {tier_name!r}")
    use = {t.name: _use(state, t.name, exclude_workload) for t in state.tiers}
    reserve = {t.name: state.reserved(t) for t in state.tiers}
    others = use[tier.name]
    unmanaged = state.unmanaged
    total = state.total
    blockers: list[tuple[str, int]] = []
    if unmanaged:
        blockers.append(("outside gpupool", unmanaged))

    if tier.preemptible:
        rivals = [t for t in state.tiers if t.name != tier.name]
        held = sum(use[t.name] for t in rivals)
        idle_preemptible = sum(max(0, reserve[t.name] - use[t.name]) for t in rivals if t.preemptible)
        entitlement = max(0, total - unmanaged - held - idle_preemptible)
        blockers += [(t.name, use[t.name]) for t in rivals if use[t.name]]
        physical = max(0, total - unmanaged - held)
        return TierRoom(
            tier=tier.name,
            preemptible=True,
            total=total,
            reserve=reserve[tier.name],
            unreserved_left=0,
            borrowable=0,
            entitlement=entitlement,
            physical=physical,
            others=others,
            room=max(0, min(entitlement, physical) - others),
            lenders=(),
            blockers=tuple(blockers),
        )

    guaranteed = [t for t in state.tiers if not t.preemptible and t.name != tier.name]
    higher = [t for t in guaranteed if t.priority > tier.priority]
    peers = [t for t in guaranteed if t.priority == tier.priority]
    excess = sum(max(0, use[t.name] - reserve[t.name]) for t in higher + peers)
    unreserved_left = max(0, state.unreserved - excess)
    lenders = [t for t in higher if reserve[t.name] > use[t.name]]
    borrowable = sum(reserve[t.name] - use[t.name] for t in lenders)
    entitlement = reserve[tier.name] + unreserved_left + borrowable
    unpreemptible = [t for t in state.tiers if t.name != tier.name and t.priority >= tier.priority]
    blockers += [(t.name, use[t.name]) for t in unpreemptible if use[t.name]]
    physical = max(0, total - unmanaged - sum(use[t.name] for t in unpreemptible))
    return TierRoom(
        tier=tier.name,
        preemptible=False,
        total=total,
        reserve=reserve[tier.name],
        unreserved_left=unreserved_left,
        borrowable=borrowable,
        entitlement=entitlement,
        physical=physical,
        others=others,
        room=max(0, min(entitlement, physical) - others),
        lenders=tuple(t.name for t in lenders),
        blockers=tuple(blockers),
    )


def _tier_users(state: PoolState, tier: Tier, exclude: str) -> list[tuple[str, int]]:
    claims: list[Claim] = [c for c in state.claims_by_tier.get(tier.name, ()) if c.workload != exclude]
    return state.users(claims)


def tier_cap(state: PoolState, request: InstanceRequest) -> Cap:
    """At most how many of the requested instances the tier's share allows, and why."""
    room = tier_room(state, request.tier, request.workload)
    allowed = min(request.instances, room.room // request.tensor_parallel)
    tier = state.tier(request.tier)
    assert tier is not None  # tier_room raised otherwise
    if room.preemptible:
        share = (
            f"tier {room.tier} of pool {state.pool} is preemptible: of the pool's "
            f"{plural(room.total, 'accelerator')} it may use the {room.entitlement} that no other tier, "
            "pod or idle preemptible reserve holds, and is the first the scheduler evicts when a "
            "higher tier needs them"
        )
    else:
        parts = [f"its reserve of {room.reserve}"]
        if room.unreserved_left:
            parts.append(f"{room.unreserved_left} unreserved")
        if room.borrowable:
            parts.append(
                f"{room.borrowable} borrowed from the idle reserve of {' and '.join(room.lenders)} "
                "(taken back by preemption when needed)"
            )
        share = (
            f"tier {room.tier} of pool {state.pool} may hold {room.entitlement} of the pool's "
            f"{plural(room.total, 'accelerator')}: {', '.join(parts)}"
        )
    holders = _tier_users(state, tier, request.workload)
    held = f"; the tier's other workloads hold {room.others}" + (f" ({who(holders)})" if holders else "")
    reach = ""
    if room.physical < room.entitlement:
        reach = (
            f"; only {room.physical} are within its reach, the rest being held by "
            + ", ".join(f"{name} {count}" for name, count in room.blockers)
            + (" (equal or higher priority)" if not room.preemptible else "")
        )
    verdict = (
        f", leaving {plural(room.room, 'accelerator')}: {allowed} of the "
        f"{instances_of(request.instances, request.tensor_parallel)} asked fit"
    )
    return Cap(
        kind=LimitKind.TIER,
        pool=state.pool,
        asked=request.instances,
        allowed=allowed,
        room=room.room,
        message=share + held + reach + verdict,
    )
