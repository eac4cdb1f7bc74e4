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
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import Cluster, ClusterError, bring_up, tear_down
from harness import fresh_namespaces, running_operator, unique_name
from operator_process import OperatorProcess

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


@pytest.fixture
def operators(cluster: Cluster, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    """Start operators for one test: `operators(name, **options)` returns a started one; all stop after."""
    with ExitStack() as stack:

        def start(name: str = "operator", **options: Any) -> OperatorProcess:
            log_dir = tmp_path / name
            log_dir.mkdir(parents=True, exist_ok=True)
            return stack.enter_context(running_operator(cluster, log_dir, **options))

        yield start


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A namespace for one test's models (with the `hf-token` Secret), deleted afterwards."""
    with fresh_namespaces(cluster, unique_name("t")) as (name,):
        yield name
