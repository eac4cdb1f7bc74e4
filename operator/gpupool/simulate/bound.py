"""The clairvoyant bound: the fewest accelerator-hours that serve a trace, for the benchmark's ratio.

It knows the whole trace and the true capacity of an instance (the plan's estimate times the
capacity error), and it asks at every step for the instances needed from now until the slowest
possible start has passed: an instance starts exactly one (worst-case) start time before the load
needs it, and stays while it will be needed again before a new one could start, which is also when
keeping it is cheaper than starting another. Needed means capacity >= `headroom` (1.05) x the offered
load at every moment. No policy that reads the past can do better on the same trace; its
accelerator-hours are the physical limit the benchmark reports the others against.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from gpupool.simulate.autoscalers import Bounds, ClusterView
from gpupool.simulate.traces import Trace

DEFAULT_HEADROOM = 1.05


@dataclass
class ClairvoyantBound:
    trace: Trace
    true_capacity_per_instance: float
    start_seconds: float
    bounds: Bounds
    dt: float = 5.0
    headroom: float = DEFAULT_HEADROOM
    name: str = "bound"
    reads_window: bool = False
    _asked: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        steps = math.floor(self.trace.duration / self.dt)
        start = self.trace.times[0]
        needed = [self.needed(self.trace.at(start + i * self.dt + self.dt / 2)) for i in range(steps + 1)]
        # The highest need within the next `lead` steps, at every step (a sliding maximum).
        lead = math.ceil(self.start_seconds / self.dt) + 1
        window: deque[int] = deque()
        asked = [0] * len(needed)
        for i in range(len(needed) - 1, -1, -1):
            while window and needed[window[-1]] <= needed[i]:
                window.pop()
            window.append(i)
            while window[0] > i + lead:
                window.popleft()
            asked[i] = needed[window[0]]
        self._asked = asked

    def needed(self, qps: float) -> int:
        count = math.ceil(round(self.headroom * qps / self.true_capacity_per_instance, 9))
        return min(max(count, self.bounds.min_replicas), self.bounds.max_replicas)

    def initial_replicas(self) -> int:
        return self._asked[0] if self._asked else self.bounds.min_replicas

    @property
    def interval_seconds(self) -> float:
        return self.dt

    def decide(self, now: float, view: ClusterView) -> tuple[int, str]:
        index = min(round(now / self.dt), len(self._asked) - 1)
        desired = self._asked[index]
        return desired, f"bound: {desired} instances are needed within the next {self.start_seconds:.0f} s"
