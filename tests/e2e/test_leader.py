"""Two real operator processes with leader election against the local control plane.

The standby acts on nothing while the leader leads; a SIGKILLed leader's standby takes the Lease
over once it expires and converges what changed meanwhile; a SIGTERMed leader hands the Lease over
at once; a leader whose Lease is taken from it exits. Takeover times are printed (run with -s to
see them), and asserted only against generous bounds.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster
from harness import model_manifest
from leases import leader_args, lease_holder, lease_spec, reconciles, wait_for_holder
from operator_process import OperatorProcess, wait_for

ROOT = Path(__file__).resolve().parents[2]
POOL = ROOT / "manifests" / "samples" / "pool-nvidia-h100.yaml"
LEASE = "gpupool-operator"

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def pool(cluster: Cluster) -> None:
    cluster.install_crds()
    cluster.kubectl("apply", "-f", str(POOL))


def start(operators: Callable[..., OperatorProcess], namespace: str, identity: str) -> OperatorProcess:
    # Returns once /healthz answers, which a standby does too.
    return operators(identity, extra_args=leader_args(namespace, LEASE, identity))


def apply(cluster: Cluster, namespace: str, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))


def converged(cluster: Cluster, namespace: str, name: str, replicas: int) -> bool:
    md = cluster.get_json("mdep", name, "-n", namespace)
    deployment = cluster.get_json("deployment", name, "-n", namespace)
    conditions = (md.get("status") or {}).get("conditions") or []
    generation = md["metadata"]["generation"]
    return bool(
        deployment["spec"]["replicas"] == replicas
        and md["status"].get("observedGeneration") == generation
        and conditions
        and all(c.get("observedGeneration") == generation for c in conditions)
    )


def event_reasons(cluster: Cluster, namespace: str, name: str) -> Counter[str]:
    events = cluster.get_json("events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")
    return Counter(e["reason"] for e in events["items"] if e.get("reportingComponent") == "gpupool")


def test_standby_acts_on_nothing_while_the_leader_leads(
    cluster: Cluster, namespace: str, operators: Callable[..., OperatorProcess]
) -> None:
    leader = start(operators, namespace, "a")
    wait_for_holder(cluster, namespace, LEASE, "a")
    standby = start(operators, namespace, "b")
    wait_for("b standing by", lambda: "standing by while a leads" in standby.log_path.read_text(), timeout=30)

    apply(cluster, namespace, model_manifest("chat", replicas=1))
    wait_for("chat converged", lambda: converged(cluster, namespace, "chat", 1), timeout=90)
    # Let the resync (5 s) run a few times: the standby must stay quiet through them too.
    time.sleep(12)
    reasons = event_reasons(cluster, namespace, "chat")
    assert reasons, "the leader posted no event"
    assert set(reasons.values()) == {1}, f"events posted more than once: {reasons}"
    assert reconciles(leader) > 0
    assert reconciles(standby) == 0
    assert "gpupool_leader_election_is_leader 1.0" in leader.metrics()
    assert "gpupool_leader_election_is_leader 0.0" in standby.metrics()
    assert lease_holder(cluster, namespace, LEASE) == "a"


def test_sigkilled_leader_is_replaced_and_the_standby_converges_later_changes(
    cluster: Cluster, namespace: str, operators: Callable[..., OperatorProcess]
) -> None:
    leader = start(operators, namespace, "a")
    wait_for_holder(cluster, namespace, LEASE, "a")
    standby = start(operators, namespace, "b")
    apply(cluster, namespace, model_manifest("chat", replicas=1))
    wait_for("chat converged", lambda: converged(cluster, namespace, "chat", 1), timeout=90)

    assert leader.process is not None
    leader.process.kill()
    killed = time.monotonic()
    apply(cluster, namespace, model_manifest("chat", replicas=2))  # changed while nobody leads
    takeover = wait_for_holder(cluster, namespace, LEASE, "b", timeout=60)
    print(f"\ntakeover after SIGKILL: {time.monotonic() - killed:.1f} s (lease duration 10 s)")
    wait_for("chat converged on b", lambda: converged(cluster, namespace, "chat", 2), timeout=90)
    print(f"converged after SIGKILL: {time.monotonic() - killed:.1f} s")
    assert takeover < 45
    assert reconciles(standby) > 0
    assert lease_spec(cluster, namespace, LEASE)["leaseTransitions"] >= 1


def test_sigterm_hands_the_lease_over_at_once(
    cluster: Cluster, namespace: str, operators: Callable[..., OperatorProcess]
) -> None:
    leader = start(operators, namespace, "a")
    wait_for_holder(cluster, namespace, LEASE, "a")
    start(operators, namespace, "b")
    # Give the standby time to see the Lease renewed, so that only a release lets it in early.
    time.sleep(3)
    assert leader.process is not None
    leader.process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    handover = wait_for_holder(cluster, namespace, LEASE, "b", timeout=60)
    print(f"\nhandover after SIGTERM: {time.monotonic() - stopped:.1f} s (lease duration 10 s)")
    assert leader.process.wait(timeout=30) == 0
    assert "released Lease" in leader.log_path.read_text()
    # The lease would only have expired 10 s after the last renewal; a release is faster.
    assert handover < 9


def test_leader_that_loses_its_lease_exits_non_zero(
    cluster: Cluster, namespace: str, operators: Callable[..., OperatorProcess]
) -> None:
    leader = start(operators, namespace, "a")
    wait_for_holder(cluster, namespace, LEASE, "a")
    lease = json.loads(cluster.kubectl("get", "lease", LEASE, "-n", namespace, "-o", "json").stdout)
    lease["spec"]["holderIdentity"] = "intruder"
    cluster.kubectl("replace", "-f", "-", input=json.dumps(lease))
    assert leader.process is not None
    assert leader.process.wait(timeout=30) == 1
    lost = [line for line in leader.log_path.read_text().splitlines() if "leader election lost" in line]
    assert len(lost) == 1 and "intruder holds Lease" in lost[0]
    assert lease_holder(cluster, namespace, LEASE) == "intruder"
