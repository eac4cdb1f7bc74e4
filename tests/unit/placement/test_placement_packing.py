"""Packing instances onto nodes: best fit decreasing, the baselines, and the exact optimum."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.placement import (
    Instance,
    Packing,
    SearchTooLarge,
    fits_all,
    max_placeable_accelerators,
    pack_best_fit,
    pack_first_fit,
    pack_most_allocated,
    pack_optimal,
    pack_spread,
)


def instances(*sizes: int) -> list[Instance]:
    return [Instance(f"i{n}", tp) for n, tp in enumerate(sizes)]


def test_best_fit_puts_each_instance_on_the_tightest_node_largest_first() -> None:
    packing = pack_best_fit(instances(1, 4, 2), {"a": 8, "b": 5, "c": 2})
    # 4 -> b (5 free, tightest), 2 -> c (2 free), 1 -> b (1 left).
    assert packing.node_of() == {"i1": "b", "i2": "c", "i0": "b"}
    assert packing.leftover == (("a", 8), ("b", 0), ("c", 0))
    assert packing.placed_accelerators == 7 and packing.unplaced == ()


def test_spreading_like_the_default_scheduler_strands_whole_nodes() -> None:
    nodes = {"a": 8, "b": 8}
    arrivals = instances(1, 8, 8)
    spread = pack_spread(arrivals, nodes)
    assert spread.unplaced == ("i2",)  # the TP=1 instance broke a node a TP=8 one needed
    assert spread.placed_accelerators == 9
    best = pack_best_fit(arrivals, nodes)
    assert best.unplaced == ("i0",) and best.placed_accelerators == 16


def test_first_fit_in_arrival_order_can_lose_what_sorting_keeps() -> None:
    packing = pack_first_fit(instances(2, 2, 8), {"a": 8, "b": 4})
    assert packing.unplaced == ("i2",)
    assert pack_best_fit(instances(2, 2, 8), {"a": 8, "b": 4}).unplaced == ()


def test_the_optimum_also_keeps_the_remainder_whole() -> None:
    # Both placements use 4 accelerators; putting the TP=4 on b keeps a whole for a TP=8.
    packing = pack_optimal(instances(4), {"a": 8, "b": 4})
    assert packing.node_of() == {"i0": "b"}
    assert packing.score() == (4, 1, 2, 4)


def test_the_closed_form_needs_sizes_that_divide_one_another() -> None:
    with pytest.raises(ValueError, match="divide"):
        max_placeable_accelerators(instances(3, 2), {"a": 8})


def test_the_exact_search_refuses_beyond_its_budget() -> None:
    many = instances(*([1, 2, 4, 8] * 30))
    with pytest.raises(SearchTooLarge, match="states"):
        pack_optimal(many, {f"n{i}": 8 for i in range(40)}, state_budget=10_000)


def test_nothing_to_place_and_nowhere_to_place_it() -> None:
    assert pack_best_fit([], {"a": 8}).utilisation == 0.0
    assert pack_optimal(instances(8), {}).unplaced == ("i0",)
    assert pack_best_fit(instances(2), {"a": 0}).utilisation == 1.0


# --------------------------------------------------------------------------------------------------
# Properties

sizes = st.sampled_from([1, 2, 4, 8])
small_items = st.lists(sizes, max_size=6)
small_nodes = st.lists(st.integers(0, 8), min_size=1, max_size=3)


def brute_force(items: list[Instance], nodes: dict[str, int]) -> tuple[int, ...]:
    """The best score over every assignment of every instance to a node or to nowhere."""
    names = list(nodes)
    best: tuple[int, ...] = ()
    for choice in itertools.product([None, *names], repeat=len(items)):
        free = dict(nodes)
        for item, target in zip(items, choice, strict=True):
            if target is not None:
                free[target] -= item.tensor_parallel
        if min(free.values(), default=0) < 0:
            continue
        placed = sum(nodes.values()) - sum(free.values())
        score = (placed, *(sum(f // s for f in free.values()) for s in (8, 4, 2)))
        best = max(best, score)
    return best


def feasible(packing: Packing, items: list[Instance], nodes: dict[str, int]) -> bool:
    size = {i.key: i.tensor_parallel for i in items}
    used = dict.fromkeys(nodes, 0)
    for key, target in packing.placements:
        used[target] += size[key]
    placed = {k for k, _ in packing.placements}
    return (
        all(used[n] <= max(0, nodes[n]) for n in nodes)
        and placed.isdisjoint(packing.unplaced)
        and placed | set(packing.unplaced) == set(size)
    )


@settings(max_examples=150, deadline=None)
@given(small_items, small_nodes)
def test_the_exact_search_matches_brute_force(sizes_: list[int], free: list[int]) -> None:
    items = instances(*sizes_)
    nodes = {f"n{i}": f for i, f in enumerate(free)}
    optimal = pack_optimal(items, nodes)
    assert feasible(optimal, items, nodes)
    assert optimal.score() == brute_force(items, nodes)


@settings(max_examples=200, deadline=None)
@given(st.lists(sizes, max_size=24), st.lists(st.integers(0, 8), min_size=1, max_size=8))
def test_heuristics_are_feasible_and_never_beat_the_optimum(sizes_: list[int], free: list[int]) -> None:
    items = instances(*sizes_)
    nodes = {f"n{i}": f for i, f in enumerate(free)}
    optimal = pack_optimal(items, nodes)
    for pack in (pack_best_fit, pack_most_allocated, pack_first_fit, pack_spread):
        packing = pack(items, nodes)
        assert feasible(packing, items, nodes)
        assert packing.score() <= optimal.score()
    # Tensor-parallel sizes divide one another, so largest-first places the most accelerators,
    # which the closed form computes.
    assert pack_best_fit(items, nodes).placed_accelerators == optimal.placed_accelerators
    assert max_placeable_accelerators(items, nodes) == optimal.placed_accelerators


@settings(max_examples=100, deadline=None)
@given(st.lists(sizes, max_size=5), small_nodes)
def test_fits_all_is_exact(sizes_: list[int], free: list[int]) -> None:
    items = instances(*sizes_)
    nodes = {f"n{i}": f for i, f in enumerate(free)}
    assert fits_all(items, nodes) == (brute_force(items, nodes)[0] == sum(sizes_))


@settings(max_examples=50, deadline=None)
@given(st.lists(sizes, max_size=16), st.lists(st.integers(0, 8), min_size=1, max_size=6))
def test_packing_is_deterministic(sizes_: list[int], free: list[int]) -> None:
    items = instances(*sizes_)
    nodes = {f"n{i}": f for i, f in enumerate(free)}
    for pack in (pack_best_fit, pack_optimal):
        assert pack(items, nodes) == pack(list(items), dict(nodes))
