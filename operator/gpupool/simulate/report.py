"""What a simulation is worth: a summary table, a JSON document and a plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gpupool.simulate.simulator import SimulationResult
from gpupool.simulate.traces import Trace


def _seconds(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def summary_rows(result: SimulationResult) -> list[tuple[str, str]]:
    summary = result.summary()
    reaction = result.reaction_seconds
    ups = summary["scaleUps"]
    downs = summary["scaleDowns"]
    p99 = result.ttft_quantile(0.99)
    return [
        ("accelerator-hours", f"{result.accelerator_hours:.1f}"),
        (
            f"requests within the SLO (TTFT <= {result.latency_slo_seconds * 1000:.0f} ms)",
            f"{result.slo_attainment:.2%}",
        ),
        ("p99 time to first token", _seconds(p99) if math.isfinite(p99) else "beyond the queue time-out"),
        ("failed requests (queue time-out)", f"{result.error_rate:.2%}"),
        ("scale events", f"{len(result.scale_events)} ({ups} up, {downs} down)"),
        (
            "reaction time (Ready capacity below the load)",
            "never below" if reaction is None else f"mean {reaction[0]:.0f} s, longest {reaction[1]:.0f} s",
        ),
        ("peak instances", str(summary["peakInstances"])),
    ]


def format_summary(label: str, trace: Trace, result: SimulationResult) -> str:
    head = (
        f"{label}\ntrace {trace.name}: {trace.duration / 3600:.1f} h, peak {trace.peak:.1f} QPS; "
        f"policy {result.policy}"
    )
    rows = summary_rows(result)
    width = max(len(name) for name, _ in rows) + 2
    return "\n".join([head, *(name.ljust(width) + value for name, value in rows)])


def result_document(label: str, trace: Trace, result: SimulationResult) -> dict[str, Any]:
    return {
        "model": label,
        "trace": {"name": trace.name, "durationSeconds": trace.duration, "peakQps": trace.peak},
        "summary": result.summary(),
        "scaleEvents": [
            {"time": e.time, "from": e.from_replicas, "to": e.to_replicas, "reason": e.reason}
            for e in result.scale_events
        ],
        "timeline": [
            {
                "time": p.time,
                "offeredQps": round(p.offered_qps, 4),
                "instancesAsked": p.desired,
                "instancesStarting": p.starting,
                "instancesReady": p.ready,
                "ttftP99Seconds": _finite_or_none(p.ttft_p99_seconds),
                "errorsPerSecond": round(p.failed_qps, 4),
            }
            for p in result.timeline
        ],
    }


def _finite_or_none(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def plot(
    result: SimulationResult, path: str | Path, title: str, capacity_per_instance: float | None = None
) -> None:
    """Offered load, instances asked for and Ready against the instances the load needs (at
    `capacity_per_instance`), and p99 time to first token over time (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = result.timeline
    every = max(1, len(points) // 4000)
    points = points[::every]
    hours = len(points) and points[-1].time > 4 * 3600
    scale, unit = (3600.0, "h") if hours else (60.0, "min")
    times = [p.time / scale for p in points]
    figure, (load, replicas, latency) = plt.subplots(3, 1, sharex=True, figsize=(11, 8))
    figure.suptitle(f"{title}\ntrace {result.trace}, policy {result.policy}", fontsize=10)
    load.plot(times, [p.served_qps for p in points], label="served QPS", color="tab:green", alpha=0.5)
    load.plot(times, [p.offered_qps for p in points], label="offered QPS", color="tab:blue")
    load.set_ylabel("requests / s")
    load.legend(loc="upper left", fontsize=8)
    if capacity_per_instance:
        replicas.fill_between(
            times,
            [p.offered_qps / capacity_per_instance for p in points],
            color="tab:blue",
            alpha=0.15,
            label="load, in instances",
        )
    replicas.step(times, [p.desired for p in points], where="post", label="asked", color="tab:orange")
    replicas.step(times, [p.ready for p in points], where="post", label="Ready", color="tab:green")
    replicas.step(times, [p.pods for p in points], where="post", label="billed", color="tab:gray", alpha=0.5)
    replicas.set_ylabel("instances")
    replicas.legend(loc="upper left", fontsize=8)
    latency.plot(times, [p.ttft_p99_seconds for p in points], label="p99 TTFT", color="tab:red")
    latency.axhline(result.latency_slo_seconds, color="black", linestyle="--", linewidth=0.8, label="SLO")
    latency.set_yscale("log")
    latency.set_ylabel("seconds")
    latency.set_xlabel(unit)
    latency.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
