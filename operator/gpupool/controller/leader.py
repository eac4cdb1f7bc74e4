"""Leader election on a coordination.k8s.io/v1 Lease, so that one operator process acts at a time.

The algorithm is client-go's `tools/leaderelection`: a candidate reads the Lease; it takes it when
the Lease has no holder, or when the holder's record has not changed for a whole lease duration as
measured by the candidate's own clock (never by comparing the holder's timestamps with ours, so
clock skew between nodes does not matter); every write is an update conditional on the
resourceVersion read, so two candidates never both win. The leader renews every retry period; when
no renewal has succeeded for the renew deadline (shorter than the lease duration, so the old leader
stops before a standby may start) the process exits, as a controller-runtime manager does, and
Kubernetes restarts it as a standby. A clean shutdown empties the holder, so a standby takes over
at its next retry instead of waiting for the lease to expire.

`LeaseElection` holds the rules over a `LeaseStore` and an injected clock; `KubernetesLeaseStore`
is the API server.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import Gauge

from gpupool.controller.apiclient import ApiClient, ApiError

log = logging.getLogger(__name__)

DEFAULT_LEASE_NAME = "gpupool-operator"
DEFAULT_LEASE_DURATION = 10.0
DEFAULT_RENEW_DEADLINE = 8.0
DEFAULT_RETRY_PERIOD = 2.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

IS_LEADER = Gauge(
    "gpupool_leader_election_is_leader", "1 while this process holds the operator's Lease, else 0"
)


@dataclass(frozen=True)
class LeaderElectionSettings:
    """Where the Lease is and how long a holder keeps it. Defaults follow controller-runtime's
    ratios, shortened so that a standby takes over within about ten seconds."""

    namespace: str
    name: str = DEFAULT_LEASE_NAME
    identity: str = field(default_factory=lambda: default_identity())
    # A standby takes the Lease once its record has not changed for this long.
    lease_duration: float = DEFAULT_LEASE_DURATION
    # The leader gives up (exits) when no renewal has succeeded for this long.
    renew_deadline: float = DEFAULT_RENEW_DEADLINE
    # How often the leader renews and a standby retries.
    retry_period: float = DEFAULT_RETRY_PERIOD

    def __post_init__(self) -> None:
        if not self.namespace or not self.name or not self.identity:
            raise ValueError("leader election needs a Lease namespace, a Lease name and an identity")
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(
                "leader election needs lease duration > renew deadline > retry period > 0, got "
                f"{self.lease_duration:g} s, {self.renew_deadline:g} s, {self.retry_period:g} s"
            )


def default_identity() -> str:
    """The pod's name when the chart passes it in, else hostname and process id."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def default_namespace() -> str:
    """The operator's own namespace: GPUPOOL_NAMESPACE (the chart sets it), else the pod's
    service account namespace, else `default`."""
    if namespace := os.environ.get("GPUPOOL_NAMESPACE"):
        return namespace
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


# --------------------------------------------------------------------------------------------------
# the record and the rules


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease's spec that leader election reads and writes."""

    holder: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_lease(cls, lease: dict[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or "",
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


class LeaseConflict(Exception):
    """The Lease changed (or appeared) since it was read: someone else wrote first."""


class LeaseStore(Protocol):
    def read(self) -> tuple[LeaseRecord, str] | None:
        """The record and its resourceVersion, or None when there is no Lease."""

    def create(self, record: LeaseRecord) -> str:
        """Create the Lease; its resourceVersion. LeaseConflict if it exists."""

    def update(self, record: LeaseRecord, resource_version: str) -> str:
        """Replace the record if the Lease is still at resource_version. LeaseConflict if not."""


def micro_time(now: datetime | None = None) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElection:
    """Acquire, renew and release one Lease for one identity. Not thread-safe: one caller at a time
    (the waiting loop, then the renewing thread, then the release)."""

    def __init__(
        self,
        store: LeaseStore,
        settings: LeaderElectionSettings,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], str] = micro_time,
    ) -> None:
        self.store = store
        self.settings = settings
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        # The last record seen and when (our clock) it was first seen: a holder is alive while
        # its record keeps changing.
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._resource_version: str | None = None
        self.leading = False

    def _observe(self, record: LeaseRecord, resource_version: str) -> None:
        if record != self._observed:
            self._observed = record
            self._observed_at = self._monotonic()
        self._resource_version = resource_version

    def holder(self) -> str:
        """The holder last seen ("" when none or not read yet)."""
        return self._observed.holder if self._observed else ""

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this identity holds the Lease afterwards. API errors propagate."""
        me = self.settings.identity
        now = self._wall_clock()
        mine = LeaseRecord(
            holder=me,
            lease_duration_seconds=max(1, round(self.settings.lease_duration)),
            acquire_time=now,
            renew_time=now,
        )
        current = self.store.read()
        if current is None:
            try:
                self._observe(mine, self.store.create(mine))
            except LeaseConflict:
                return self._lost_race()
            return self._now_leading(True)
        record, version = current
        self._observe(record, version)
        if record.holder and record.holder != me:
            expired = self._monotonic() >= self._observed_at + record.lease_duration_seconds
            if not expired:
                return self._now_leading(False)
        if record.holder == me:
            # Renewing keeps the acquire time and the transition count.
            mine = LeaseRecord(
                holder=me,
                lease_duration_seconds=mine.lease_duration_seconds,
                acquire_time=record.acquire_time or now,
                renew_time=now,
                transitions=record.transitions,
            )
        else:
            mine = LeaseRecord(
                holder=me,
                lease_duration_seconds=mine.lease_duration_seconds,
                acquire_time=now,
                renew_time=now,
                transitions=record.transitions + 1,
            )
        try:
            self._observe(mine, self.store.update(mine, version))
        except LeaseConflict:
            return self._lost_race()
        return self._now_leading(True)

    def _lost_race(self) -> bool:
        self._observed = None
        return self._now_leading(False)

    def _now_leading(self, leading: bool) -> bool:
        self.leading = leading
        IS_LEADER.set(1 if leading else 0)
        return leading

    def release(self) -> bool:
        """Empty the holder if it is still this identity, so a standby need not wait for expiry."""
        if not self.leading or self._observed is None or self._resource_version is None:
            return False
        now = self._wall_clock()
        released = LeaseRecord(
            holder="",
            lease_duration_seconds=1,
            acquire_time=now,
            renew_time=now,
            transitions=self._observed.transitions,
        )
        try:
            self.store.update(released, self._resource_version)
        except LeaseConflict:
            return False
        finally:
            self._now_leading(False)
        return True


# --------------------------------------------------------------------------------------------------
# the loops around it


class LeaderElector:
    """Wait for the Lease, keep it in a background thread, release it on shutdown."""

    def __init__(self, election: LeaseElection, sleep: Callable[[float], bool] | None = None) -> None:
        self.election = election
        self.settings = election.settings
        self._stop = threading.Event()
        # `sleep(seconds)` waits and returns True when asked to stop meanwhile.
        self._sleep = sleep or self._stop.wait
        self._renewer: threading.Thread | None = None

    def stop(self) -> None:
        self._stop.set()

    def _attempt(self) -> bool:
        try:
            return self.election.try_acquire_or_renew()
        except Exception as err:  # the API server is down or refuses: retry after the period
            log.warning("leader election: cannot reach Lease %s: %s", self._lease(), _short(err))
            return False

    def _lease(self) -> str:
        return f"{self.settings.namespace}/{self.settings.name}"

    def wait_for_leadership(self) -> bool:
        """Block until this process holds the Lease (True) or stop() is called (False)."""
        me = self.settings.identity
        log.info("leader election: %s waiting to lead through Lease %s", me, self._lease())
        reported = None
        while not self._stop.is_set():
            if self._attempt():
                if self._stop.is_set():  # asked to stop while the Lease was being taken
                    self.release()
                    return False
                log.info("leader election: %s now leads through Lease %s", me, self._lease())
                return True
            holder = self.election.holder()
            if holder and holder != reported:
                log.info("leader election: standing by while %s leads", holder)
                reported = holder
            if self._sleep(self.settings.retry_period):
                break
        return False

    def keep_leading(self, on_lost: Callable[[str], None]) -> None:
        """Renew every retry period in a thread; call on_lost(reason) when leadership is gone."""
        self._renewer = threading.Thread(
            target=self._renew_loop, args=(on_lost,), name="leader-election", daemon=True
        )
        self._renewer.start()

    def _renew_loop(self, on_lost: Callable[[str], None]) -> None:
        clock = self.election._monotonic
        last_renewed = clock()
        while not self._sleep(self.settings.retry_period):
            if self._attempt():
                last_renewed = clock()
                continue
            holder = self.election.holder()
            if holder and holder != self.settings.identity:
                on_lost(f"{holder} holds Lease {self._lease()} now")
                return
            if clock() - last_renewed >= self.settings.renew_deadline:
                on_lost(
                    f"Lease {self._lease()} not renewed for {clock() - last_renewed:.1f} s "
                    f"(renew deadline {self.settings.renew_deadline:g} s)"
                )
                return

    def release(self) -> None:
        """Stop renewing and hand the Lease over; a failure only means the standby waits longer."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=self.settings.retry_period + self.settings.renew_deadline)
        try:
            if self.election.release():
                log.info("leader election: released Lease %s", self._lease())
        except Exception as err:
            log.warning("leader election: could not release Lease %s: %s", self._lease(), _short(err))


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def exit_on_lost_leadership(reason: str) -> None:
    """Stop at once, without another write: a standby may already be leading."""
    log.error("leader election lost: %s; exiting, to be restarted as a standby", reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)


# --------------------------------------------------------------------------------------------------
# the API server


class KubernetesLeaseStore:
    """The Lease through the API server, each request bounded by `timeout` seconds."""

    def __init__(self, api_client: ApiClient, settings: LeaderElectionSettings, timeout: float) -> None:
        self.api = api_client
        self.settings = settings
        self.timeout = timeout
        self._collection = f"/apis/coordination.k8s.io/v1/namespaces/{settings.namespace}/leases"

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.api.request(method, path, body=body, timeout=self.timeout)
        return result

    def _lease(self, record: LeaseRecord, resource_version: str | None = None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.settings.name, "namespace": self.settings.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": record.to_spec(),
        }

    def read(self) -> tuple[LeaseRecord, str] | None:
        try:
            lease = self._request("GET", f"{self._collection}/{self.settings.name}")
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        return LeaseRecord.from_lease(lease), str(lease["metadata"]["resourceVersion"])

    def create(self, record: LeaseRecord) -> str:
        return self._write("POST", self._collection, self._lease(record))

    def update(self, record: LeaseRecord, resource_version: str) -> str:
        path = f"{self._collection}/{self.settings.name}"
        return self._write("PUT", path, self._lease(record, resource_version))

    def _write(self, method: str, path: str, body: dict[str, Any]) -> str:
        try:
            lease = self._request(method, path, body)
        except ApiError as err:
            if err.status == 409:
                raise LeaseConflict(str(err.reason)) from err
            raise
        return str(lease["metadata"]["resourceVersion"])
