"""Operator processes that take turns through a leader-election Lease, for end-to-end tests and the
fault suite."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from operator_process import OperatorProcess


def elected_operator(
    kubeconfig: str,
    log_dir: Path,
    identity: str,
    namespace: str,
    lease: str,
    resync_seconds: float = 5.0,
) -> OperatorProcess:
    """`gpupool run --leader-elect` with a known holder identity; not started yet."""
    log_dir.mkdir(parents=True, exist_ok=True)
    return OperatorProcess(
        kubeconfig, log_dir, resync_seconds=resync_seconds, extra_args=leader_args(namespace, lease, identity)
    )


def leader_args(namespace: str, lease: str, identity: str) -> list[str]:
    """The flags of `gpupool run` that make it take turns through the Lease `namespace/lease`."""
    return [
        "--leader-elect",
        f"--leader-election-namespace={namespace}",
        f"--leader-election-id={lease}",
        f"--leader-election-identity={identity}",
    ]


def lease_spec(cluster: Any, namespace: str, lease: str) -> dict[str, Any]:
    """The Lease's spec, {} while there is none."""
    result = cluster.kubectl("get", "lease", lease, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        return {}
    spec: dict[str, Any] = json.loads(result.stdout).get("spec") or {}
    return spec


def lease_holder(cluster: Any, namespace: str, lease: str) -> str:
    return str(lease_spec(cluster, namespace, lease).get("holderIdentity") or "")


def wait_for_holder(
    cluster: Any, namespace: str, lease: str, identity: str, timeout: float = 60.0, interval: float = 0.2
) -> float:
    """Seconds until `identity` holds the Lease; AssertionError after `timeout`."""
    start = time.monotonic()
    holder = ""
    while time.monotonic() - start < timeout:
        holder = lease_holder(cluster, namespace, lease)
        if holder == identity:
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(
        f"{identity} did not take Lease {namespace}/{lease} in {timeout:.0f}s; holder {holder!r}"
    )


def reconciles(operator: OperatorProcess) -> int:
    """Reconcile passes the process has counted (0 for a standby, which never reconciles)."""
    total = 0.0
    for line in operator.metrics().splitlines():
        if line.startswith("gpupool_reconcile_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)
