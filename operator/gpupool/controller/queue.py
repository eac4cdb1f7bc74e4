"""A keyed work queue and its worker threads, in the manner of client-go's `util/workqueue`.

Every pass the operator makes (a model's reconcile, a pool's recount, the periodic resync, an
autoscaler evaluation) is a key in one queue, taken by a fixed pool of worker threads:

- A key is processed by one worker at a time. A key added while it is queued is not queued twice:
  the two reasons merge into one (`Reason.merge`), so one pass covers both. A key added while it is
  being processed waits and is queued again when that pass is done.
- A key can be added after a delay (`add_after`); while it waits, later delayed adds of the same key
  merge into it and keep the earliest time, so a burst of changes makes one pass. An immediate add
  takes a waiting key along at once.
- A failed pass is queued again after a per-key exponential backoff (`Backoff`: the base doubled per
  failure in a row, up to a cap); a pass that succeeds forgets the key's failures.
- Higher priorities are taken first; keys of one priority in the order they were queued.
- `shut_down` stops the workers: a pass in flight finishes, queued work is dropped (the operator is
  level-triggered: the next start recomputes everything from the cluster).

No Kubernetes here: keys and reasons are opaque, and the module is tested on its own.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, Protocol, Self, TypeVar


class Reason(Protocol):
    """Why a key is queued."""

    @property
    def priority(self) -> int:
        """Higher is taken first."""
        ...

    def merge(self, other: Self) -> Self:
        """One reason that covers both (the key is queued once)."""
        ...


K = TypeVar("K", bound=Hashable)
R = TypeVar("R", bound=Reason)


@dataclass(frozen=True)
class Backoff:
    """Per-key exponential backoff: `base_seconds * 2^(failures - 1)`, at most `max_seconds`."""

    base_seconds: float = 0.05
    max_seconds: float = 300.0

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        # 2**exponent overflows a float long before any cap stops mattering.
        exponent = min(failures - 1, 64)
        return float(min(self.max_seconds, self.base_seconds * 2.0**exponent))


class WorkQueue(Generic[K, R]):
    """Keys to process, each with its merged reason; thread-safe."""

    def __init__(self, backoff: Backoff | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._cond = threading.Condition()
        self._order = itertools.count()
        # Queued or waiting for the pass in flight: the key's reason, and the sequence number of its
        # entry in `_ready` (None while the key is being processed and not yet queued again).
        self._dirty: dict[K, tuple[R, int | None]] = {}
        # (-priority, sequence, key); entries whose sequence `_dirty` no longer holds are stale.
        self._ready: list[tuple[int, int, K]] = []
        self._processing: set[K] = set()
        # Delayed adds: the key's time and reason, and a heap of (time, sequence, key).
        self._waiting: dict[K, tuple[float, R, int]] = {}
        self._timers: list[tuple[float, int, K]] = []
        self._failures: dict[K, int] = {}
        self._shutting_down = False

    # -- adding -------------------------------------------------------------------------------

    def add(self, key: K, reason: R) -> None:
        """Queue `key` now (merged with the reason it is queued or waiting with)."""
        with self._cond:
            if self._shutting_down:
                return
            waiting = self._waiting.pop(key, None)
            if waiting is not None:
                reason = waiting[1].merge(reason)
            self._add_locked(key, reason)

    def add_after(self, key: K, reason: R, delay: float) -> None:
        """Queue `key` after `delay` seconds; a key already waiting keeps the earlier time."""
        if delay <= 0:
            self.add(key, reason)
            return
        with self._cond:
            if self._shutting_down:
                return
            at = self._clock() + delay
            held = self._waiting.get(key)
            if held is not None:
                reason = held[1].merge(reason)
                if held[0] <= at:
                    self._waiting[key] = (held[0], reason, held[2])
                    return
            sequence = next(self._order)
            self._waiting[key] = (at, reason, sequence)
            heapq.heappush(self._timers, (at, sequence, key))
            self._cond.notify()

    def add_failed(self, key: K, reason: R) -> float:
        """Queue `key` again after its backoff, counting one more failure; returns the delay."""
        with self._cond:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
        delay = self.backoff.delay(failures)
        self.add_after(key, reason, delay)
        return delay

    def forget(self, key: K) -> None:
        """The key's pass succeeded: its next failure starts the backoff again."""
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def _add_locked(self, key: K, reason: R) -> None:
        held = self._dirty.get(key)
        if held is not None:
            merged = held[0].merge(reason)
            sequence = held[1]
            if sequence is not None and merged.priority > held[0].priority:
                sequence = self._push(key, merged)  # the old entry goes stale
            self._dirty[key] = (merged, sequence)
            return
        if key in self._processing:
            self._dirty[key] = (reason, None)  # queued again by `done`
            return
        self._dirty[key] = (reason, self._push(key, reason))

    def _push(self, key: K, reason: R) -> int:
        sequence = next(self._order)
        heapq.heappush(self._ready, (-reason.priority, sequence, key))
        self._cond.notify()
        return sequence

    # -- taking -------------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> tuple[K, R] | None:
        """The next key and its reason, marked as being processed (call `done` after); None when
        the queue shuts down or `timeout` passes first."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                if self._shutting_down:
                    return None
                self._release_due_locked()
                while self._ready:
                    _, sequence, key = heapq.heappop(self._ready)
                    held = self._dirty.get(key)
                    if held is None or held[1] != sequence:
                        continue  # stale: the key was queued again with a higher priority
                    del self._dirty[key]
                    self._processing.add(key)
                    return key, held[0]
                wait = None if deadline is None else deadline - self._clock()
                if self._timers:
                    until_timer = self._timers[0][0] - self._clock()
                    wait = until_timer if wait is None else min(wait, until_timer)
                if wait is not None and wait <= 0:
                    if deadline is not None and self._clock() >= deadline:
                        return None
                    continue
                self._cond.wait(wait)

    def _release_due_locked(self) -> None:
        now = self._clock()
        while self._timers and self._timers[0][0] <= now:
            _, sequence, key = heapq.heappop(self._timers)
            held = self._waiting.get(key)
            if held is None or held[2] != sequence:
                continue  # taken along by an immediate add, or moved earlier
            del self._waiting[key]
            self._add_locked(key, held[1])

    def done(self, key: K) -> None:
        """The pass over `key` is over: a reason added meanwhile queues it again."""
        with self._cond:
            self._processing.discard(key)
            held = self._dirty.get(key)
            if held is not None and held[1] is None and not self._shutting_down:
                self._dirty[key] = (held[0], self._push(key, held[0]))
            self._cond.notify_all()

    # -- state and shutdown -------------------------------------------------------------------

    def __len__(self) -> int:
        """Keys queued now (not those waiting for a time or for the pass in flight)."""
        with self._cond:
            return sum(1 for _, sequence in self._dirty.values() if sequence is not None)

    def waiting(self) -> int:
        """Keys waiting for a time (delayed adds and backoffs)."""
        with self._cond:
            return len(self._waiting)

    def idle(self) -> bool:
        """Nothing queued, waiting or being processed."""
        with self._cond:
            return not self._dirty and not self._waiting and not self._processing

    def wait_idle(self, timeout: float) -> bool:
        """Block until `idle()` or `timeout`; True when idle."""
        deadline = self._clock() + timeout
        with self._cond:
            while self._dirty or self._waiting or self._processing:
                left = deadline - self._clock()
                if left <= 0:
                    return False
                wait = left
                if self._timers:
                    wait = min(wait, max(0.0, self._timers[0][0] - self._clock()))
                self._cond.wait(wait)
                self._release_due_locked()
            return True

    def shut_down(self) -> None:
        with self._cond:
            self._shutting_down = True
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        with self._cond:
            return self._shutting_down


class Workers(Generic[K, R]):
    """A fixed number of threads taking keys from one queue and handing them to `handle`.

    A pass that raises is queued again after the key's backoff and reported to `failed` (key,
    reason, error, seconds until the retry); a pass that returns forgets the key's failures.
    """

    def __init__(
        self,
        queue: WorkQueue[K, R],
        handle: Callable[[K, R], None],
        failed: Callable[[K, R, Exception, float], None],
        count: int,
        name: str = "gpupool-worker",
    ) -> None:
        if count < 1:
            raise ValueError("at least one worker thread is needed")
        self.queue = queue
        self._handle = handle
        self._failed = failed
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(count)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Shut the queue down and wait for the passes in flight; True when every thread ended."""
        self.queue.shut_down()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            key, reason = item
            try:
                self._handle(key, reason)
            except Exception as err:
                delay = self.queue.add_failed(key, reason)
                with contextlib.suppress(Exception):  # reporting must never end a worker
                    self._failed(key, reason, err, delay)
            else:
                self.queue.forget(key)
            finally:
                self.queue.done(key)
