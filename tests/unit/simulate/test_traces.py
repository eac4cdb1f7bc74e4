"""Traces: the CSV loader and the built-in shapes."""

from __future__ import annotations

import itertools
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


def test_csv_with_a_header_of_any_names_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes("\ufefftimestamp , requests_per_second\n0,4\n60,8\n".encode())
    trace = load_csv(path)
    assert trace.times == (0.0, 60.0) and trace.qps == (4.0, 8.0)
    # Without a header, and with a byte-order mark before the first number.
    path.write_bytes("\ufeff0,4\n60,8\n".encode())
    assert load_csv(path).qps == (4.0, 8.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,1,2\n", r"bad.csv:1: expected two columns"),
        ("t,qps\n0,1\n60,fast\n", r"bad.csv:3: 'fast' is not a number"),
        ("0,1\n60,nan\n", r"bad.csv:2: 'nan' is not a number"),
        ("0,1\n\n10,1\n5,1\n", r"bad.csv:4: time 5 does not follow 10"),
        ("0,1\n10,1\n10,2\n", r"bad.csv:3: time 10 does not follow 10"),
        ("0,-1\n", r"bad.csv:1: negative QPS -1"),
        ("-5,1\n", r"bad.csv:1: negative time -5"),
        ("", r"bad.csv: no points"),
        ("t_seconds,qps\n# nothing yet\n", r"bad.csv: no points"),
    ],
)
def test_csv_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        load_csv(path)
    assert "\n" not in str(err.value)


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


@pytest.mark.parametrize("name", ["noisy", "bursts", "two-peak", "ramp-dip", "flash-crowd", "diurnal"])
def test_noise_changes_with_the_seed(name: str) -> None:
    assert builtin(name, 50, seed=1) != builtin(name, 50, seed=2)


def test_bursts_are_shorter_than_a_slow_model_load() -> None:
    trace = builtin("bursts", 100)
    # Above half the peak for about 3.3 min at a time (a 70B model loads in ~7 min), every ~12 min.
    high = [t for t in range(0, int(trace.duration), 5) if trace.at(t) > 60]
    runs: list[list[int]] = []
    for t in high:
        if runs and t - runs[-1][-1] == 5:
            runs[-1].append(t)
        else:
            runs.append([t])
    lengths = [run[-1] - run[0] + 5 for run in runs]
    assert len(runs) >= 8 and all(190 <= length <= 215 for length in lengths)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(runs)]
    assert all(11 * 60 - 5 <= gap <= 13 * 60 + 5 for gap in gaps)


def test_two_peak_day_and_flash_crowd_shapes() -> None:
    day = builtin("two-peak", 100)
    assert day.duration == 12 * 3600
    morning, lunch, afternoon = day.at(3 * 3600), day.at(5.5 * 3600), day.at(8 * 3600)
    assert morning > 90 and afternoon > 70 and lunch < 0.8 * afternoon
    flash = builtin("flash-crowd", 100)
    assert flash.at(39 * 60) < 30 and flash.at(41 * 60) > 90 and flash.at(100 * 60) < 35


def test_unknown_trace() -> None:
    with pytest.raises(ValueError, match="unknown trace"):
        builtin("tsunami", 10)


def test_trace_validation() -> None:
    with pytest.raises(ValueError, match="values"):
        Trace("x", (0.0, 1.0), (1.0,))
