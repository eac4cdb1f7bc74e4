"""What the operator holds in memory, in two parts kept by the `Controller`:

- `ClusterCache`: what the watches (and the resync's listings) delivered. Handlers write it; the
  reconciles read it instead of asking the API server again.
- `ModelMemory`: what the reconciles remember between passes: each pool's accounting and
  allocation, what each model asked of its pools, the preemptions not yet reported.

Both are plain data with their own locks where handler threads and worker threads meet; neither
talks to the API server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gpupool.placement import Allocation, InstanceCaps, PoolState
from gpupool.render.labels import SELECTOR_LABEL

ModelKey = tuple[str, str]
ChildKey = tuple[str, str, str]  # (kind, namespace, name)


def revision(body: dict[str, Any]) -> int | None:
    """The object's resource version as a number; None when it is not one (then the latest wins)."""
    try:
        return int(body["metadata"].get("resourceVersion", ""))
    except ValueError:
        return None


def _older(incoming: int | None, held: int | None) -> bool:
    return incoming is not None and held is not None and incoming < held


def _compact(body: dict[str, Any]) -> str:
    meta = body["metadata"]
    return json.dumps(
        {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}, separators=(",", ":")
    )


def read_by_model(body: dict[str, Any]) -> tuple[Any, ...]:
    """What a model's status reads from its Deployment; annotations, conditions and our own applies
    that change nothing of the spec do not move it."""
    status = body.get("status") or {}
    return (
        body["metadata"].get("generation"),
        status.get("observedGeneration"),
        status.get("replicas"),
        status.get("readyReplicas"),
        status.get("updatedReplicas"),
    )


@dataclass(frozen=True)
class _Held:
    revision: int | None
    read: tuple[Any, ...]
    identity: str | None
    compact: str


class ClusterCache:
    """The last copy seen of what gpupool manages and what its decisions read.

    Deployments come from their watch, our own applies and the resync's listing, kept as compact
    JSON: about 5 kB each instead of about 25 kB as a parsed object. A copy that lags our last apply
    costs at most one repeated apply; a drift by someone else arrives as an event that refreshes
    it. Once a listing has filled them, a Deployment the cache lacks does not exist (a new model's
    pass reads nothing before it applies). Services and ConfigMaps come from the resync's listing
    and our applies: a missing copy is read from the API server, never taken for a missing object.
    Older copies (by resource version) never replace newer ones, so a listing cannot undo what an
    event or an apply brought in the meantime.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: dict[ChildKey, _Held] = {}
        # Kinds a listing has filled: from then on every change reaches the cache (a watch event or
        # our own apply), so a copy it lacks is an object that does not exist.
        self._complete: set[str] = set()
        # Deployments by (namespace, identity label), for pruning the ones a model no longer uses.
        self._by_identity: dict[tuple[str, str], set[str]] = {}
        # ModelDeployments as their watch, our status writes and the resync's listing delivered
        # them, as compact JSON (a few kB each): a pass reads its model here, the API server only on
        # a miss.
        self._models: dict[ModelKey, tuple[int | None, str]] = {}
        # Pools by name, as the pool watch delivered them (plain JSON data).
        self.pools: dict[str, dict[str, Any]] = {}
        # What the pool accounting reads of each node and engine pod, to drop events that change
        # none of it.
        self.nodes: dict[str, tuple[Any, ...]] = {}
        self.pods: dict[tuple[str | None, str], tuple[Any, ...]] = {}
        # Labels of every namespace, read when some pool has tenants. Replaced in one assignment,
        # never cleared and refilled: a reader in between would see no tenant namespace at all.
        self.namespace_labels: dict[str, dict[str, str]] = {}

    # -- children -------------------------------------------------------------------------------

    def remember(self, body: dict[str, Any]) -> bool:
        """Keep the newest copy of a child; True when what its model reads from it changed (or it
        is new)."""
        meta = body["metadata"]
        key = (body["kind"], meta["namespace"], meta["name"])
        incoming = revision(body)
        read = read_by_model(body)
        identity = (meta.get("labels") or {}).get(SELECTOR_LABEL)
        held_new = _Held(incoming, read, identity, _compact(body))
        with self._lock:
            held = self._children.get(key)
            if held is not None and _older(incoming, held.revision):
                return False
            self._children[key] = held_new
            self._index(key, held, held_new)
        return held is None or held.read != read

    def forget(self, body: dict[str, Any]) -> None:
        """A deletion: drop the copy unless a newer one (a re-created object) replaced it."""
        meta = body["metadata"]
        key = (body["kind"], meta["namespace"], meta["name"])
        incoming = revision(body)
        with self._lock:
            held = self._children.get(key)
            if held is not None and not _older(incoming, held.revision):
                del self._children[key]
                self._index(key, held, None)

    def child(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of the child (the caller may change it), or None when none is held."""
        with self._lock:
            held = self._children.get((kind, namespace, name))
        if held is None:
            return None
        body: dict[str, Any] = json.loads(held.compact)
        return body

    def refresh(
        self,
        kind: str,
        items: Iterable[dict[str, Any]],
        listed_revision: int | Callable[[], int | None] | None,
        watched: bool = False,
    ) -> None:
        """Replace the copies of one kind with a listing made at `listed_revision`. A copy the
        listing lacks is dropped (deleted meanwhile) unless it is newer than the listing. With
        `watched` (a watch keeps the kind current), the cache is complete from now on.

        `items` may be a listing read a page at a time as it is iterated (`Kube.list`), whose
        resource version is known only once it is read: then `listed_revision` is a callable."""
        listed: set[ChildKey] = set()
        for item in items:
            self.remember(item)
            listed.add((kind, item["metadata"]["namespace"], item["metadata"]["name"]))
        if callable(listed_revision):
            listed_revision = listed_revision()
        with self._lock:
            for key, held in list(self._children.items()):
                if key[0] != kind or key in listed:
                    continue
                if listed_revision is None or held.revision is None or held.revision <= listed_revision:
                    del self._children[key]
                    self._index(key, held, None)
            if watched:
                self._complete.add(kind)

    def revisions(self, keys: tuple[ChildKey, ...]) -> tuple[int | None, ...]:
        """The resource versions of the children held under `keys` (None for one not held)."""
        with self._lock:
            return tuple(h.revision if (h := self._children.get(key)) is not None else None for key in keys)

    def complete(self, kind: str) -> bool:
        """Every object of the kind is held: a miss means the object does not exist."""
        with self._lock:
            return kind in self._complete

    def deployments_of(self, namespace: str, identity: str) -> set[str]:
        """Names of the Deployments held with the model identity label `identity`."""
        with self._lock:
            return set(self._by_identity.get((namespace, identity), ()))

    def _index(self, key: ChildKey, old: _Held | None, new: _Held | None) -> None:
        kind, namespace, name = key
        if kind != "Deployment":
            return
        if old is not None and old.identity:
            names = self._by_identity.get((namespace, old.identity))
            if names is not None:
                names.discard(name)
                if not names:
                    del self._by_identity[(namespace, old.identity)]
        if new is not None and new.identity:
            self._by_identity.setdefault((namespace, new.identity), set()).add(name)

    # -- models ---------------------------------------------------------------------------------

    def remember_model(self, body: dict[str, Any]) -> None:
        """Keep the newest copy of a ModelDeployment (an older one never replaces it)."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        incoming = revision(body)
        with self._lock:
            held = self._models.get(key)
        if held is not None and incoming is not None and held[0] is not None and incoming <= held[0]:
            return  # the same copy again (a listing), or an older one
        compact = _compact(body)
        with self._lock:
            held = self._models.get(key)
            if held is None or not _older(incoming, held[0]):
                self._models[key] = (incoming, compact)

    def forget_model(self, body: dict[str, Any]) -> None:
        """A deletion: drop the copy unless a newer one (a re-created model) replaced it."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        with self._lock:
            held = self._models.get(key)
            if held is not None and not _older(revision(body), held[0]):
                del self._models[key]

    def model(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of the ModelDeployment (the caller may change it), or None when none is held."""
        with self._lock:
            held = self._models.get((namespace, name))
        if held is None:
            return None
        body: dict[str, Any] = json.loads(held[1])
        return body

    def refresh_models(
        self, items: Iterable[dict[str, Any]], listed_revision: int | Callable[[], int | None] | None
    ) -> list[tuple[tuple[str, str], str]]:
        """Replace the copies with a listing made at `listed_revision` (a callable for a listing read
        as it is iterated, as in `refresh`); a copy the listing lacks is dropped (deleted meanwhile,
        its event missed) unless it is newer than the listing. Returns the models listed, in order,
        each with the resource version it was listed at."""
        order: list[tuple[tuple[str, str], str]] = []
        for item in items:
            self.remember_model(item)
            meta = item["metadata"]
            order.append(((meta["namespace"], meta["name"]), meta.get("resourceVersion", "")))
        listed = {key for key, _ in order}
        if callable(listed_revision):
            listed_revision = listed_revision()
        with self._lock:
            for key, (held, _) in list(self._models.items()):
                if key in listed:
                    continue
                if listed_revision is None or held is None or held <= listed_revision:
                    del self._models[key]
        return order

    # -- pools ----------------------------------------------------------------------------------

    def remember_pool(self, body: dict[str, Any]) -> None:
        self.pools[body["metadata"]["name"]] = body

    def forget_pool(self, name: str) -> None:
        self.pools.pop(name, None)

    def known_pools(self) -> list[str]:
        return sorted(self.pools)


@dataclass(frozen=True)
class Settled:
    """A model at the end of a pass that left nothing to do: its own resource version after the
    pass (its status write included), and the children it rendered with the resource versions the
    cache held of them. While both still read the same, a resync's pass would decide the same
    objects from the same inputs, so the resync leaves it alone."""

    resource_version: str
    children: tuple[ChildKey, ...]
    revisions: tuple[int | None, ...]


@dataclass
class ModelMemory:
    """What the reconciles remember between passes (and the metrics series to remove with a model)."""

    # Pools' accounting from the last recount, by pool name: every model reconcile needs its pools'
    # state, and counting walks every node and pod, so it happens once per recount, not per model.
    states: dict[str, PoolState] = field(default_factory=dict)
    # What each model asked of its pools at its last reconcile, with what the limits allowed then;
    # written only through `remember_asks` and `forget_asks`, which keep `by_pool` in step.
    asks: dict[ModelKey, dict[str, InstanceCaps]] = field(default_factory=dict)
    # The same by pool: a recount reads the models of one pool without a walk over every model.
    by_pool: dict[str, dict[ModelKey, InstanceCaps]] = field(default_factory=dict)
    # Each pool's allocation over every model's demand, with the state it was computed on: made once
    # per recount, read by every model of the pool, and replaced when a model's demand changes.
    allocations: dict[str, tuple[PoolState, Allocation]] = field(default_factory=dict)
    # Instances the scheduler evicted for a higher tier, by model, until its status says so.
    preemptions: dict[ModelKey, dict[str, str]] = field(default_factory=dict)
    # Objects of a model the API server refused: the digests of the objects as rendered and the
    # server's answer, so the same objects are not sent again on every resync.
    rejections: dict[ModelKey, tuple[frozenset[str], str]] = field(default_factory=dict)
    # Whether some tenant ResourceQuota was written, so that removing the last tenant deletes it.
    quotas_written: bool = False
    # Pools each model has a per-pool metrics series for, so deleting the model removes them all.
    placed_pools: dict[ModelKey, set[str]] = field(default_factory=dict)
    # Models whose last pass settled them, with what they read then (see `Settled`).
    settled: dict[ModelKey, Settled] = field(default_factory=dict)
    # Held while a pass reads or replaces a pool's state and allocation: passes of several models
    # of one pool run at once, and each one's demand must reach the allocation the next one reads.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def remember_asks(self, key: ModelKey, asks: dict[str, InstanceCaps]) -> None:
        """What the model asked at this pass, replacing what it asked before."""
        self.forget_asks(key)
        self.asks[key] = dict(asks)
        for pool, caps in asks.items():
            self.by_pool.setdefault(pool, {})[key] = caps

    def forget_asks(self, key: ModelKey) -> frozenset[str]:
        """The model asks nothing any more (it is gone); the pools it asked of."""
        pools = frozenset(self.asks.pop(key, {}))
        for pool in pools:
            asking = self.by_pool.get(pool)
            if asking is not None:
                asking.pop(key, None)
                if not asking:
                    del self.by_pool[pool]
        return pools

    def asking(self, pool: str) -> dict[ModelKey, InstanceCaps]:
        """The models that asked `pool` for instances, with what they asked (a copy)."""
        return dict(self.by_pool.get(pool, {}))

    def forget_pool(self, name: str) -> None:
        self.states.pop(name, None)
        self.allocations.pop(name, None)
