"""How a model's traffic spreads over its pods: unevenly, the way LLM routers spread it.

A least-requests balancer would keep every pod equally busy, and then it would not matter which
pod a scale-down removes. LLM traffic is rarely balanced that way. Routers keep a conversation on
the pod whose KV cache holds its prefix (session or prefix affinity: vLLM production-stack's
session router, llm-d's and AIBrix's prefix-aware routing, Envoy's ring-hash balancer keyed on a
session header), and sessions are far from equal: a few heavy users, agents and batch clients send
most of the requests.

`session_shares` models that, deterministically:

- `sessions` sessions, session k sending a share proportional to 1 / (k + 1) (a Zipf mix, the
  usual shape of per-user request counts);
- consistent hashing: each pod owns `virtual_nodes` points of a hash ring (hashed from its name),
  each session goes to the first pod clockwise from its own hash, so pods that come and go move
  only their own sessions;
- bounded loads (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2018;
  HAProxy's `hash-balance-factor`, Envoy's `hash_balance_factor`): a pod takes a session only while
  its share stays within `balance_factor` (1.25) times the mean, else the session walks on to the
  next pod, so no pod is pushed far past the others' load. A session larger than that bound goes
  whole to the least loaded pod: sessions are never split.

The result is stable while the pods stay the same and uneven in a way unrelated to the pods' age,
which is what an end-to-end test of "remove the least busy pod" needs: the pod with the fewest
requests in flight is not simply the newest one, which the ReplicaSet controller removes by default.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Sequence

DEFAULT_SESSIONS = 64
DEFAULT_VIRTUAL_NODES = 16
# The bound of lafikl/liblb's bounded-load balancer (25% above the mean); HAProxy's documentation
# example is 150 (1.5 times the mean).
DEFAULT_BALANCE_FACTOR = 1.25


def _point(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def session_weights(sessions: int = DEFAULT_SESSIONS) -> list[float]:
    """Each session's share of the requests: proportional to 1 / (k + 1), summing to 1."""
    raw = [1.0 / (k + 1) for k in range(sessions)]
    total = sum(raw)
    return [w / total for w in raw]


def session_shares(
    pods: Sequence[str],
    *,
    sessions: int = DEFAULT_SESSIONS,
    virtual_nodes: int = DEFAULT_VIRTUAL_NODES,
    balance_factor: float = DEFAULT_BALANCE_FACTOR,
) -> dict[str, float]:
    """Each pod's share of the requests (summing to 1; empty without pods)."""
    if not pods:
        return {}
    if balance_factor < 1:
        raise ValueError("balance_factor must be at least 1")
    ring = sorted((_point(f"{pod}#{i}"), pod) for pod in sorted(set(pods)) for i in range(virtual_nodes))
    points = [p for p, _ in ring]
    names = sorted(set(pods))
    load = dict.fromkeys(names, 0.0)
    bound = balance_factor / len(names)
    for k, weight in enumerate(session_weights(sessions)):
        start = bisect_right(points, _point(f"session-{k}"))
        chosen: str | None = None
        for offset in range(len(ring)):
            pod = ring[(start + offset) % len(ring)][1]
            if load[pod] + weight <= bound + 1e-12:
                chosen = pod
                break
        if chosen is None:  # larger than the bound: whole, to the least loaded pod
            chosen = min(names, key=lambda p: (load[p], p))
        load[chosen] += weight
    return load
