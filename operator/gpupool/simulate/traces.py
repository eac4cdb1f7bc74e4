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
| bursts  | 30%, and every 12 min (+-1 min) a 3-min burst to 90-100%: shorter than a    | 2 h    |
|         | slow model's load                                                          |        |
| two-peak | a business day, 07:00-19:00: morning peak at 10:00, lunch dip, afternoon   | 12 h   |
|         | peak at 15:00 (85%); +-5% noise every 5 min                                 |        |
| ramp-dip | 10%, a 60-min ramp to 100% with an 8-min dip to half at its middle, 20 min  | 2 h    |
|         | at peak, down over 20 min; +-3% noise every minute                          |        |
| flash-crowd | 25% for 40 min, 100% within 30 s for 12 min, back with a 5-min time     | 2 h    |
|         | constant: a one-off surprise; +-5% noise every 30 s                          |        |

Every shape with noise draws it from `seed`: the same seed gives the same trace.
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


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def load_csv(path: str | Path) -> Trace:
    """A CSV of time (seconds) and QPS, one point a line; the first line may be a header of any
    names, a UTF-8 byte-order mark is ignored, so are blank lines and lines starting with `#`.

    ValueError with the file and line on bad input: no points, a cell that is not a number, a time
    that does not follow the one before, a negative time or QPS.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror}") from err
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (expected UTF-8 CSV lines of t_seconds,qps)") from None
    times: list[float] = []
    values: list[float] = []
    first = True
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        cells = [cell.strip() for cell in row]
        parsed = [_number(cell) for cell in cells]
        if first and len(cells) == 2 and parsed[0] is None and parsed[1] is None:
            first = False
            continue  # a header, whatever its names
        first = False
        if len(cells) != 2:
            raise ValueError(
                f"{path}:{number}: expected two columns (time in seconds, QPS), got {len(cells)}"
            )
        for cell, value in zip(cells, parsed, strict=True):
            if value is None:
                raise ValueError(f"{path}:{number}: {cell!r} is not a number")
        t, qps = parsed
        assert t is not None and qps is not None
        if t < 0 or qps < 0:
            which = "time" if t < 0 else "QPS"
            raise ValueError(f"{path}:{number}: negative {which} {t if t < 0 else qps:g}")
        if times and t <= times[-1]:
            raise ValueError(
                f"{path}:{number}: time {t:g} does not follow {times[-1]:g}: sort the lines by time"
            )
        times.append(t)
        values.append(qps)
    if not times:
        raise ValueError(f"{path}: no points (expected lines of time in seconds, QPS)")
    return Trace(path.stem, tuple(times), tuple(values))


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


def bursts(peak_qps: float, seed: int = 0) -> Trace:
    """Recurring bursts shorter than a slow model's load: 30% of peak, and every 12 min (+-1 min) a
    burst to 90-100% that rises in 20 s, holds 3 min and falls in 20 s; 2 h."""
    rng = random.Random(seed)
    points: list[tuple[float, float]] = [(0.0, 0.3)]
    start = 6 * MINUTE
    while start + 4 * MINUTE < 2 * HOUR:
        height = rng.uniform(0.9, 1.0)
        points += [(start, 0.3), (start + 20, height), (start + 200, height), (start + 220, 0.3)]
        start += 12 * MINUTE + rng.uniform(-MINUTE, MINUTE)
    points.append((2 * HOUR, 0.3))
    top = max(f for _, f in points)
    return _points("bursts", [(t, f / top) for t, f in points], peak_qps)


def _business_day(hour: float) -> float:
    """Fraction of the peak at `hour` (7-19): a morning peak at 10:00, a lunch dip, a lower
    afternoon peak at 15:00."""

    def bump(centre: float, width: float, height: float) -> float:
        return height * math.exp(-0.5 * ((hour - centre) / width) ** 2)

    return 0.12 + bump(10.0, 1.2, 0.88) + bump(15.0, 1.4, 0.75) - bump(12.5, 0.5, 0.15)


def business_day(peak_qps: float, seed: int = 0) -> Trace:
    """A two-peak business day from 07:00 to 19:00 (12 h), +-5% noise every 5 min."""
    rng = random.Random(seed)
    step_seconds = 5 * MINUTE
    count = int(12 * HOUR / step_seconds) + 1
    raw = [
        max(0.0, _business_day(7 + i * step_seconds / HOUR) * (1 + rng.uniform(-0.05, 0.05)))
        for i in range(count)
    ]
    top = max(raw)
    return _points("two-peak", [(i * step_seconds, f / top) for i, f in enumerate(raw)], peak_qps)


def ramp_dip(peak_qps: float, seed: int = 0) -> Trace:
    """10% for 15 min, a ramp to 100% over 60 min interrupted at its middle by a 8-min dip to half
    the level reached, 20 min at peak, down to 10% over 20 min; +-3% noise every minute; 2 h."""
    rng = random.Random(seed)

    def shape(t: float) -> float:
        minute = t / MINUTE
        if minute < 15:
            return 0.1
        if minute < 75:
            level = 0.1 + 0.9 * (minute - 15) / 60
            return level * 0.5 if 45 <= minute < 53 else level
        if minute < 95:
            return 1.0
        if minute < 115:
            return 1.0 - 0.9 * (minute - 95) / 20
        return 0.1

    points = [(i * MINUTE, shape(i * MINUTE) * (1 + rng.uniform(-0.03, 0.03))) for i in range(121)]
    top = max(f for _, f in points)
    return _points("ramp-dip", [(t, f / top) for t, f in points], peak_qps)


def flash_crowd(peak_qps: float, seed: int = 0) -> Trace:
    """A one-off flash crowd: 25% of peak for 40 min, up to 100% within 30 s, 12 min there, then
    back to 25% with a 5-min time constant; +-5% noise every 30 s; 2 h."""
    rng = random.Random(seed)

    def shape(t: float) -> float:
        onset = 40 * MINUTE
        if t < onset:
            return 0.25
        if t < onset + 30:
            return 0.25 + 0.75 * (t - onset) / 30
        if t < onset + 30 + 12 * MINUTE:
            return 1.0
        return 0.25 + 0.75 * math.exp(-(t - onset - 30 - 12 * MINUTE) / (5 * MINUTE))

    count = int(2 * HOUR / 30) + 1
    points = [(i * 30.0, shape(i * 30.0) * (1 + rng.uniform(-0.05, 0.05))) for i in range(count)]
    top = max(f for _, f in points)
    return _points("flash-crowd", [(t, f / top) for t, f in points], peak_qps)


GENERATORS: dict[str, Callable[[float, int], Trace]] = {
    "step": step,
    "ramp": ramp,
    "diurnal": diurnal,
    "spike": spike,
    "noisy": noisy,
    "bursts": bursts,
    "two-peak": business_day,
    "ramp-dip": ramp_dip,
    "flash-crowd": flash_crowd,
}


def builtin(name: str, peak_qps: float, seed: int = 0) -> Trace:
    try:
        generator = GENERATORS[name]
    except KeyError:
        raise ValueError(f"unknown trace {name!r}; built in: {', '.join(GENERATORS)}") from None
    return generator(peak_qps, seed)
