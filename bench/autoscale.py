"""Benchmark gpupool's autoscaling policy against its peers, static provisioning and the bound.

For each benchmark model (bench/models/*.yaml, on manifests/samples/pool-nvidia-h100.yaml), each
built-in trace and each capacity error (the true capacity of an instance over the plan's estimate:
0.7, 1.0, 1.3), replay the trace through the simulator (a queue per pod behind a least-request
balancer, load times +-20%, one client retry) under:

- gpupool's default policy;
- every peer at its shipped defaults (gpupool/simulate/peers.py: Knative KPA, KubeAI, KEDA on
  queued requests, AIBrix APA and KPA, Dynamo's planner, llm-d's saturation analyzer), the HPA on
  GPU utilisation and on QPS, and static provisioning at the plan's count for the peak;
- sweeps that trace each trace's cost/SLO frontier: the HPA-QPS target, Knative's concurrency
  target and the static count;
- the clairvoyant bound (gpupool/simulate/bound.py), whose accelerator-hours are the physical limit.

Printed per run: accelerator-hours, their multiple of the bound's, SLO attainment (time to first
token within spec.traffic.latencySloMs; failed requests count as misses), error rate, p99 time to
first token, scale events; then a line per model, trace and capacity error: is the default policy
beaten on both axes (fewer hours and higher attainment) by a peer or a swept point, and does it
reach 99% attainment with at most 1.3x the bound's hours.

    python bench/autoscale.py --quick              # a subset: five short traces, ~4 min on 2 cores
    python bench/autoscale.py --docs docs/autoscaling.md --plot docs/autoscaling-frontiers.png

Figures are simulated, from fixed seeds: the same command prints the same numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.scaling import AutoscalingPolicy
from gpupool.simulate.autoscalers import Autoscaler, HpaAutoscaler, StaticAutoscaler
from gpupool.simulate.peers import KnativeKpa
from gpupool.simulate.scenario import Scenario, scenario_for
from gpupool.simulate.simulator import Simulation, SimulationConfig
from gpupool.simulate.traces import GENERATORS, builtin

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("llama-3.1-8b", "llama-3.1-70b")
POOL = ROOT / "manifests" / "samples" / "pool-nvidia-h100.yaml"
BEGIN = "<!-- bench-autoscale:begin -->"
END = "<!-- bench-autoscale:end -->"
CAPACITY_ERRORS = (0.7, 1.0, 1.3)
QUICK_TRACES = ("step", "spike", "bursts", "ramp-dip", "flash-crowd")
LOAD_TIME_SPREAD = 0.2

# The target of the default policy.
MIN_SLO_ATTAINMENT = 0.99
MAX_MULTIPLE_OF_BOUND = 1.3

DEFAULT = "**default**"
BOUND = "bound"
# Policies at their defaults: (label, policy name).
AT_DEFAULTS = (
    (DEFAULT, "default"),
    ("static, plan's peak", "static"),
    ("HPA, GPU utilisation 75%", "hpa"),
    ("HPA, QPS 80%", "hpa-qps"),
    ("Knative KPA", "knative-kpa"),
    ("KubeAI", "kubeai"),
    ("KEDA, 5 queued", "keda"),
    ("AIBrix APA", "aibrix-apa"),
    ("AIBrix KPA", "aibrix-kpa"),
    ("Dynamo planner", "dynamo"),
    ("llm-d WVA", "llm-d-wva"),
    (BOUND, "bound"),
)
# Swept settings: the HPA-QPS target as a share of the plan's capacity, Knative's concurrency
# target per pod (container-concurrency-target-default; 70% of it is the target), static counts.
HPA_QPS_SHARES = (0.5, 0.6, 0.7, 0.9, 1.0)
KPA_CONCURRENCY = (20, 40, 70, 140)
STATIC_SPAN = 4  # counts from the plan's for the peak minus this to the maximum


@dataclass(frozen=True)
class Job:
    model: str
    trace: str
    capacity_error: float
    label: str
    policy: str  # a policy name, or "sweep-hpa-qps", "sweep-kpa", "sweep-static"
    setting: float = 0.0
    seed: int = 0

    @property
    def swept(self) -> bool:
        return self.policy.startswith("sweep-")


def _load(model: str) -> tuple[ModelDeployment, InferencePool]:
    md = ModelDeployment.model_validate(
        yaml.safe_load((ROOT / "bench" / "models" / f"{model}.yaml").read_text())
    )
    pool = InferencePool.model_validate(yaml.safe_load(POOL.read_text()))
    return md, pool


def _swept(job: Job, scenario: Scenario) -> tuple[Autoscaler, int | None]:
    """The autoscaler of a swept job and its starting count (None: what its target needs)."""
    bounds = scenario.bounds
    if job.policy == "sweep-hpa-qps":
        target = job.setting * scenario.capacity_per_instance
        return HpaAutoscaler("qps", target, bounds, name=job.label), None
    if job.policy == "sweep-kpa":
        return KnativeKpa(bounds, target=job.setting * 0.7, name=job.label), None
    count = int(job.setting)
    return StaticAutoscaler(count, name=job.label), count


def run_job(job: Job) -> dict[str, Any]:
    md, pool = _load(job.model)
    scenario = scenario_for(md, pool)
    trace = builtin(job.trace, md.spec.traffic.peak_qps, job.seed)
    config = SimulationConfig(
        seed=job.seed, capacity_error=job.capacity_error, load_time_spread=LOAD_TIME_SPREAD
    )
    policy = AutoscalingPolicy()
    started = time.perf_counter()
    initial: int | None
    if job.policy == "bound":
        bound = scenario.bound(trace, config)
        autoscaler: Autoscaler = bound
        initial = bound.initial_replicas()
    elif job.swept:
        autoscaler, initial = _swept(job, scenario)
    else:
        autoscaler = scenario.autoscaler(job.policy, policy, trace)
        initial = scenario.peak_replicas(trace) if job.policy == "static" else None
    if initial is None:
        initial = scenario.initial_replicas(trace, policy)
    initial = min(max(initial, scenario.bounds.min_replicas), scenario.bounds.max_replicas)
    result = Simulation(scenario.model, trace, autoscaler, initial, config).run()
    summary = result.summary()
    summary.update(
        asdict(job),
        modelLabel=scenario.label,
        swept=job.swept,
        wallSeconds=round(time.perf_counter() - started, 2),
    )
    return summary


def jobs_for(
    models: list[str],
    traces: list[str],
    errors: list[float],
    seed: int,
    sweeps: bool,
    policies: list[str] | None = None,
) -> list[Job]:
    out: list[Job] = []
    for model in models:
        md, pool = _load(model)
        scenario = scenario_for(md, pool)
        for trace in traces:
            planned = scenario.peak_replicas(builtin(trace, md.spec.traffic.peak_qps, seed))
            for error in errors:
                out += [Job(model, trace, error, label, name, seed=seed) for label, name in AT_DEFAULTS]
                if not sweeps:
                    continue
                out += [
                    Job(model, trace, error, f"HPA-QPS {share:.0%}", "sweep-hpa-qps", share, seed)
                    for share in HPA_QPS_SHARES
                    if share != 0.8
                ]
                out += [
                    Job(model, trace, error, f"Knative KPA, {c} per pod", "sweep-kpa", c, seed)
                    for c in KPA_CONCURRENCY
                    if c != 100
                ]
                low = max(scenario.bounds.min_replicas, planned - STATIC_SPAN)
                out += [
                    Job(model, trace, error, f"static {n}", "sweep-static", n, seed)
                    for n in range(low, scenario.bounds.max_replicas + 1)
                    if n != planned
                ]
    if policies is not None:
        out = [j for j in out if j.policy in policies or (j.swept and "sweeps" in policies)]
    # The longest traces first, so that the pool's workers finish together.
    return sorted(out, key=lambda j: -builtin(j.trace, 1.0, 0).duration)


# --------------------------------------------------------------------------------------------------
# verdicts


def _group(rows: list[dict[str, Any]]) -> dict[tuple[str, str, float], list[dict[str, Any]]]:
    groups: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["trace"], row["capacity_error"]), []).append(row)
    return groups


def _slo(row: dict[str, Any]) -> float:
    return round(float(row["sloAttainment"]), 4)  # compared as printed, to 0.01%


def beaten_by(default: dict[str, Any], others: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs with fewer accelerator-hours and a higher SLO attainment than the default's."""
    return [
        r
        for r in others
        if r["label"] not in (DEFAULT, BOUND)
        and round(r["acceleratorHours"], 1) < round(default["acceleratorHours"], 1)
        and _slo(r) > _slo(default)
    ]


def frontier(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs no other run beats on both axes, by accelerator-hours."""
    ordered = sorted(rows, key=lambda r: (r["acceleratorHours"], -r["sloAttainment"]))
    out: list[dict[str, Any]] = []
    best = -1.0
    for row in ordered:
        if row["sloAttainment"] > best:
            out.append(row)
            best = row["sloAttainment"]
    return out


@dataclass(frozen=True)
class Verdict:
    model: str
    trace: str
    capacity_error: float
    default: dict[str, Any]
    bound_hours: float
    bound_slo: float
    beaten: list[dict[str, Any]]

    @property
    def multiple(self) -> float:
        return float(self.default["acceleratorHours"]) / self.bound_hours

    @property
    def meets_slo_and_cost(self) -> bool:
        return _slo(self.default) >= MIN_SLO_ATTAINMENT and self.multiple <= MAX_MULTIPLE_OF_BOUND

    def line(self) -> str:
        d = self.default
        head = (
            f"{self.model} {self.trace} x{self.capacity_error:g}: default {d['acceleratorHours']:.1f} h "
            f"({self.multiple:.2f}x bound), {d['sloAttainment']:.2%} SLO"
        )
        if self.beaten:
            best = max(self.beaten, key=lambda r: (_slo(r), -r["acceleratorHours"]))
            beaten = (
                f"beaten on both axes by {len(self.beaten)} (e.g. {best['label']}: "
                f"{best['acceleratorHours']:.1f} h, {best['sloAttainment']:.2%})"
            )
        else:
            beaten = "not beaten on both axes"
        goal = "yes" if self.meets_slo_and_cost else "no"
        return f"{head}; {beaten}; >= 99% SLO at <= 1.3x bound: {goal}"


def verdicts(rows: list[dict[str, Any]]) -> list[Verdict]:
    out = []
    for (model, trace, error), group in _group(rows).items():
        default = next((r for r in group if r["label"] == DEFAULT), None)
        bound = next((r for r in group if r["label"] == BOUND), None)
        if default is None or bound is None:
            continue  # a partial run (--policies): merge it with the rest through --from-json
        out.append(
            Verdict(
                model,
                trace,
                error,
                default,
                bound["acceleratorHours"],
                bound["sloAttainment"],
                beaten_by(default, group),
            )
        )
    return sorted(out, key=lambda v: (MODELS.index(v.model), v.trace, v.capacity_error))


# --------------------------------------------------------------------------------------------------
# output


def _pct(value: float) -> str:
    return f"{value:.2%}"


def _latency(value: float | None) -> str:
    if value is None:
        return "time-out"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def tables(rows: list[dict[str, Any]], traces: list[str]) -> str:
    out: list[str] = []
    found = verdicts(rows)
    out.append("#### Default policy, every model, trace and capacity error\n")
    out.append(
        "| model | trace | capacity | bound h | default h | x bound | within SLO | failed | scale events "
        "| beaten on both axes by | >= 99% at <= 1.3x |"
    )
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for v in found:
        d = v.default
        if v.beaten:
            best = max(v.beaten, key=lambda r: (_slo(r), -r["acceleratorHours"]))
            hours, slo = best["acceleratorHours"], _pct(best["sloAttainment"])
            beaten = f"{len(v.beaten)}: {best['label']} ({hours:.1f} h, {slo})"
        else:
            beaten = "-"
        out.append(
            f"| {v.model} | {v.trace} | {v.capacity_error:g} | {v.bound_hours:.1f} "
            f"| {d['acceleratorHours']:.1f} | {v.multiple:.2f} | {_pct(d['sloAttainment'])} "
            f"| {_pct(d['errorRate'])} | {d['scaleEvents']} | {beaten} | "
            f"{'yes' if v.meets_slo_and_cost else 'no'} |"
        )
    out.append("")
    groups = _group(rows)
    for model in dict.fromkeys(r["model"] for r in rows):
        label = next(r["modelLabel"] for r in rows if r["model"] == model)
        out.append(f"#### {label}, capacity as planned\n")
        out.append(
            "| trace | policy | accelerator-hours | x bound | within SLO | failed | p99 TTFT | scale events |"
        )
        out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for trace in traces:
            group = groups.get((model, trace, 1.0))
            bound_row = next((r for r in group or [] if r["label"] == BOUND), None)
            if bound_row is None:
                continue  # a partial run (--policies) without the bound: merge it through --from-json
            bound = bound_row["acceleratorHours"]
            for row in (r for r in group if not r["swept"]):
                out.append(
                    f"| {trace} | {row['label']} | {row['acceleratorHours']:.1f} "
                    f"| {row['acceleratorHours'] / bound:.2f} | {_pct(row['sloAttainment'])} "
                    f"| {_pct(row['errorRate'])} | {_latency(row['ttftP99Seconds'])} | {row['scaleEvents']} |"
                )
        out.append("")
    return "\n".join(out)


def plot_frontiers(rows: list[dict[str, Any]], path: Path) -> None:
    """Per model and trace (capacity as planned): accelerator-hours over the bound's against SLO
    attainment, the sweeps as lines, the peers as points, the default policy as a star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {k: v for k, v in _group(rows).items() if k[2] == 1.0}
    models = list(dict.fromkeys(k[0] for k in groups))
    traces = list(dict.fromkeys(k[1] for k in groups))
    figure, axes = plt.subplots(
        len(models), len(traces), figsize=(3.2 * len(traces), 3.0 * len(models)), squeeze=False
    )
    for i, model in enumerate(models):
        for j, trace in enumerate(traces):
            ax = axes[i][j]
            group = groups.get((model, trace, 1.0), [])
            if not group:
                ax.axis("off")
                continue
            bound = next(r for r in group if r["label"] == BOUND)["acceleratorHours"]

            def xy(rs: list[dict[str, Any]], b: float = bound) -> tuple[list[float], list[float]]:
                return [r["acceleratorHours"] / b for r in rs], [100 * r["sloAttainment"] for r in rs]

            for policy, colour in (
                ("sweep-static", "grey"),
                ("sweep-hpa-qps", "tab:blue"),
                ("sweep-kpa", "tab:purple"),
            ):
                swept = sorted(
                    (r for r in group if r["policy"] == policy), key=lambda r: r["acceleratorHours"]
                )
                if swept:
                    ax.plot(*xy(swept), marker=".", color=colour, linewidth=0.8, label=policy[6:])
            peers = [r for r in group if not r["swept"] and r["label"] not in (DEFAULT, BOUND)]
            ax.scatter(*xy(peers), s=14, color="tab:orange", label="peers at defaults", zorder=3)
            default = [r for r in group if r["label"] == DEFAULT]
            ax.scatter(*xy(default), s=90, marker="*", color="tab:red", label="default", zorder=4)
            ax.axvline(1.0, color="black", linewidth=0.6, linestyle=":")
            ax.axhline(99.0, color="black", linewidth=0.6, linestyle="--")
            ax.set_title(f"{model}, {trace}", fontsize=8)
            ax.set_ylim(max(0.0, min(100 * r["sloAttainment"] for r in group) - 2), 100.5)
            ax.tick_params(labelsize=7)
            if i == len(models) - 1:
                ax.set_xlabel("accelerator-hours / bound", fontsize=7)
            if j == 0:
                ax.set_ylabel("% within SLO", fontsize=7)
    axes[0][0].legend(fontsize=6, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=70)
    plt.close(figure)


def refresh_docs(path: Path, text: str) -> None:
    doc = path.read_text()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} section to refresh")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def run(jobs: list[Job], workers: int) -> list[dict[str, Any]]:
    if workers <= 1:
        return [run_job(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run_job, jobs, chunksize=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    parser.add_argument("--traces", nargs="*", choices=list(GENERATORS))
    parser.add_argument("--capacity-errors", nargs="*", type=float, default=list(CAPACITY_ERRORS))
    parser.add_argument("--quick", action="store_true", help=f"only the traces {', '.join(QUICK_TRACES)}")
    parser.add_argument("--no-sweeps", action="store_true", help="the policies at their defaults only")
    parser.add_argument(
        "--policies",
        nargs="*",
        metavar="NAME",
        help="run only these policies (names as in gpupool simulate, 'sweeps' for the swept points); "
        "merge the rows with those of other runs through --from-json",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="simulations run in parallel")
    parser.add_argument("--out", default=str(ROOT / "results" / "autoscale.json"))
    parser.add_argument("--docs", help="refresh the benchmark section of this Markdown file")
    parser.add_argument("--plot", help="write a PNG of the cost/SLO frontiers")
    parser.add_argument(
        "--from-json",
        nargs="*",
        metavar="FILE",
        help="report the rows of earlier runs (their --out files, merged) instead of running",
    )
    args = parser.parse_args(argv)
    traces = args.traces or list(QUICK_TRACES if args.quick else GENERATORS)

    if args.from_json:
        documents = [json.loads(Path(name).read_text()) for name in args.from_json]
        rows = [row for document in documents for row in document["rows"]]
        present = {row["trace"] for row in rows}
        traces = [t for t in GENERATORS if t in present]
        elapsed = float(sum(document.get("elapsedSeconds", 0) for document in documents))
    else:
        jobs = jobs_for(
            args.models,
            traces,
            args.capacity_errors,
            args.seed,
            sweeps=not args.no_sweeps,
            policies=args.policies,
        )
        started = time.perf_counter()
        rows = run(jobs, args.jobs)
        elapsed = time.perf_counter() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"seed": args.seed, "elapsedSeconds": round(elapsed), "rows": rows}, indent=1) + "\n"
    )
    print(f"wrote {out}", file=sys.stderr)
    text = tables(rows, traces)
    print(text)
    found = verdicts(rows)
    for verdict in found:
        print(verdict.line())
    unbeaten = sum(1 for v in found if not v.beaten)
    met = sum(1 for v in found if v.meets_slo_and_cost)
    print(
        f"default not beaten on both axes on {unbeaten} of {len(found)}; >= 99% SLO at <= 1.3x the "
        f"bound on {met} of {len(found)} ({len(rows)} simulations, {elapsed:.0f} s on {args.jobs} workers)"
    )
    if args.plot:
        plot_frontiers(rows, Path(args.plot))
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.docs:
        refresh_docs(Path(args.docs), text)
        print(f"refreshed {args.docs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
