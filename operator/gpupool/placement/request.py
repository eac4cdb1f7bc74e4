"""What a model asks of a pool, what a limit allows it, and the reasons a refusal gives."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gpupool.api.tenancy import LimitKind, PlacementLimit


class PlacementReason(StrEnum):
    """CamelCase condition reasons of placement; each names a situation someone can act on."""

    # Every desired instance has room on the model's first-choice pools.
    PLACED = "Placed"
    # The tier's share of the pool (reserve, unreserved rest, borrowable idle reserve) is used up.
    TIER_CAPPED = "TierCapped"
    # The tenant's maxAccelerators or maxAcceleratorMemory is used up.
    QUOTA_EXCEEDED = "QuotaExceeded"
    # The pool's free accelerators (on one node each instance) do not hold the instances.
    INSUFFICIENT_CAPACITY = "InsufficientCapacity"
    # Some instances run on a less preferred pool because the preferred ones are full.
    OVERFLOWED = "Overflowed"
    # The scheduler evicted instances of the model for a higher tier.
    PREEMPTED = "Preempted"
    # A pool the model allows cannot serve it (does not fit, misses the SLO, unknown tier).
    POOL_SKIPPED = "PoolSkipped"


@dataclass(frozen=True)
class InstanceRequest:
    """A model's ask of one pool: `instances` instances of `tensor_parallel` accelerators.

    An instance over several nodes (a LeaderWorkerSet group) counts as one instance of all its
    accelerators: `tensor_parallel` is the group's total, split evenly over `nodes_per_instance`
    pods on as many nodes.
    """

    workload: str  # workload_key(namespace, name): its own pods do not count against it
    namespace: str
    tier: str
    tensor_parallel: int
    instances: int
    nodes_per_instance: int = 1

    def __post_init__(self) -> None:
        if self.tensor_parallel < 1:
            raise ValueError(f"tensor_parallel must be at least 1, got {self.tensor_parallel}")
        if self.instances < 0:
            raise ValueError(f"instances cannot be negative, got {self.instances}")
        if self.nodes_per_instance < 1 or self.tensor_parallel % self.nodes_per_instance:
            raise ValueError(
                f"{self.tensor_parallel} accelerators do not split over {self.nodes_per_instance} nodes"
            )

    @property
    def per_pod(self) -> int:
        """Accelerators one pod of an instance holds (all of them on one node)."""
        return self.tensor_parallel // self.nodes_per_instance

    @property
    def accelerators(self) -> int:
        return self.instances * self.tensor_parallel


@dataclass(frozen=True)
class Cap:
    """What one limit allows a request: at most `allowed` of the `asked` instances."""

    kind: LimitKind
    pool: str
    asked: int
    allowed: int
    room: int  # accelerators the limit leaves the workload
    message: str

    @property
    def capped(self) -> bool:
        return self.allowed < self.asked

    @property
    def reason(self) -> PlacementReason | None:
        if not self.capped:
            return None
        return {
            LimitKind.TIER: PlacementReason.TIER_CAPPED,
            LimitKind.TENANT: PlacementReason.QUOTA_EXCEEDED,
            LimitKind.POOL: PlacementReason.INSUFFICIENT_CAPACITY,
            LimitKind.PREFERENCE: PlacementReason.OVERFLOWED,
        }[self.kind]

    def status(self) -> PlacementLimit:
        return PlacementLimit(
            pool=self.pool, kind=self.kind, asked=self.asked, allowed=self.allowed, message=self.message
        )


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def instances_of(count: int, tensor_parallel: int) -> str:
    return f"{plural(count, 'instance')} of {plural(tensor_parallel, 'accelerator')}"


def who(users: list[tuple[str, int]], limit: int = 3) -> str:
    """ "a/x 16, b/y 8 and 2 more" for explanations."""
    if not users:
        return "nobody"
    shown = ", ".join(f"{name} {count}" for name, count in users[:limit])
    rest = len(users) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown
