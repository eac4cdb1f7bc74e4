"""spec.rollout.strategy on the rendered Deployment."""

from __future__ import annotations

from gpupool.api.rollout import RolloutStrategy
from gpupool.render import rollout_strategy


def test_recreate_stops_everything_first() -> None:
    assert rollout_strategy(3, RolloutStrategy.RECREATE) == {"type": "Recreate"}


def test_rolling_update_and_canary_replace_in_place() -> None:
    for strategy in (RolloutStrategy.ROLLING_UPDATE, RolloutStrategy.CANARY):
        assert rollout_strategy(1, strategy)["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
        assert rollout_strategy(4, strategy)["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
