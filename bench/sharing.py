"""`make bench-placement` (second part): a scripted day of demand per tier on one shared pool.

A pool of 32 H100 nodes (256 GPUs) with the default tiers (P0 40%, P1 30%, P2 30% preemptible)
serves twelve models, four per tier, of TP 1, 2, 4 and 8. Over 24 hours their demand follows a
script with seeded noise: P0 online traffic with a daytime peak, P1 internal jobs in business
hours, P2 batch work at night with bursts in the day. Demand changes every 15 minutes; the operator
recounts the pool every 30 seconds, and new instances start by the next recount.

Two ways of deciding the counts are run over the same day:

- **one allocation per pool** (`gpupool.placement.allocation.allocate`, what the operator does now);
- **per-model caps** (`gpupool.placement.tiers.tier_cap`, what it did before): each model's tier cap
  computed on its own against what the others hold at the recount, every model applying its cap
  from the same snapshot, as `reconcile_model` did with `instance_caps` for every model after a
  recount (operator/gpupool/controller/reconciler.py `_limits_changed`, services/modeldeployment.py
  `place_on_pool` before the allocation). Implemented from those files as they stood, at the
  shipped default tiers.

Reported per way: accelerators held against servable demand (the physical bound: the smaller of
the pool and what the models ask, in accelerators) and the share of that bound the best-fit packer
actually places on the nodes; each tier's wait, in recounts, from asking for its reserve to holding
it (to within one instance); Deployment writes (count changes) per hour, in all and in steady
state (recounts where no demand changed since the previous one). Figures, not assertions.

    python bench/sharing.py [--seed 7] [--out results/sharing.json]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpupool.api.v1alpha1 import InferencePool
from gpupool.placement import (
    Claim,
    Demand,
    Instance,
    InstanceRequest,
    PoolState,
    account_pool,
    allocate,
    pack_best_fit,
    tier_cap,
)

ROOT = Path(__file__).resolve().parents[1]
NODES = 32
NODE_SIZE = 8
CHANGE_MINUTES = 15
RECOUNT_SECONDS = 30
RECOUNTS_PER_CHANGE = CHANGE_MINUTES * 60 // RECOUNT_SECONDS
TPS = (1, 2, 4, 8)


@dataclass(frozen=True)
class Model:
    name: str
    tier: str
    tp: int
    peak: int  # instances at the tier's peak


def models() -> list[Model]:
    # Peaks in accelerators: P0 ~160, P1 ~120, P2 ~200: together well above the 256 of the pool.
    peaks = {"P0": (40, 20, 10, 5), "P1": (30, 15, 8, 4), "P2": (50, 25, 12, 6)}
    return [
        Model(f"{tier.lower()}-tp{tp}", tier, tp, peak)
        for tier, counts in peaks.items()
        for tp, peak in zip(TPS, counts, strict=True)
    ]


def shape(tier: str, hour: float) -> float:
    """Share of the tier's peak asked at `hour` (0-24)."""
    if tier == "P0":  # online: low at night, peak early afternoon
        return 0.25 + 0.75 * max(0.0, math.sin(math.pi * (hour - 6) / 16)) if 6 <= hour <= 22 else 0.25
    if tier == "P1":  # internal jobs in business hours
        return 0.9 if 9 <= hour < 18 else 0.1
    # batch: all night, bursts at 11 and 15 h
    return 1.0 if hour < 7 or hour >= 21 or 11 <= hour < 12 or 15 <= hour < 16 else 0.3


def script(seed: int) -> list[dict[str, int]]:
    """Instances each model asks for, per 15-minute change."""
    rng = random.Random(seed)
    steps = 24 * 60 // CHANGE_MINUTES
    day = []
    for step in range(steps):
        hour = step * CHANGE_MINUTES / 60
        day.append(
            {m.name: max(0, round(m.peak * shape(m.tier, hour) * rng.uniform(0.85, 1.15))) for m in models()}
        )
    return day


def pool() -> InferencePool:
    return InferencePool.model_validate(
        {
            "metadata": {"name": "h100"},
            "spec": {"vendor": "nvidia", "accelerator": "H100-80GB", "nodeSelector": {"pool": "h100"}},
        }
    )


def empty_state() -> PoolState:
    nodes = [
        {
            "metadata": {"name": f"n{i}", "labels": {"pool": "h100"}},
            "status": {"allocatable": {"nvidia.com/gpu": str(NODE_SIZE)}},
        }
        for i in range(NODES)
    ]
    return account_pool(pool(), nodes, [])


def with_claims(state: PoolState, counts: dict[str, int], by_name: dict[str, Model]) -> PoolState:
    """The pool with each model's instances as claims (the per-model caps read them)."""
    claims = tuple(
        Claim("ns", f"{name}-{i}", by_name[name].tp, "n0", by_name[name].tier, f"ns/{name}", None)
        for name, count in counts.items()
        for i in range(count)
    )
    return PoolState(
        pool=state.pool,
        resource=state.resource,
        accelerator_memory_bytes=state.accelerator_memory_bytes,
        nodes=state.nodes,
        excluded_nodes=(),
        claims=claims,
        tiers=state.tiers,
    )


def decide_allocation(
    state: PoolState, asked: dict[str, int], held: dict[str, int], by_name: dict[str, Model]
) -> dict[str, int]:
    demands = [
        Demand(f"ns/{n}", by_name[n].tier, by_name[n].tp, asked[n], running=held.get(n, 0)) for n in asked
    ]
    result = allocate(state, demands)
    return {n: result.count(f"ns/{n}") for n in asked}


def decide_per_model(
    state: PoolState, asked: dict[str, int], held: dict[str, int], by_name: dict[str, Model]
) -> dict[str, int]:
    snapshot = with_claims(state, held, by_name)
    out = {}
    for name, count in asked.items():
        model = by_name[name]
        request = InstanceRequest(f"ns/{name}", "ns", model.tier, model.tp, count)
        out[name] = tier_cap(snapshot, request).allowed
    return out


def packed(state: PoolState, counts: dict[str, int], by_name: dict[str, Model]) -> int:
    """Accelerators the best-fit packer places for these counts on the pool's empty nodes."""
    instances = [
        Instance(f"{name}-{i}", by_name[name].tp) for name, count in counts.items() for i in range(count)
    ]
    return pack_best_fit(instances, {n.name: n.allocatable for n in state.nodes}).placed_accelerators


def run(way: str, day: list[dict[str, int]]) -> dict[str, Any]:
    decide = decide_allocation if way == "allocation" else decide_per_model
    by_name = {m.name: m for m in models()}
    state = empty_state()
    reserve = {t.name: state.reserved(t) for t in state.tiers}
    held: dict[str, int] = {}
    writes = steady_writes = recounts = steady_recounts = 0
    util: list[float] = []
    placed: list[float] = []
    waiting: dict[str, int | None] = dict.fromkeys(reserve)
    waits: dict[str, list[int]] = {t: [] for t in reserve}
    for asked in day:
        for step in range(RECOUNTS_PER_CHANGE):
            counts = decide(state, asked, held, by_name)
            changed = sum(1 for n in asked if counts[n] != held.get(n, 0))
            writes += changed
            recounts += 1
            if step > 0:
                steady_recounts += 1
                steady_writes += changed
            held = counts
            holding = sum(counts[n] * by_name[n].tp for n in counts)
            servable = min(state.total, sum(asked[n] * by_name[n].tp for n in asked))
            if servable:
                util.append(holding / servable)
                placed.append(packed(state, counts, by_name) / servable)
            for tier, r in reserve.items():
                mine = [n for n in asked if by_name[n].tier == tier]
                want = min(r, sum(asked[n] * by_name[n].tp for n in mine))
                have = sum(counts[n] * by_name[n].tp for n in mine)
                slack = max(by_name[n].tp for n in mine) - 1
                if have >= want - slack:
                    if waiting[tier] is not None:
                        waits[tier].append(waiting[tier] or 0)
                    waiting[tier] = None
                else:
                    waiting[tier] = (waiting[tier] or 0) + 1
    hours = recounts * RECOUNT_SECONDS / 3600
    steady_hours = steady_recounts * RECOUNT_SECONDS / 3600
    return {
        "way": way,
        "utilisation_mean": statistics.fmean(util),
        "utilisation_min": min(util),
        "placed_mean": statistics.fmean(placed),
        "writes_per_hour": writes / hours,
        "steady_writes_per_hour": steady_writes / steady_hours,
        "reserve_wait_recounts": {
            t: {"episodes": len(w), "mean": statistics.fmean(w) if w else 0.0, "max": max(w, default=0)}
            for t, w in waits.items()
        },
        "still_waiting": {t: w for t, w in waiting.items() if w},
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| one pool, 256 H100, a day of demand | held vs servable, mean / worst | placed by best fit, mean "
        "| writes per hour, all / steady state | reserve wait in recounts (mean / max) P0, P1, P2 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        waits = ", ".join(f"{w['mean']:.1f} / {w['max']}" for w in r["reserve_wait_recounts"].values())
        lines.append(
            f"| {r['way']} | {r['utilisation_mean']:.1%} / {r['utilisation_min']:.1%} "
            f"| {r['placed_mean']:.1%} | {r['writes_per_hour']:.0f} / {r['steady_writes_per_hour']:.0f} "
            f"| {waits} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "results" / "sharing.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    day = script(args.seed)
    rows = [run("allocation", day), run("per-model caps (before)", day)]
    print(table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {"python": sys.version.split()[0], "seed": args.seed, "rows": rows}
    results["seconds"] = time.perf_counter() - started
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out} in {results['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
