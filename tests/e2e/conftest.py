"""Session fixture for the local control plane.

`cluster` reuses a running local cluster or brings one up with
tools/localcluster/cluster.sh (building the binaries on first use), and tears
it down at the end only if it started it. A cluster that cannot be brought up
fails every test that needs it.

Environment:
  GPUPOOL_SKIP_E2E=1      skip the end-to-end tests, saying why (for machines
                          that cannot build or run the cluster).
  GPUPOOL_KEEP_CLUSTER=1  leave a cluster started here running afterwards.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import Cluster, ClusterError, bring_up, tear_down

E2E_DIR = Path(__file__).resolve().parent
SKIP_REASON = "end-to-end tests skipped because GPUPOOL_SKIP_E2E=1"


def _skip_requested() -> bool:
    return os.environ.get("GPUPOOL_SKIP_E2E", "").strip().lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason=SKIP_REASON) if _skip_requested() else None
    for item in items:
        if E2E_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)
            if skip is not None:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if _skip_requested():
        pytest.skip(SKIP_REASON)
    failure = None
    try:
        handle = bring_up()
    except ClusterError as err:
        failure = str(err)
    if failure is not None:
        # Outside the except block, so the report shows the message once.
        pytest.fail(f"local cluster could not be brought up:\n{failure}", pytrace=False)
    try:
        yield handle
    finally:
        if handle.started_here and os.environ.get("GPUPOOL_KEEP_CLUSTER") != "1":
            tear_down()
