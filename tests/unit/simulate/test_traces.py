"""Traces: the CSV loader and the built-in shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.simulate.traces import GENERATORS, Trace, builtin, load_csv


def test_csv_with_header_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "morning.csv"
    path.write_text("t_seconds,qps\n# quiet night\n0,2\n\n600,2\n1200,10\n")
    trace = load_csv(path)
    assert trace.name == "morning"
    assert trace.times == (0.0, 600.0, 1200.0)
    assert trace.at(900) == 6.0  # halfway from 2 to 10
    assert trace.at(-5) == 2.0 and trace.at(5000) == 10.0
    assert trace.duration == 1200 and trace.peak == 10


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,1,2\n", "expected t_seconds,qps"),
        ("0,fast\n", "not a number"),
        ("10,1\n5,1\n", "increase strictly"),
        ("0,-1\n", "non-negative"),
        ("", "no points"),
    ],
)
def test_csv_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_csv(path)


def test_missing_file() -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_csv("/nonexistent/trace.csv")


def test_step_shape() -> None:
    trace = builtin("step", 100)
    assert trace.at(29 * 60) == pytest.approx(30) and trace.at(31 * 60) == pytest.approx(100)
    assert trace.duration == 90 * 60


@pytest.mark.parametrize("name", list(GENERATORS))
def test_builtins_peak_at_the_peak_and_repeat_with_a_seed(name: str) -> None:
    trace = builtin(name, 50, seed=3)
    assert trace.peak <= 50 + 1e-9
    assert trace.peak >= (0.7 * 50 if name == "noisy" else 50 - 1e-9)
    assert builtin(name, 50, seed=3) == trace


def test_noise_changes_with_the_seed() -> None:
    assert builtin("noisy", 50, seed=1) != builtin("noisy", 50, seed=2)


def test_unknown_trace() -> None:
    with pytest.raises(ValueError, match="unknown trace"):
        builtin("tsunami", 10)


def test_trace_validation() -> None:
    with pytest.raises(ValueError, match="values"):
        Trace("x", (0.0, 1.0), (1.0,))
