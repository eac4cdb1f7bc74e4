"""Session affinity with bounded loads: uneven, stable, unrelated to the pods' age."""

from __future__ import annotations

import math

import pytest

from gpupool.simulate.balancing import DEFAULT_BALANCE_FACTOR, session_shares, session_weights

PODS = ["chat-6f9c7d-2kx4p", "chat-6f9c7d-9qzrt", "chat-6f9c7d-h7m2c", "chat-6f9c7d-tx5wd"]


def test_sessions_follow_a_zipf_mix() -> None:
    weights = session_weights(64)
    assert math.isclose(sum(weights), 1.0)
    assert weights[0] == pytest.approx(2 * weights[1]) == pytest.approx(64 * weights[-1])


def test_shares_cover_all_traffic_unevenly_within_the_bound() -> None:
    shares = session_shares(PODS)
    assert set(shares) == set(PODS)
    assert math.isclose(sum(shares.values()), 1.0)
    bound = DEFAULT_BALANCE_FACTOR / len(PODS)
    assert max(shares.values()) <= bound + 1e-9
    # Uneven: the busiest pod serves well over the quietest one's share.
    assert max(shares.values()) > 1.3 * min(shares.values())


def test_shares_depend_on_the_pods_not_on_their_order() -> None:
    assert session_shares(PODS) == session_shares(list(reversed(PODS)))
    assert session_shares([]) == {}
    assert session_shares(PODS[:1]) == {PODS[0]: pytest.approx(1.0)}


def test_a_session_larger_than_the_bound_stays_whole() -> None:
    # With 8 pods the bound is 1.25 / 8 = 16%, below the heaviest session's 21%.
    pods = [f"chat-{i}" for i in range(8)]
    shares = session_shares(pods)
    assert math.isclose(sum(shares.values()), 1.0)
    assert max(shares.values()) >= session_weights()[0]


def test_the_least_busy_pod_is_not_always_the_newest() -> None:
    # Pod names carry no age; over many name sets the quietest pod sits at every position.
    positions = set()
    for run in range(40):
        pods = [f"chat-{run:03d}-{i}" for i in range(4)]  # index = order of creation
        shares = session_shares(pods)
        positions.add(min(range(4), key=lambda i: shares[pods[i]]))
    assert positions == {0, 1, 2, 3}
