"""Leader election's rules over an in-memory Lease store with optimistic concurrency and a fake clock.

The API server's side (the real Lease, two real processes) is in tests/e2e/test_leader.py.
"""

from __future__ import annotations

import pytest

from gpupool.controller.leader import (
    LeaderElectionSettings,
    LeaderElector,
    LeaseConflict,
    LeaseElection,
    LeaseRecord,
)


class Store:
    """One Lease with a resourceVersion that every write moves, as the API server does."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.fail = False

    def read(self) -> tuple[LeaseRecord, str] | None:
        if self.fail:
            raise ConnectionError("API server unreachable")
        return None if self.record is None else (self.record, str(self.version))

    def create(self, record: LeaseRecord) -> str:
        if self.record is not None:
            raise LeaseConflict("exists")
        return self._write(record)

    def update(self, record: LeaseRecord, resource_version: str) -> str:
        if self.fail:
            raise ConnectionError("API server unreachable")
        if self.record is None or resource_version != str(self.version):
            raise LeaseConflict("stale resourceVersion")
        return self._write(record)

    def _write(self, record: LeaseRecord) -> str:
        self.record = record
        self.version += 1
        return str(self.version)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def candidate(store: Store, clock: Clock, identity: str) -> LeaseElection:
    settings = LeaderElectionSettings(namespace="gpupool-system", identity=identity)
    stamps = iter(f"2026-01-01T00:00:{i:02d}.000000Z" for i in range(10_000))
    return LeaseElection(store, settings, monotonic=clock, wall_clock=lambda: next(stamps))


def test_first_candidate_creates_the_lease_and_the_second_stands_by() -> None:
    store, clock = Store(), Clock()
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")
    assert a.try_acquire_or_renew() is True
    assert store.record is not None and store.record.holder == "a"
    assert store.record.lease_duration_seconds == 10
    assert b.try_acquire_or_renew() is False
    assert b.holder() == "a"
    assert store.record.holder == "a"


def test_renewal_keeps_acquire_time_and_transitions() -> None:
    store, clock = Store(), Clock()
    a = candidate(store, clock, "a")
    a.try_acquire_or_renew()
    assert store.record is not None
    acquired = store.record.acquire_time
    clock.now += 2
    assert a.try_acquire_or_renew() is True
    assert store.record.acquire_time == acquired
    assert store.record.renew_time != acquired
    assert store.record.transitions == 0


def test_standby_takes_over_only_after_the_record_stops_changing_for_a_lease_duration() -> None:
    store, clock = Store(), Clock()
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")
    a.try_acquire_or_renew()
    assert b.try_acquire_or_renew() is False
    # The leader keeps renewing: however long the standby has watched, the lease stays valid.
    for _ in range(10):
        clock.now += 2
        assert a.try_acquire_or_renew() is True
        assert b.try_acquire_or_renew() is False
    # The leader stops renewing: the standby's own clock runs from the last change it saw.
    clock.now += 9.9
    assert b.try_acquire_or_renew() is False
    clock.now += 0.1
    assert b.try_acquire_or_renew() is True
    assert store.record is not None
    assert (store.record.holder, store.record.transitions) == ("b", 1)
    # The old leader, back, finds someone else leading.
    assert a.try_acquire_or_renew() is False
    assert a.holder() == "b"


def test_released_lease_is_taken_at_once() -> None:
    store, clock = Store(), Clock()
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")
    a.try_acquire_or_renew()
    assert b.try_acquire_or_renew() is False
    assert a.release() is True
    assert store.record is not None and store.record.holder == ""
    assert a.leading is False
    assert b.try_acquire_or_renew() is True
    assert store.record.holder == "b"


def test_release_by_a_non_leader_writes_nothing() -> None:
    store, clock = Store(), Clock()
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    version = store.version
    assert b.release() is False
    assert store.version == version


def test_release_after_someone_else_took_over_leaves_their_lease_alone() -> None:
    store, clock = Store(), Clock()
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    clock.now += 11
    assert b.try_acquire_or_renew() is True
    assert a.release() is False
    assert store.record is not None and store.record.holder == "b"


def test_two_candidates_racing_on_a_stale_read_cannot_both_win() -> None:
    store, clock = Store(), Clock()
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")
    a.try_acquire_or_renew()
    a.release()
    # b read the released Lease; a renews (re-acquires) first; b's update then conflicts.
    read = store.read()
    assert read is not None
    assert a.try_acquire_or_renew() is True
    with pytest.raises(LeaseConflict):
        store.update(LeaseRecord(holder="b"), read[1])
    assert b.try_acquire_or_renew() is False
    assert store.record is not None and store.record.holder == "a"


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"),
    [(10, 10, 2), (10, 8, 8), (10, 8, 0), (5, 8, 2)],
)
def test_settings_refuse_inconsistent_timings(duration: float, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError, match="lease duration > renew deadline > retry period"):
        LeaderElectionSettings(
            namespace="ns", identity="a", lease_duration=duration, renew_deadline=deadline, retry_period=retry
        )


def test_settings_refuse_an_empty_identity() -> None:
    with pytest.raises(ValueError, match="identity"):
        LeaderElectionSettings(namespace="ns", identity="")


class Sleeper:
    """The elector's sleep: advances the fake clock, optionally breaks the store after n sleeps."""

    def __init__(self, clock: Clock, store: Store, break_after: int | None = None, limit: int = 100) -> None:
        self.clock, self.store, self.break_after, self.limit = clock, store, break_after, limit
        self.calls = 0

    def __call__(self, seconds: float) -> bool:
        self.calls += 1
        self.clock.now += seconds
        if self.break_after is not None and self.calls > self.break_after:
            self.store.fail = True
        return self.calls > self.limit


def test_leader_gives_up_once_the_renew_deadline_passes_without_a_renewal() -> None:
    store, clock = Store(), Clock()
    election = candidate(store, clock, "a")
    sleeper = Sleeper(clock, store, break_after=3)
    elector = LeaderElector(election, sleep=sleeper)
    assert elector.wait_for_leadership() is True
    lost: list[str] = []
    elector._renew_loop(lost.append)
    assert len(lost) == 1 and "not renewed for 8.0 s" in lost[0]
    # Three good renewals, then failures every 2 s until 8 s have passed since the last good one.
    assert sleeper.calls == 3 + 4


def test_leader_gives_up_at_once_when_another_holder_appears() -> None:
    store, clock = Store(), Clock()
    election = candidate(store, clock, "a")
    elector = LeaderElector(election, sleep=Sleeper(clock, store))
    assert elector.wait_for_leadership() is True
    store.record = LeaseRecord(holder="b", lease_duration_seconds=10)
    store.version += 1
    lost: list[str] = []
    elector._renew_loop(lost.append)
    assert lost == ["b holds Lease gpupool-system/gpupool-operator now"]


def test_standby_waits_through_api_errors_and_stops_when_asked() -> None:
    store, clock = Store(), Clock()
    store.fail = True
    elector = LeaderElector(candidate(store, clock, "a"), sleep=Sleeper(clock, store, limit=5))
    assert elector.wait_for_leadership() is False
    assert store.record is None
