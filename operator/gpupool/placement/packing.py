"""Packing instances onto nodes: a best-fit-decreasing heuristic, baselines, and an exact optimum.

An instance of tensor-parallel size tp needs tp free accelerators on one node. Given the free
accelerators of each node and a list of instances, a packing places as many accelerators' worth
of instances as possible and, among packings that place as much, leaves the remainder least
fragmented: the most room for TP=8 instances, then TP=4, then TP=2.

- `pack_best_fit`: instances in decreasing size (ties in input order), each onto the node with
  the fewest free accelerators that still holds it (ties by node order). The operator's rule.
- `pack_first_fit`: instances in input order onto the first node that holds them.
- `pack_most_allocated`: instances in input order onto the tightest node, which is what
  kube-scheduler does when its NodeResourcesFit plugin scores the accelerator resource with
  MostAllocated: best fit, online.
- `pack_spread`: instances in input order onto the node with the most free accelerators, as
  kube-scheduler's default scoring (NodeResourcesFit, LeastAllocated) spreads; the baseline.
- `max_placeable_accelerators`: the most accelerators any packing can place, in closed form.
- `pack_optimal`: the best packing by the objective above, by dynamic programming over nodes
  with the remaining instance counts of each size as the state. Exact; exponential in the number
  of sizes only, so fine for a few hundred instances on tens of nodes, and it refuses (raises
  `SearchTooLarge`) beyond a state budget rather than running for hours.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

# The remainder's quality, best first: room for these sizes after placing.
_LEFTOVER_SIZES = (8, 4, 2)
DEFAULT_STATE_BUDGET = 2_000_000


class SearchTooLarge(Exception):
    """The exact search would visit more states than its budget."""


@dataclass(frozen=True)
class Instance:
    """One instance to place: a name (for the answer) and its tensor-parallel size."""

    key: str
    tensor_parallel: int


@dataclass(frozen=True)
class Packing:
    """Where each placed instance goes, what did not fit, and what is left on each node."""

    placements: tuple[tuple[str, str], ...]  # (instance key, node), in instance order
    unplaced: tuple[str, ...]
    placed_accelerators: int
    free_before: int
    leftover: tuple[tuple[str, int], ...]  # (node, free after), in node order

    @property
    def utilisation(self) -> float:
        """Share of the free accelerators the packing uses (1.0 when there were none)."""
        return self.placed_accelerators / self.free_before if self.free_before else 1.0

    def score(self) -> tuple[int, ...]:
        """The objective, to compare packings: placed accelerators, then room left per size."""
        return (self.placed_accelerators, *(sum(f // s for _, f in self.leftover) for s in _LEFTOVER_SIZES))

    def node_of(self) -> dict[str, str]:
        return dict(self.placements)


def _packing(instances: Sequence[Instance], nodes: Mapping[str, int], chosen: dict[int, str]) -> Packing:
    free = {name: max(0, f) for name, f in nodes.items()}
    before = sum(free.values())
    placements = []
    unplaced = []
    for index, instance in enumerate(instances):
        node = chosen.get(index)
        if node is None:
            unplaced.append(instance.key)
            continue
        free[node] -= instance.tensor_parallel
        if free[node] < 0:
            raise AssertionError(f"node {node} overfilled by {instance.key}")  # a bug, not input
        placements.append((instance.key, node))
    return Packing(
        placements=tuple(placements),
        unplaced=tuple(unplaced),
        placed_accelerators=before - sum(free.values()),
        free_before=before,
        leftover=tuple(free.items()),
    )


def _greedy(
    instances: Sequence[Instance],
    nodes: Mapping[str, int],
    order: Sequence[int],
    pick: Callable[[list[tuple[int, int, str]], int], tuple[int, int, str] | None],
) -> Packing:
    free = [(position, max(0, f), name) for position, (name, f) in enumerate(nodes.items())]
    chosen: dict[int, str] = {}
    for index in order:
        tp = instances[index].tensor_parallel
        target = pick(free, tp)
        if target is None:
            continue
        position, room, name = target
        free[position] = (position, room - tp, name)
        chosen[index] = name
    return _packing(instances, nodes, chosen)


def _best(free: list[tuple[int, int, str]], tp: int) -> tuple[int, int, str] | None:
    fitting = [n for n in free if n[1] >= tp]
    return min(fitting, key=lambda n: (n[1], n[0])) if fitting else None


def _first(free: list[tuple[int, int, str]], tp: int) -> tuple[int, int, str] | None:
    return next((n for n in free if n[1] >= tp), None)


def _most_free(free: list[tuple[int, int, str]], tp: int) -> tuple[int, int, str] | None:
    fitting = [n for n in free if n[1] >= tp]
    return min(fitting, key=lambda n: (-n[1], n[0])) if fitting else None


def pack_best_fit(instances: Sequence[Instance], nodes: Mapping[str, int]) -> Packing:
    """Best-fit decreasing: largest instances first, each onto the tightest node that holds it."""
    order = sorted(range(len(instances)), key=lambda i: (-instances[i].tensor_parallel, i))
    return _greedy(instances, nodes, order, _best)


def pack_first_fit(instances: Sequence[Instance], nodes: Mapping[str, int]) -> Packing:
    """First fit in arrival order."""
    return _greedy(instances, nodes, range(len(instances)), _first)


def pack_most_allocated(instances: Sequence[Instance], nodes: Mapping[str, int]) -> Packing:
    """Arrival order onto the tightest node: kube-scheduler with NodeResourcesFit MostAllocated
    scoring on the accelerator resource, i.e. best fit online (without sorting)."""
    return _greedy(instances, nodes, range(len(instances)), _best)


def pack_spread(instances: Sequence[Instance], nodes: Mapping[str, int]) -> Packing:
    """Arrival order onto the emptiest node: kube-scheduler's default LeastAllocated scoring."""
    return _greedy(instances, nodes, range(len(instances)), _most_free)


def _patterns(capacity: int, sizes: tuple[int, ...], limits: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every count vector (one count per size, within `limits`) whose accelerators fit `capacity`."""
    if not sizes:
        return [()]
    size, rest = sizes[0], sizes[1:]
    found = []
    for count in range(min(limits[0], capacity // size) + 1):
        for tail in _patterns(capacity - count * size, rest, limits[1:]):
            found.append((count, *tail))
    return found


def pack_optimal(
    instances: Sequence[Instance],
    nodes: Mapping[str, int],
    *,
    state_budget: int = DEFAULT_STATE_BUDGET,
) -> Packing:
    """The best packing by the module's objective; raises SearchTooLarge past `state_budget`.

    Which instance of a size goes where does not change the objective, so the search works on
    counts per size: for each node in turn, choose how many instances of each size it takes.
    Nodes with the same free count are interchangeable; they are visited together in decreasing
    order of free accelerators so equal sub-problems meet in the memo.
    """
    sizes = tuple(sorted({i.tensor_parallel for i in instances}, reverse=True))
    demand = tuple(sum(1 for i in instances if i.tensor_parallel == s) for s in sizes)
    ordered = sorted(nodes.items(), key=lambda item: (-max(0, item[1]), list(nodes).index(item[0])))
    capacities = tuple(max(0, f) for _, f in ordered)
    states = len(capacities) + 1
    for count in demand:
        states *= count + 1
    if states > state_budget:
        raise SearchTooLarge(
            f"{states:,} states for {len(instances)} instances on {len(nodes)} nodes "
            f"(budget {state_budget:,})"
        )

    def leftover_value(rest: int) -> tuple[int, ...]:
        return tuple(rest // s for s in _LEFTOVER_SIZES)

    @cache
    def best(
        position: int, remaining: tuple[int, ...]
    ) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
        """(score, patterns of nodes position..end) of the best completion."""
        if position == len(capacities):
            return (0, *(0 for _ in _LEFTOVER_SIZES)), ()
        capacity = capacities[position]
        top: tuple[tuple[int, ...], tuple[tuple[int, ...], ...]] | None = None
        for pattern in _patterns(capacity, sizes, remaining):
            used = sum(c * s for c, s in zip(pattern, sizes, strict=True))
            after = tuple(r - c for r, c in zip(remaining, pattern, strict=True))
            tail_score, tail = best(position + 1, after)
            here = (used, *leftover_value(capacity - used))
            score = tuple(a + b for a, b in zip(here, tail_score, strict=True))
            if top is None or score > top[0]:
                top = (score, (pattern, *tail))
        assert top is not None  # the empty pattern always fits
        return top

    _, patterns = best(0, demand)
    best.cache_clear()
    queues: dict[int, list[int]] = {
        s: [i for i, inst in enumerate(instances) if inst.tensor_parallel == s] for s in sizes
    }
    chosen: dict[int, str] = {}
    for (name, _), pattern in zip(ordered, patterns, strict=True):
        for size, count in zip(sizes, pattern, strict=True):
            for _ in range(count):
                chosen[queues[size].pop(0)] = name
    return _packing(instances, nodes, chosen)


def max_placeable_accelerators(instances: Sequence[Instance], nodes: Mapping[str, int]) -> int:
    """The most accelerators any packing places, when every size divides the larger ones.

    With sizes 1, 2, 4, 8, a node with f free accelerators has floor(f / s) slots of size s, and
    placing an instance of a larger size t anywhere removes exactly t / s of them, so the number
    of s-slots left depends only on how many larger instances were placed, not where. Placing
    as many of the largest size as fit, then of the next, and so on, is therefore always
    possible, and never worse than placing fewer large ones: a large instance left out frees
    exactly its own size in smaller slots. This is the bound the heuristics are measured by on
    pools too large for the exact search; `pack_best_fit` reaches it.
    """
    sizes = sorted({i.tensor_parallel for i in instances}, reverse=True)
    if any(big % small for big, small in itertools.pairwise(sizes)):
        raise ValueError(f"sizes {sizes} do not divide one another")
    placed_larger = 0  # accelerators of larger sizes already placed
    total = 0
    for size in sizes:
        slots = sum(max(0, f) // size for f in nodes.values()) - placed_larger // size
        count = min(slots, sum(1 for i in instances if i.tensor_parallel == size))
        placed_larger += count * size
        total += count * size
    return total


def fits_all(instances: Sequence[Instance], nodes: Mapping[str, int]) -> bool:
    """Whether every instance can be placed (best fit decreasing is exact for this question when
    sizes divide one another, as tensor-parallel sizes 1, 2, 4, 8 do)."""
    return not pack_best_fit(instances, nodes).unplaced
