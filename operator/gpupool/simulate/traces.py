"""Offered load over time: traces from CSV files and built-in shapes with fixed seeds.

A trace is a list of (t_seconds, qps) points read by linear interpolation; before the first point
and after the last one it holds the nearest value. The built-in shapes are fractions of a peak:

| name    | shape                                                                      | length |
| ------- | -------------------------------------------------------------------------- | ------ |
| step    | 30% of peak for 30 min, then 100% at once for an hour                       | 90 min |
| ramp    | 10% for 20 min, up to 100% over 30 min, 20 min at peak, down over 30 min   | 2 h    |
| diurnal | two days of a working-day pattern: 10% at night, morning rise to the       | 48 h   |
|         | midday peak, lunch dip, evening decline; +-5% noise every 5 min             |        |
| spike   | 40% with a 10-minute burst to 100% at 30 min                                | 80 min |
| noisy   | 60% with independent +-20% (uniform) noise every 15 s                       | 1 h    |
"""

from __future__ import annotations

import csv
import math
import random
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

MINUTE = 60.0
HOUR = 3600.0
DAY = 86_400.0


@dataclass(frozen=True)
class Trace:
    """Offered QPS over time, linearly interpolated between points."""

    name: str
    times: tuple[float, ...]
    qps: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.times:
            raise ValueError(f"trace {self.name!r} has no points")
        if len(self.times) != len(self.qps):
            raise ValueError(f"trace {self.name!r}: {len(self.times)} times for {len(self.qps)} values")
        if any(b <= a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise ValueError(f"trace {self.name!r}: times must increase strictly")
        if any(not math.isfinite(q) or q < 0 for q in self.qps):
            raise ValueError(f"trace {self.name!r}: QPS must be finite and non-negative")

    @property
    def duration(self) -> float:
        return self.times[-1] - self.times[0]

    @property
    def peak(self) -> float:
        return max(self.qps)

    def at(self, t: float) -> float:
        if t <= self.times[0]:
            return self.qps[0]
        if t >= self.times[-1]:
            return self.qps[-1]
        i = bisect_right(self.times, t)
        t0, t1 = self.times[i - 1], self.times[i]
        q0, q1 = self.qps[i - 1], self.qps[i]
        return q0 + (q1 - q0) * (t - t0) / (t1 - t0)

    def scaled(self, factor: float) -> Trace:
        return Trace(self.name, self.times, tuple(q * factor for q in self.qps))


def load_csv(path: str | Path) -> Trace:
    """A `t_seconds,qps` CSV (a header line is optional); ValueError with the line on bad input."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror}") from err
    times: list[float] = []
    values: list[float] = []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if number == 1 and row[0].strip() == "t_seconds":
            continue
        if len(row) != 2:
            raise ValueError(f"{path}:{number}: expected t_seconds,qps, got {','.join(row)!r}")
        try:
            times.append(float(row[0]))
            values.append(float(row[1]))
        except ValueError as err:
            raise ValueError(f"{path}:{number}: not a number: {err}") from err
    try:
        return Trace(path.stem, tuple(times), tuple(values))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def _points(name: str, points: Sequence[tuple[float, float]], peak_qps: float) -> Trace:
    return Trace(name, tuple(t for t, _ in points), tuple(f * peak_qps for _, f in points))


def step(peak_qps: float, seed: int = 0) -> Trace:
    del seed  # deterministic shape
    return _points(
        "step", [(0, 0.3), (30 * MINUTE, 0.3), (30 * MINUTE + 1, 1.0), (90 * MINUTE, 1.0)], peak_qps
    )


def ramp(peak_qps: float, seed: int = 0) -> Trace:
    del seed
    points = [(0, 0.1), (20 * MINUTE, 0.1), (50 * MINUTE, 1.0), (70 * MINUTE, 1.0), (100 * MINUTE, 0.1)]
    return _points("ramp", [*points, (120 * MINUTE, 0.1)], peak_qps)


def spike(peak_qps: float, seed: int = 0) -> Trace:
    del seed
    points = [(0, 0.4), (30 * MINUTE, 0.4), (30 * MINUTE + 1, 1.0), (40 * MINUTE, 1.0)]
    return _points("spike", [*points, (40 * MINUTE + 1, 0.4), (80 * MINUTE, 0.4)], peak_qps)


def _working_day(hour: float) -> float:
    """Fraction of the daily peak at `hour` (0-24): night trough, morning rise, lunch dip, evening."""

    def bump(centre: float, width: float, height: float) -> float:
        return height * math.exp(-0.5 * ((hour - centre) / width) ** 2)

    return 0.1 + bump(11.0, 1.8, 0.9) + bump(15.5, 2.0, 0.75) + bump(20.5, 1.5, 0.35) - bump(13.0, 0.6, 0.2)


def diurnal(peak_qps: float, seed: int = 0, days: int = 2) -> Trace:
    rng = random.Random(seed)
    step_seconds = 5 * MINUTE
    count = int(days * DAY / step_seconds) + 1
    shape = [_working_day((i * step_seconds % DAY) / HOUR) for i in range(count)]
    top = max(shape)
    points = [
        (i * step_seconds, max(0.0, value / top * (1 + rng.uniform(-0.05, 0.05))))
        for i, value in enumerate(shape)
    ]
    top = max(f for _, f in points)
    return _points("diurnal", [(t, f / top) for t, f in points], peak_qps)


def noisy(peak_qps: float, seed: int = 0) -> Trace:
    rng = random.Random(seed)
    step_seconds = 15.0
    count = int(HOUR / step_seconds) + 1
    points = [(i * step_seconds, 0.6 * (1 + rng.uniform(-0.2, 0.2))) for i in range(count)]
    return _points("noisy", points, peak_qps)


GENERATORS: dict[str, Callable[[float, int], Trace]] = {
    "step": step,
    "ramp": ramp,
    "diurnal": diurnal,
    "spike": spike,
    "noisy": noisy,
}


def builtin(name: str, peak_qps: float, seed: int = 0) -> Trace:
    try:
        generator = GENERATORS[name]
    except KeyError:
        raise ValueError(f"unknown trace {name!r}; built in: {', '.join(GENERATORS)}") from None
    return generator(peak_qps, seed)
