"""A bounded subset of the fault suite (bench/faults.py, `make bench-faults`): the operator SIGKILLed
three times while models are created and updated, and ten rapid edits of one spec. Afterwards no
workload is orphaned, duplicated or stale, every condition is at its model's generation, every
Deployment is what `gpupool render` makes of its model, and the last edit wins."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from faults import Faults

pytestmark = pytest.mark.e2e


@pytest.fixture
def faults(cluster: Cluster, tmp_path: Path) -> Iterator[Faults]:
    suite = Faults(cluster, tmp_path)
    suite.prepare()
    yield suite
    suite.cleanup()


def test_operator_killed_three_times_while_models_change(faults: Faults) -> None:
    result = faults.kills(kills=3, models=8)
    print(f"\n{result.figures}")
    assert result.figures["models"] == "8"
    assert result.problems == []


def test_last_of_ten_rapid_edits_wins(faults: Faults) -> None:
    result = faults.rapid_edits(edits=10)
    print(f"\n{result.figures}")
    assert result.problems == []
