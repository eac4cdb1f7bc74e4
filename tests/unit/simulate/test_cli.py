"""`gpupool simulate`: plans the model, replays the trace, prints or writes the results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.cli import main

ROOT = Path(__file__).resolve().parents[3]
MODEL = str(ROOT / "manifests" / "samples" / "llama-3.1-8b-vllm-nvidia.yaml")
POOL = str(ROOT / "manifests" / "samples" / "pool-nvidia-h100.yaml")


def test_json_summary_of_a_built_in_trace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "-f", MODEL, "--pool", POOL, "--trace", "spike", "-o", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    summary = document["summary"]
    assert summary["trace"] == "spike" and summary["policy"] == "default"
    assert 0 <= summary["sloAttainment"] <= 1 and summary["acceleratorHours"] > 0
    assert document["trace"]["peakQps"] == pytest.approx(20)  # the sample's spec.traffic.peakQps
    assert "llama-3.1-8b bf16 on H100-80GB" in document["model"]


def test_table_from_a_csv_trace_with_a_plot_and_a_policy_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("t_seconds,qps\n0,5\n600,40\n1200,40\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text("targetUtilization: 0.6\nscaleDownUtilization: 0.3\n")
    plot = tmp_path / "out.png"
    args = ["simulate", "-f", MODEL, "--pool", POOL, "--trace", str(trace), "--plot", str(plot)]
    assert main([*args, "--policy-file", str(policy), "--policy", "default"]) == 0
    out = capsys.readouterr().out
    assert "trace trace: 0.3 h, peak 40.0 QPS; policy default" in out
    assert "accelerator-hours" in out and "scale events" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_timeline_and_a_rescaled_csv_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("time,rps\n0,1\n600,4\n1200,4\n")
    args = ["simulate", "-f", MODEL, "--pool", POOL, "--trace", str(trace), "-o", "json"]
    assert main([*args, "--peak-qps", "40", "--capacity-error", "0.7"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["trace"]["peakQps"] == pytest.approx(40)  # 4 QPS at most, rescaled to 40
    timeline = document["timeline"]
    assert len(timeline) == 1200 // 5
    point = timeline[-1]
    assert set(point) == {
        "time",
        "offeredQps",
        "instancesAsked",
        "instancesStarting",
        "instancesReady",
        "ttftP99Seconds",
        "errorsPerSecond",
    }
    assert point["offeredQps"] == pytest.approx(40)
    # A pod asked away serves to the end of the step in which the count went down.
    downs = {e["time"] for e in document["scaleEvents"] if e["to"] < e["from"]}
    assert all(p["instancesAsked"] >= p["instancesReady"] for p in timeline if p["time"] not in downs)
    assert any(p["instancesStarting"] > 0 for p in timeline)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--trace", "tsunami"], "neither a built-in trace"),
        (["--trace", "step", "--capacity-error", "0"], "capacity error must be positive"),
        (["--trace", "step", "--policy-file", "/nonexistent.yaml"], "cannot read"),
    ],
)
def test_bad_input_is_one_line(extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "-f", MODEL, "--pool", POOL, *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_the_pool_must_be_given(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "-f", MODEL, "--trace", "step"])
    assert "pass it with --pool" in capsys.readouterr().err


@pytest.mark.parametrize("policy", ["bound", "knative-kpa"])
def test_peers_and_the_bound_by_name(policy: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "-f", MODEL, "--pool", POOL, "--trace", "spike", "-o", "json", "--policy", policy]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["policy"] == policy and summary["acceleratorHours"] > 0
