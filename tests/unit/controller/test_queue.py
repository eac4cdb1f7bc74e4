"""The keyed work queue: merging, re-queueing, delays, backoff, priorities, threads and shutdown."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from gpupool.controller.queue import Backoff, Workers, WorkQueue


@dataclass(frozen=True)
class Why:
    names: frozenset[str] = field(default_factory=frozenset)
    priority: int = 0

    def merge(self, other: Why) -> Why:
        return Why(self.names | other.names, max(self.priority, other.priority))


def why(*names: str, priority: int = 0) -> Why:
    return Why(frozenset(names), priority)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_added_while_queued_is_taken_once_with_both_reasons() -> None:
    queue: WorkQueue[str, Why] = WorkQueue()
    queue.add("a", why("workloads"))
    queue.add("b", why("full"))
    queue.add("a", why("full"))
    assert len(queue) == 2
    assert queue.get(timeout=0) == ("a", why("workloads", "full"))
    assert queue.get(timeout=0) == ("b", why("full"))
    assert queue.get(timeout=0) is None


def test_a_key_added_while_processed_waits_for_the_pass_and_comes_back_after() -> None:
    queue: WorkQueue[str, Why] = WorkQueue()
    queue.add("a", why("first"))
    assert queue.get(timeout=0) == ("a", why("first"))
    queue.add("a", why("second"))
    queue.add("a", why("third"))
    assert queue.get(timeout=0) is None  # not while its pass is in flight
    assert not queue.idle()
    queue.done("a")
    assert queue.get(timeout=0) == ("a", why("second", "third"))
    queue.done("a")
    assert queue.idle()


def test_higher_priorities_go_first_and_a_merge_can_raise_a_queued_key() -> None:
    queue: WorkQueue[str, Why] = WorkQueue()
    for key in ("status-1", "status-2", "status-3"):
        queue.add(key, why("workloads", priority=0))
    queue.add("user", why("spec", priority=1))
    queue.add("status-3", why("spec", priority=1))  # raised: behind "user", before the others
    taken = [item[0] for item in iter(lambda: queue.get(timeout=0), None)]
    assert taken == ["user", "status-3", "status-1", "status-2"]
    assert len(queue) == 0


def test_delayed_adds_merge_keep_the_earliest_time_and_an_immediate_add_takes_them_along() -> None:
    clock = Clock()
    queue: WorkQueue[str, Why] = WorkQueue(clock=clock)
    queue.add_after("pool", why("pod"), 2.0)
    queue.add_after("pool", why("node"), 5.0)
    queue.add_after("other", why("x"), 3.0)
    assert queue.waiting() == 2
    assert queue.get(timeout=0) is None
    clock.now += 2.0
    assert queue.get(timeout=0) == ("pool", why("pod", "node"))
    queue.done("pool")
    assert queue.get(timeout=0) is None  # "other" is due at +3
    queue.add_after("late", why("a"), 10.0)
    queue.add("late", why("b"))
    assert queue.get(timeout=0) == ("late", why("a", "b"))
    queue.done("late")
    clock.now += 20.0
    assert queue.get(timeout=0) == ("other", why("x"))
    queue.done("other")
    assert queue.get(timeout=0) is None  # "late" was taken along, not queued a second time
    assert queue.idle()


def test_a_later_delayed_add_with_an_earlier_time_moves_the_key_forward() -> None:
    clock = Clock()
    queue: WorkQueue[str, Why] = WorkQueue(clock=clock)
    queue.add_after("k", why("slow"), 60.0)
    queue.add_after("k", why("soon"), 1.0)
    clock.now += 1.0
    assert queue.get(timeout=0) == ("k", why("slow", "soon"))
    queue.done("k")
    clock.now += 100.0
    assert queue.get(timeout=0) is None  # the earlier entry's timer is stale


def test_failures_back_off_exponentially_up_to_the_cap_and_success_forgets_them() -> None:
    backoff = Backoff(base_seconds=0.005, max_seconds=1000.0)
    assert [backoff.delay(n) for n in range(1, 5)] == [0.005, 0.01, 0.02, 0.04]
    assert backoff.delay(0) == 0.0
    assert backoff.delay(30) == 1000.0
    assert backoff.delay(10_000) == 1000.0  # no overflow after a long outage
    clock = Clock()
    queue: WorkQueue[str, Why] = WorkQueue(Backoff(base_seconds=1.0, max_seconds=8.0), clock=clock)
    delays = []
    for _ in range(6):
        queue.add("k", why("x"))
        assert queue.get(timeout=0) == ("k", why("x"))
        delays.append(queue.add_failed("k", why("x")))
        queue.done("k")
        assert queue.get(timeout=0) is None  # not before its backoff
        clock.now += delays[-1]
        assert queue.get(timeout=0) == ("k", why("x"))
        queue.done("k")
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert queue.failures("k") == 6
    queue.forget("k")
    assert queue.failures("k") == 0
    assert queue.add_failed("k", why("x")) == 1.0
    assert queue.failures("other") == 0  # per key


def test_waiting_for_a_delayed_key_wakes_up_on_time() -> None:
    queue: WorkQueue[str, Why] = WorkQueue()
    queue.add_after("k", why("x"), 0.05)
    started = time.monotonic()
    assert queue.get(timeout=5) == ("k", why("x"))
    assert time.monotonic() - started >= 0.04
    queue.done("k")
    assert queue.wait_idle(timeout=1)


def test_shutdown_wakes_every_waiting_taker_and_refuses_new_keys() -> None:
    queue: WorkQueue[str, Why] = WorkQueue()
    results: list[object] = []
    takers = [threading.Thread(target=lambda: results.append(queue.get())) for _ in range(4)]
    for taker in takers:
        taker.start()
    time.sleep(0.05)
    queue.shut_down()
    for taker in takers:
        taker.join(timeout=2)
    assert results == [None] * 4
    queue.add("k", why("x"))
    queue.add_after("k", why("x"), 0.01)
    assert queue.get(timeout=0) is None
    assert queue.shutting_down


def test_workers_never_process_a_key_twice_at_once_and_lose_no_key() -> None:
    """Producers add keys from several threads while the workers process them. Every add bumps the
    key's generation; a pass records the generation it started from. A key is never in two passes
    at once, and each key's last pass started from its last generation: no add was lost."""
    queue: WorkQueue[int, Why] = WorkQueue()
    lock = threading.Lock()
    generation: Counter[int] = Counter()
    seen: dict[int, int] = {}
    busy: set[int] = set()
    overlaps: list[int] = []
    passes: Counter[int] = Counter()

    def handle(key: int, reason: Why) -> None:
        with lock:
            if key in busy:
                overlaps.append(key)
            busy.add(key)
            seen[key] = generation[key]
            passes[key] += 1
        time.sleep(random.random() / 2000)
        with lock:
            busy.discard(key)

    workers = Workers(queue, handle, failed=lambda *_: None, count=8)
    workers.start()

    def produce(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(3000):
            key = rng.randrange(50)
            with lock:
                generation[key] += 1
            queue.add(key, why(f"p{seed}", priority=rng.randrange(2)))

    producers = [threading.Thread(target=produce, args=(seed,)) for seed in range(4)]
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join()
    assert queue.wait_idle(timeout=30)
    assert workers.stop(timeout=5)
    assert overlaps == []
    assert seen == dict(generation)
    assert sum(passes.values()) < 4 * 3000  # adds merged while queued


def test_a_failing_pass_is_retried_with_backoff_and_reported_once_per_failure() -> None:
    queue: WorkQueue[str, Why] = WorkQueue(Backoff(base_seconds=0.01, max_seconds=0.04))
    attempts: Counter[str] = Counter()
    reports: list[tuple[str, str, float]] = []

    def handle(key: str, reason: Why) -> None:
        attempts[key] += 1
        if key == "flaky" and attempts[key] <= 4:
            raise ConnectionError(f"refused #{attempts[key]}")

    def failed(key: str, reason: Why, err: Exception, delay: float) -> None:
        reports.append((key, str(err), delay))

    workers = Workers(queue, handle, failed, count=2)
    workers.start()
    queue.add("flaky", why("x"))
    queue.add("fine", why("x"))
    assert queue.wait_idle(timeout=10)
    assert workers.stop()
    assert attempts == {"flaky": 5, "fine": 1}
    assert reports == [
        ("flaky", "refused #1", 0.01),
        ("flaky", "refused #2", 0.02),
        ("flaky", "refused #3", 0.04),
        ("flaky", "refused #4", 0.04),
    ]
    assert queue.failures("flaky") == 0  # the pass that worked forgot them


def test_a_failing_report_does_not_end_the_worker() -> None:
    queue: WorkQueue[str, Why] = WorkQueue(Backoff(base_seconds=0.001, max_seconds=0.001))
    done = threading.Event()
    calls: Counter[str] = Counter()

    def handle(key: str, reason: Why) -> None:
        calls[key] += 1
        if calls[key] == 1:
            raise RuntimeError("first")
        done.set()

    def failed(*_: object) -> None:
        raise RuntimeError("the report itself fails")

    workers = Workers(queue, handle, failed, count=1)
    workers.start()
    queue.add("k", why("x"))
    assert done.wait(timeout=5)
    assert workers.stop()


def test_stop_lets_the_pass_in_flight_finish_and_drops_the_rest() -> None:
    queue: WorkQueue[str, Why] = WorkQueue()
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def handle(key: str, reason: Why) -> None:
        started.set()
        release.wait(timeout=5)
        finished.append(key)

    workers = Workers(queue, handle, failed=lambda *_: None, count=1)
    workers.start()
    queue.add("first", why("x"))
    queue.add("second", why("x"))
    assert started.wait(timeout=5)
    threading.Timer(0.05, release.set).start()
    assert workers.stop(timeout=5)
    assert finished == ["first"]


def test_workers_need_at_least_one_thread() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Workers(WorkQueue[str, Why](), lambda *_: None, lambda *_: None, count=0)
