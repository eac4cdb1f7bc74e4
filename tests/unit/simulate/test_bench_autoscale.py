"""The autoscaling benchmark's machinery on a bounded subset: one short trace, each policy once."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_autoscale", ROOT / "bench" / "autoscale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def row(label: str, hours: float, slo: float, **extra: Any) -> dict[str, Any]:
    return {"label": label, "acceleratorHours": hours, "sloAttainment": slo, **extra}


def test_beaten_on_both_axes_and_the_frontier(bench: ModuleType) -> None:
    default = row(bench.DEFAULT, 10.0, 0.95)
    others = [
        row("cheaper and better", 9.0, 0.97),
        row("cheaper, worse", 8.0, 0.90),
        row("better, dearer", 12.0, 0.999),
        row("same hours as printed", 10.04, 0.99),
        row(bench.BOUND, 7.0, 0.999),  # clairvoyant: never counts as beating it
    ]
    assert [r["label"] for r in bench.beaten_by(default, others)] == ["cheaper and better"]
    front = bench.frontier([default, *others])
    assert [r["label"] for r in front] == [bench.BOUND]
    front = bench.frontier([default, *others[:4]])
    expected = ["cheaper, worse", "cheaper and better", "same hours as printed", "better, dearer"]
    assert [r["label"] for r in front] == expected


def test_one_short_trace_every_policy_once(bench: ModuleType, tmp_path: Path) -> None:
    model, trace = "llama-3.1-8b", "spike"
    jobs = [bench.Job(model, trace, 1.0, label, name) for label, name in bench.AT_DEFAULTS]
    jobs += [
        bench.Job(model, trace, 1.0, "HPA-QPS 60%", "sweep-hpa-qps", 0.6),
        bench.Job(model, trace, 1.0, "Knative KPA, 40 per pod", "sweep-kpa", 40),
        bench.Job(model, trace, 1.0, "static 3", "sweep-static", 3),
    ]
    rows = bench.run(jobs, 1)
    assert [r["label"] for r in rows] == [j.label for j in jobs]
    by_label = {r["label"]: r for r in rows}
    bound = by_label[bench.BOUND]
    # The bound pays the least of all that serve the trace within the SLO.
    served = [r for r in rows if r["sloAttainment"] >= bound["sloAttainment"] and r is not bound]
    assert all(r["acceleratorHours"] >= bound["acceleratorHours"] for r in served)
    assert by_label["static 3"]["peakInstances"] == 3 and by_label["static 3"]["scaleEvents"] == 0
    (verdict,) = bench.verdicts(rows)
    assert verdict.multiple == pytest.approx(
        by_label[bench.DEFAULT]["acceleratorHours"] / bound["acceleratorHours"]
    )
    assert verdict.line().startswith(f"{model} {trace} x1: default ")
    text = bench.tables(rows, [trace])
    for label, _ in bench.AT_DEFAULTS:
        assert f"| {trace} | {label} |" in text
    plot = tmp_path / "frontiers.png"
    bench.plot_frontiers(rows, plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_grid_has_every_trace_capacity_error_and_sweep(bench: ModuleType) -> None:
    jobs = bench.jobs_for(["llama-3.1-70b"], ["bursts", "step"], [0.7, 1.3], 0, sweeps=True)
    keys = {(j.trace, j.capacity_error) for j in jobs}
    assert keys == {("bursts", 0.7), ("bursts", 1.3), ("step", 0.7), ("step", 1.3)}
    kinds = {j.policy for j in jobs}
    assert {"default", "bound", "knative-kpa", "sweep-hpa-qps", "sweep-kpa", "sweep-static"} <= kinds
    statics = sorted(j.setting for j in jobs if j.policy == "sweep-static" and j.trace == "bursts")
    assert statics[-1] == 12  # up to spec.scaling.maxReplicas
