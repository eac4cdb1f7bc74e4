"""The autoscaler's own memory of demand: one value a minute over the last day, and what it tells.

Prometheus' coarse history feeds the daily seasonal forecast; this one is kept by the policy itself
(in `status.autoscaling.state`, so it survives a restart) at a step fine enough to see a burst
that recurs every few minutes. From it the policy learns:

- the period of the traffic, from minutes to half a day, by autocorrelation (`detect_period`);
- what one period ago says about the next load time (`periodic_forecast`);
- how much the demand rose within one load time, at a quantile (`rise_quantile`): the burst
  headroom;
- how long, from a moment like now, until a higher count is needed again (`residual_wait`): the
  ski-rental scale-down.

Pure and small: at most `MAX_POINTS` floats, rounded so that the status stays a few kilobytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

from pydantic import Field

from gpupool.api.base import ApiModel

STEP_SECONDS = 60.0
# One day of minutes: the longest period the policy looks for is half of it.
MAX_POINTS = 1440
# Periods shorter than this are noise or the load balancer, not a pattern worth pre-starting for.
MIN_PERIOD_SECONDS = 5 * 60.0
# The autocorrelation at the period must reach this to count: a clear repetition, not a trend.
MIN_CORRELATION = 0.5
# ... and stand this many standard errors above what noise gives: the autocorrelation of n - lag
# pairs of white noise spreads by about 1 / sqrt(n - lag), so on a short history, at a long lag,
# some lag of 60 minutes of noise reaches 0.5 by chance one time in ten (a scan of ~25 lags).
NOISE_SIGMAS = 3.5
# ... and the demand must swing by at least this share of its median: a few minutes of Poisson noise
# around a steady level correlate at some lag by chance, and their "period" announces nothing.
MIN_SWING = 0.25
# The fine scan looks at the last this many points; longer periods are scanned at a coarser step.
FINE_POINTS = 240
COARSE_POINTS = 288
_DIGITS = 4


def _rounded(value: float) -> float:
    if value == 0 or not math.isfinite(value):
        return 0.0
    return round(value, max(0, _DIGITS - 1 - math.floor(math.log10(abs(value)))))


class DemandHistory(ApiModel):
    """Demand (QPS) averaged per `STEP_SECONDS`, the newest last; the last step still filling."""

    start: float = Field(description="Start of the first step, Unix seconds.")
    values: list[float] = Field(default_factory=list, description="Mean demand of each step, QPS.")
    filling_count: int = Field(default=0, ge=0, description="Samples in the last step so far.")

    @property
    def end(self) -> float:
        return self.start + STEP_SECONDS * len(self.values)

    def complete(self) -> list[float]:
        """The values of the finished steps."""
        return self.values[:-1] if self.filling_count else list(self.values)

    def added(self, now: float, demand: float) -> DemandHistory:
        """This history with one more sample of `demand` at `now`; gaps are filled with the last value."""
        index = math.floor((now - self.start) / STEP_SECONDS)
        if index < 0:
            return self
        values = list(self.values)
        count = self.filling_count
        last_index = len(values) - 1
        if index == last_index and count:
            values[-1] = _rounded((values[-1] * count + demand) / (count + 1))
            count += 1
        else:
            filler = values[-1] if values else demand
            values.extend([filler] * max(0, index - len(values)))
            values.append(_rounded(demand))
            count = 1
        start = self.start
        if len(values) > MAX_POINTS:
            drop = len(values) - MAX_POINTS
            values = values[drop:]
            start += drop * STEP_SECONDS
        return DemandHistory(start=start, values=values, filling_count=count)


def new_history(now: float, demand: float) -> DemandHistory:
    start = math.floor(now / STEP_SECONDS) * STEP_SECONDS
    return DemandHistory(start=start).added(now, demand)


def _autocorrelation(values: Sequence[float], lag: int) -> float:
    n = len(values) - lag
    if n < 2:
        return 0.0
    head, tail = values[:n], values[lag:]
    mean_h, mean_t = sum(head) / n, sum(tail) / n
    cov = sum((a - mean_h) * (b - mean_t) for a, b in zip(head, tail, strict=True))
    var_h = sum((a - mean_h) ** 2 for a in head)
    var_t = sum((b - mean_t) ** 2 for b in tail)
    if var_h <= 0 or var_t <= 0:
        return 0.0
    return cov / math.sqrt(var_h * var_t)


def _coarse(values: Sequence[float], factor: int) -> list[float]:
    return [sum(values[i : i + factor]) / len(values[i : i + factor]) for i in range(0, len(values), factor)]


def _best_lag(values: Sequence[float], min_lag: int) -> tuple[int, float] | None:
    """The clearest peak of the autocorrelation at lags min_lag .. len/2: its lag and value.

    A lag counts when its correlation reaches MIN_CORRELATION (and NOISE_SIGMAS standard errors of
    white noise's at that lag) and rises at least
    MIN_CORRELATION above the lowest correlation of the shorter lags: a repetition falls out of
    step and back in, where a trend or a level shift correlates at every short lag and never dips.
    Among those, the highest, unless a shorter one is as high (a repetition every P also correlates
    at 2P, 3P, and the shortest one is the period).
    """
    best: tuple[int, float] | None = None
    lowest = 1.0
    for lag in range(1, len(values) // 2 + 1):
        r = _autocorrelation(values, lag)
        lowest = min(lowest, r)
        chance = NOISE_SIGMAS / math.sqrt(len(values) - lag)
        if lag < min_lag or r < max(MIN_CORRELATION, chance) or r - lowest < MIN_CORRELATION:
            continue
        # Climb to the top of the first peak; a later peak must be clearly higher.
        if best is None or (r > best[1] and lag < 1.5 * best[0]) or r > best[1] + 0.05:
            best = (lag, r)
    return best


def _swings(values: Sequence[float]) -> bool:
    """Whether the demand moves by at least MIN_SWING of its median (a pattern, not noise), from
    its 10th to its 90th percentile: a minute or two of a start-up's backlog is no swing."""
    if not values:
        return False
    ordered = sorted(values)
    low, high = ordered[len(ordered) // 10], ordered[(len(ordered) * 9) // 10 - (len(ordered) % 10 == 0)]
    median = ordered[len(ordered) // 2]
    return median > 0 and high - low >= MIN_SWING * median


def detect_period(values: Sequence[float]) -> tuple[float, float] | None:
    """(period in seconds, autocorrelation) of the repetition in the history, or None.

    A history whose demand swings by less than MIN_SWING of its mean has none. Two scans keep the
    cost small: the last FINE_POINTS minutes at one-minute lags (periods of 5
    minutes to 2 hours), and the whole history averaged down to at most COARSE_POINTS steps
    (periods up to half a day). At least two periods must be in the history.
    """
    min_lag = math.ceil(MIN_PERIOD_SECONDS / STEP_SECONDS)
    fine = list(values[-FINE_POINTS:])
    if not _swings(values):
        return None
    found = _best_lag(fine, min_lag) if _swings(fine) else None
    result = (found[0] * STEP_SECONDS, found[1]) if found is not None else None
    if len(values) > FINE_POINTS:
        factor = math.ceil(len(values) / COARSE_POINTS)
        coarse = _coarse(values, factor)
        long = _best_lag(coarse, max(2, math.ceil(FINE_POINTS / 2 / factor)))
        if long is not None and (result is None or long[1] > result[1] + 0.05):
            result = (long[0] * factor * STEP_SECONDS, long[1])
    return result


def periodic_forecast(history: DemandHistory, period: float, now: float, horizon: float) -> float | None:
    """The highest demand of [now, now + horizon] one period ago, or None when the history is short."""
    low, high = now - period, now - period + horizon
    if low < history.start:
        return None
    first = math.floor((low - history.start) / STEP_SECONDS)
    last = min(len(history.values) - 1, math.floor((high - history.start) / STEP_SECONDS))
    if first > last:
        return None
    return max(history.values[first : last + 1])


def rise_quantile(
    values: Sequence[float], horizon: float, quantile: float, period: float | None = None
) -> float | None:
    """The rise of demand (QPS) within `horizon` that `quantile` of the history's moments stay within.

    A rise at step i is the highest demand of the next `horizon` minus the larger of the demand at i
    and, with a period, what one period before said about that span (a rise the periodic forecast
    saw coming needs no headroom), counted from one period in. None while the history is too short
    for one rise to fit in the quantile's tail.
    """
    ahead = max(1, math.ceil(horizon / STEP_SECONDS))
    counted = len(values) - ahead - (round(period / STEP_SECONDS) if period else 0)
    # A rise seen once is no pattern: one rise spans about `ahead` moments, and only once the
    # history holds enough moments that those fit in the quantile's tail does the quantile say
    # something about the traffic rather than about that one rise.
    if counted <= 0 or counted * (1 - quantile) < ahead:
        return None
    lag = round(period / STEP_SECONDS) if period else 0
    rises = []
    # With a period, only the moments one period in can say whether the forecast saw a rise coming.
    for i in range(lag, len(values) - ahead):
        future = max(values[i + 1 : i + 1 + ahead])
        base = values[i]
        if lag and i - lag >= 0:
            base = max(base, max(values[i - lag + 1 : i - lag + 1 + ahead]))
        rises.append(max(0.0, future - base))
    rises.sort()
    index = min(len(rises) - 1, max(0, math.ceil(quantile * len(rises)) - 1))
    return rises[index]


def residual_wait(values: Sequence[float], threshold: float, elapsed: float) -> float | None:
    """Mean time (seconds) until demand reaches `threshold` again, once it has stayed below for
    `elapsed` seconds: over the gaps between two steps at or above it that lasted longer than
    `elapsed`, what was left of them. None when no gap that long ended in the history.

    A mean over every step of every gap would be dominated by the many one-minute dips of noise
    around the threshold; once the need has stayed away longer than those, they say nothing about
    when it comes back. Nor do the steps before the first need: they say when a need arrived, not
    when it came back (a one-off step up is no return).
    """
    hits = [i for i, value in enumerate(values) if value >= threshold]
    # A gap runs from the end of one step at the threshold to the start of the next, as
    # `since_reached` counts the current one.
    gaps = [(b - a - 1) * STEP_SECONDS for a, b in pairwise(hits) if b - a > 1]
    left = [gap - elapsed for gap in gaps if gap > elapsed]
    if not left:
        return None
    return sum(left) / len(left)


def since_reached(values: Sequence[float], threshold: float) -> float | None:
    """Seconds from the end of the last step at or above `threshold` to the end of the history."""
    for i in range(len(values) - 1, -1, -1):
        if values[i] >= threshold:
            return (len(values) - 1 - i) * STEP_SECONDS
    return None
