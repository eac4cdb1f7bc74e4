"""`make bench-placement`: how well instances pack onto fragmented pools, and how fast.

The instance mix comes from real capacity plans: every catalog model that fits, planned on
H100-80GB and on Ascend 910B at a few peak loads, gives its tensor-parallel size and instance
count. Pools of 8-accelerator nodes are fragmented by churn the way a cluster fragments: instances
arrive and are spread by the default scheduler until the pool is ~85% full, then a third of them
leave. A new batch of arrivals (more than the free room, or less) is then placed by:

- best fit decreasing (gpupool's packer),
- most allocated, online (kube-scheduler scoring the accelerator with MostAllocated),
- spread, online (kube-scheduler's default LeastAllocated scoring),
- first fit, online,

and compared with the best packing: the exact search on small pools (4-8 nodes), and on pools of
realistic size (32 and 128 nodes) the closed-form maximum of placeable accelerators. Reported: the
accelerators placed as a share of the best, the utilisation of the free accelerators, the TP=8
slots left whole afterwards as a share of the best remainder, and time per packing.

Prints the tables and writes JSON under results/. Figures, not assertions.

    python bench/placement.py [--seeds 60] [--out results/placement.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gpupool.catalog.accelerators import get_accelerator
from gpupool.catalog.models import get_model, model_names
from gpupool.catalog.types import Precision
from gpupool.placement import (
    Instance,
    Packing,
    SearchTooLarge,
    max_placeable_accelerators,
    pack_best_fit,
    pack_first_fit,
    pack_most_allocated,
    pack_optimal,
    pack_spread,
)
from gpupool.sizing import SizingRequest, plan_deployment

ROOT = Path(__file__).resolve().parents[1]
NODE_SIZE = 8
ACCELERATORS = ("H100-80GB", "Ascend910B")
PEAK_QPS = (2.0, 8.0, 30.0)
# (precision, maxModelLen) variants a platform team plans: the default, 8-bit weights, long context.
VARIANTS = ((Precision.BF16, 8192), (Precision.FP8, 8192), (Precision.INT8, 8192), (Precision.BF16, 32768))
CHURN_FILL = 0.85
CHURN_LEAVE = 0.35
LOADS = {"over": 1.25, "under": 0.9}  # arrivals' accelerators / free accelerators

Packer = Callable[[Sequence[Instance], dict[str, int]], Packing]
STRATEGIES: dict[str, Packer] = {
    "best fit decreasing (gpupool)": pack_best_fit,
    "most allocated, online": pack_most_allocated,
    "spread, online (scheduler default)": pack_spread,
    "first fit, online": pack_first_fit,
}


def instance_mix(accelerator: str) -> list[tuple[str, int, int]]:
    """(model variant, tensor parallel, instances) from real plans of every catalog model that fits."""
    accel = get_accelerator(accelerator)
    mix = []
    for name in model_names():
        model = get_model(name)
        for precision, max_len in VARIANTS:
            for qps in PEAK_QPS:
                request = SizingRequest(
                    precision=precision, max_model_len=max_len, peak_qps=qps, accelerators_per_node=NODE_SIZE
                )
                try:
                    plan = plan_deployment(model.architecture, accel, request, model_name=name)
                except ValueError:
                    continue  # a precision or context the accelerator cannot serve
                if plan.fits:
                    mix.append(
                        (
                            f"{name} {precision.value} {max_len // 1024}k {qps:g}qps",
                            plan.tensor_parallel,
                            plan.instances,
                        )
                    )
    return mix


def weighted_sizes(mix: list[tuple[str, int, int]]) -> list[int]:
    """One entry per planned instance, so sampling follows the mix's instance counts."""
    return [tp for _, tp, count in mix for _ in range(count)]


def fragmented_pool(rng: random.Random, nodes: int, sizes: list[int]) -> dict[str, int]:
    """Free accelerators per node after churn: spread arrivals to ~85% full, a third leave."""
    free = {f"n{i:03d}": NODE_SIZE for i in range(nodes)}
    running: list[tuple[str, int]] = []
    target = CHURN_FILL * nodes * NODE_SIZE
    misses = 0
    while sum(NODE_SIZE - f for f in free.values()) < target and misses < 50:
        tp = rng.choice(sizes)
        fitting = [n for n, f in free.items() if f >= tp]
        if not fitting:
            misses += 1
            continue
        node = max(fitting, key=lambda n: (free[n], n))
        free[node] -= tp
        running.append((node, tp))
    for node, tp in rng.sample(running, int(len(running) * CHURN_LEAVE)):
        free[node] += tp
    return free


def arrivals(rng: random.Random, sizes: list[int], free: int, load: float) -> list[Instance]:
    batch: list[Instance] = []
    while sum(i.tensor_parallel for i in batch) < load * free:
        batch.append(Instance(f"a{len(batch)}", rng.choice(sizes)))
    return batch


def slots(packing: Packing, size: int) -> int:
    """Instances of `size` the remainder still holds, one node each."""
    return sum(f // size for _, f in packing.leftover)


def timed(pack: Packer, instances: Sequence[Instance], nodes: dict[str, int]) -> tuple[Packing, float]:
    start = time.perf_counter()
    packing = pack(instances, nodes)
    return packing, time.perf_counter() - start


def small_cases(seeds: int) -> dict[str, Any]:
    rows: dict[str, dict[str, list[float]]] = {
        name: {"placed": [], "util": [], "slots8": [], "slots4": [], "equal": [], "seconds": []}
        for name in [*STRATEGIES, "optimum (exact search)"]
    }
    cases = skipped = 0
    for accelerator in ACCELERATORS:
        sizes = weighted_sizes(instance_mix(accelerator))
        for nodes in (4, 6, 8):
            for load, factor in LOADS.items():
                for seed in range(seeds):
                    rng = random.Random(f"{accelerator}/{nodes}/{load}/{seed}")
                    free = fragmented_pool(rng, nodes, sizes)
                    batch = arrivals(rng, sizes, sum(free.values()), factor)
                    try:
                        best, best_seconds = timed(pack_optimal, batch, free)
                    except SearchTooLarge:
                        skipped += 1
                        continue
                    cases += 1
                    results = {name: timed(pack, batch, free) for name, pack in STRATEGIES.items()}
                    results["optimum (exact search)"] = (best, best_seconds)
                    for name, (packing, seconds) in results.items():
                        row = rows[name]
                        row["placed"].append(
                            packing.placed_accelerators / best.placed_accelerators
                            if best.placed_accelerators
                            else 1.0
                        )
                        row["util"].append(packing.utilisation)
                        row["slots8"].append(slots(packing, 8))
                        row["slots4"].append(slots(packing, 4))
                        row["equal"].append(float(packing.score() == best.score()))
                        row["seconds"].append(seconds)
    summary = {
        name: {
            "placed_vs_best_mean": statistics.fmean(r["placed"]),
            "placed_vs_best_min": min(r["placed"]),
            "utilisation_mean": statistics.fmean(r["util"]),
            "tp8_slots_left_mean": statistics.fmean(r["slots8"]),
            "tp4_slots_left_mean": statistics.fmean(r["slots4"]),
            "equals_best_share": statistics.fmean(r["equal"]),
            "seconds_per_case_mean": statistics.fmean(r["seconds"]),
            "seconds_per_case_max": max(r["seconds"]),
        }
        for name, r in rows.items()
    }
    return {"cases": cases, "skipped_too_large": skipped, "strategies": summary}


def large_cases(seeds: int) -> list[dict[str, Any]]:
    rows = []
    for accelerator in ACCELERATORS:
        sizes = weighted_sizes(instance_mix(accelerator))
        for nodes in (32, 128):
            for load, factor in LOADS.items():
                per: dict[str, dict[str, list[float]]] = {
                    name: {"placed": [], "util": [], "seconds": []} for name in STRATEGIES
                }
                instances = []
                for seed in range(max(3, seeds // 4)):
                    rng = random.Random(f"large/{accelerator}/{nodes}/{load}/{seed}")
                    free = fragmented_pool(rng, nodes, sizes)
                    batch = arrivals(rng, sizes, sum(free.values()), factor)
                    instances.append(len(batch))
                    bound = max_placeable_accelerators(batch, free)
                    for name, pack in STRATEGIES.items():
                        packing, seconds = timed(pack, batch, free)
                        per[name]["placed"].append(packing.placed_accelerators / bound if bound else 1.0)
                        per[name]["util"].append(packing.utilisation)
                        per[name]["seconds"].append(seconds)
                for name, r in per.items():
                    rows.append(
                        {
                            "accelerator": accelerator,
                            "nodes": nodes,
                            "load": load,
                            "instances_mean": statistics.fmean(instances),
                            "strategy": name,
                            "placed_vs_best_mean": statistics.fmean(r["placed"]),
                            "placed_vs_best_min": min(r["placed"]),
                            "utilisation_mean": statistics.fmean(r["util"]),
                            "seconds_per_packing_mean": statistics.fmean(r["seconds"]),
                        }
                    )
    return rows


def mix_table(mixes: dict[str, list[tuple[str, int, int]]]) -> str:
    lines = ["instance mix: real plans of the catalog at bf16/fp8/int8 8k and bf16 32k, peak 2/8/30 QPS"]
    for accelerator, mix in mixes.items():
        by_tp: dict[int, int] = {}
        for _, tp, count in mix:
            by_tp[tp] = by_tp.get(tp, 0) + count
        shares = ", ".join(f"TP{tp}: {count}" for tp, count in sorted(by_tp.items()))
        lines.append(f"  {accelerator}: {len(mix)} plans; instances by size {shares}")
    return "\n".join(lines)


def small_table(small: dict[str, Any]) -> str:
    head = (
        f"small pools: 4/6/8 nodes of 8, {small['cases']} cases vs the exact optimum "
        f"({small['skipped_too_large']} too large for the search skipped)\n"
        f"{'strategy':<36}{'placed vs best':>18}{'utilisation':>13}{'TP8/TP4 left':>15}"
        f"{'= best':>8}{'ms/case':>9}"
    )
    lines = [head]
    for name, s in small["strategies"].items():
        lines.append(
            f"{name:<36}{s['placed_vs_best_mean']:>10.1%} / {s['placed_vs_best_min']:>5.1%}"
            f"{s['utilisation_mean']:>13.1%}"
            f"{s['tp8_slots_left_mean']:>8.2f} /{s['tp4_slots_left_mean']:>5.2f}"
            f"{s['equals_best_share']:>8.0%}{1000 * s['seconds_per_case_mean']:>9.2f}"
        )
    return "\n".join(lines)


def large_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "realistic pools vs the most placeable accelerators (closed form)\n"
        f"{'pool':<12}{'nodes':>6}{'load':>7}{'inst.':>7}  {'strategy':<36}{'placed vs best':>18}"
        f"{'utilisation':>13}{'ms':>8}"
    ]
    for r in rows:
        lines.append(
            f"{r['accelerator']:<12}{r['nodes']:>6}{r['load']:>7}{r['instances_mean']:>7.0f}  "
            f"{r['strategy']:<36}{r['placed_vs_best_mean']:>10.1%} / {r['placed_vs_best_min']:>5.1%}"
            f"{r['utilisation_mean']:>13.1%}{1000 * r['seconds_per_packing_mean']:>8.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=60, help="seeded cases per pool size and load")
    parser.add_argument("--out", default=str(ROOT / "results" / "placement.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    mixes = {a: instance_mix(a) for a in ACCELERATORS}
    small = small_cases(args.seeds)
    large = large_cases(args.seeds)
    results = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "seeds": args.seeds,
        "mix": {
            a: [{"model": m, "tensorParallel": tp, "instances": n} for m, tp, n in mix]
            for a, mix in mixes.items()
        },
        "small": small,
        "large": large,
        "seconds": time.perf_counter() - started,
    }
    print(mix_table(mixes))
    print()
    print(small_table(small))
    print()
    print(large_table(large))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out} in {results['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
