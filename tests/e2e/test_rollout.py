"""Canary rollouts on the local control plane, analysed from a real Prometheus.

The pods run nowhere (kwok plays their kubelets); `Engines` serves a vLLM metrics endpoint per
Running and Ready pod of the test's model on loopback (`gpupool.simulate.server`), the offered
load spread evenly over them as the model's Service spreads it, each pod's first tokens at its
version's time to first token. A real Prometheus (tools/localcluster/prometheus.sh) scrapes them
every second, the pods' `gpupool.io/pool`, `gpupool.io/model-deployment` and
`gpupool.io/revision` labels relabelled onto the series as the operator's queries expect.

The tests run in order on one model of two instances, routed from a Gateway (the Gateway API CRDs
of the pinned release; the Gateway object exists, no Gateway controller runs): a new weights
revision is promoted step by step, the route's weights following the steps; a canary whose first
tokens are 50% slower is rolled back at its first step while the stable version keeps its
instances; `paused` holds a step and an operator restart mid-step resumes it; a pool that names
no Prometheus rolls a new version in place; bad rollout specs are refused by the schema.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster, h100_pool_spec
from engines import ServingPods, scraped
from harness import condition, fresh_namespaces, install_gateway_api, running_operator
from operator_process import wait_for

POOL = f"rollout-h100-{uuid.uuid4().hex[:6]}"
BARE_POOL = f"rollout-bare-{uuid.uuid4().hex[:6]}"
MODEL = "chat"
REVISION_LABEL = "gpupool.io/revision"
HF_ID = "meta-llama/Llama-3.1-8B-Instruct"
LOAD_QPS = 12.0
STABLE_TTFT = 0.09  # seconds; vLLM's buckets put it in (0.08, 0.1]
STEPS = [20, 50, 100]
ROLLOUT = {"steps": STEPS, "minStepSeconds": 10, "minStepRequests": 20}

pytestmark = pytest.mark.e2e


class Engines(ServingPods):
    """vLLM metrics for the model's serving pods: the load spread evenly, first tokens per version."""

    def __init__(self, cluster: Cluster, namespace: str, sd_file: Path) -> None:
        super().__init__(cluster, namespace, MODEL, sd_file)
        self.load_qps = LOAD_QPS
        # A revision whose first tokens come at STABLE_TTFT; every other one's 50% later. None:
        # every revision at STABLE_TTFT.
        self.fast_revision: str | None = None

    def _advance(self) -> None:
        """Move every pod's counters to now: an even share of the load, first tokens at its version's time."""
        dt = self._tick()
        if not self._pods:
            return
        share = self.load_qps / len(self._pods)
        for name, pod in self._pods.items():
            done = share * dt
            pod.finished_stop += done
            pod.running = share * 2
            revision = self._labels.get(name, {}).get(REVISION_LABEL, "")
            slow = self.fast_revision is not None and revision != self.fast_revision
            ttft = STABLE_TTFT * 1.5 if slow else STABLE_TTFT
            first = next(i for i, bound in enumerate(pod.ttft.bounds) if bound >= ttft)
            for i in range(first, len(pod.ttft.bounds)):
                pod.ttft.counts[i] += done
            pod.ttft.total += done
            pod.ttft.sum += done * ttft


def model_spec(revision: str, pool: str = POOL, gateway: str = "public", **rollout: Any) -> dict[str, Any]:
    return {
        "model": {"name": "llama-3.1-8b"},
        "weights": {"huggingFace": {"id": HF_ID, "revision": revision}},
        "pool": pool,
        "replicas": 2,
        "traffic": {"peakQps": 1},
        "rollout": {**ROLLOUT, **rollout},
        "routing": {"parentRefs": [{"name": gateway}]},
    }


@pytest.fixture(scope="module")
def rollout(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("rollout")
    cluster.install_crds()
    install_gateway_api(cluster)
    namespace = f"rollout-{uuid.uuid4().hex[:6]}"
    sd_file = work / "targets.json"
    engines = Engines(cluster, namespace, sd_file)
    try:
        with ExitStack() as stack:
            prometheus = stack.enter_context(scraped(engines, work))
            operator = stack.enter_context(running_operator(cluster, work, resync_seconds=10))
            stack.enter_context(fresh_namespaces(cluster, namespace))
            cluster.apply(
                [
                    {
                        "apiVersion": "gpupool.io/v1alpha1",
                        "kind": "InferencePool",
                        "metadata": {"name": POOL},
                        "spec": h100_pool_spec(prometheus={"url": prometheus.url}),
                    },
                    {
                        "apiVersion": "gateway.networking.k8s.io/v1",
                        "kind": "Gateway",
                        "metadata": {"name": "public", "namespace": namespace},
                        "spec": {
                            "gatewayClassName": "unused",
                            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
                        },
                    },
                    {
                        "apiVersion": "gpupool.io/v1alpha1",
                        "kind": "ModelDeployment",
                        "metadata": {"name": MODEL, "namespace": namespace},
                        "spec": model_spec("r1"),
                    },
                ]
            )
            state = {"cluster": cluster, "namespace": namespace, "engines": engines, "operator": operator}
            wait_for("two instances ready", lambda: ready_replicas(state) == 2, timeout=120)
            yield state
    finally:
        for pool in (POOL, BARE_POOL):
            cluster.kubectl("delete", "inferencepool.gpupool.io", pool, "--ignore-not-found", check=False)


def get(state: dict[str, Any], *args: str) -> Any:
    result = state["cluster"].kubectl("get", *args, "-n", state["namespace"], "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def model(state: dict[str, Any]) -> dict[str, Any]:
    body = get(state, "modeldeployment.gpupool.io", MODEL)
    assert body is not None
    return dict(body)


def ready_replicas(state: dict[str, Any]) -> int:
    body = get(state, "deployment", MODEL)
    return int(((body or {}).get("status") or {}).get("readyReplicas") or 0)


def revision_of(deployment: dict[str, Any] | None) -> str | None:
    if deployment is None:
        return None
    return deployment["spec"]["template"]["metadata"]["labels"].get(REVISION_LABEL)


def set_spec(state: dict[str, Any], spec: dict[str, Any]) -> None:
    state["cluster"].kubectl(
        "patch", "modeldeployment.gpupool.io", MODEL, "-n", state["namespace"], "--type=merge",
        "-p", json.dumps({"spec": spec}),
    )  # fmt: skip


def events(state: dict[str, Any], reason: str) -> list[dict[str, Any]]:
    body = get(state, "events", "--field-selector", f"involvedObject.name={MODEL},reason={reason}")
    return list((body or {}).get("items") or [])


class Watch:
    """What the test sees of the rollout every half second, in a thread: the stable Deployment's
    replicas and revision, the route's canary weights, the rollout's steps and decisions."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.stable_replicas: list[int] = []
        self.stable_revisions: set[str | None] = set()
        self.route_weights: list[tuple[int, ...]] = []
        self.decisions: list[tuple[int | None, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            stable = get(self.state, "deployment", MODEL)
            if stable is not None:
                self.stable_replicas.append(int(stable["spec"]["replicas"]))
                self.stable_revisions.add(revision_of(stable))
            route = get(self.state, "httproute", MODEL)
            if route is not None:
                weights = tuple(b.get("weight", 1) for b in route["spec"]["rules"][0]["backendRefs"])
                if not self.route_weights or self.route_weights[-1] != weights:
                    self.route_weights.append(weights)
            status = (get(self.state, "modeldeployment.gpupool.io", MODEL) or {}).get("status") or {}
            rollout = status.get("rollout") or {}
            seen = (rollout.get("step"), rollout.get("decision"))
            if not self.decisions or self.decisions[-1] != seen:
                self.decisions.append(seen)


def rollout_status(state: dict[str, Any]) -> dict[str, Any]:
    return dict((model(state).get("status") or {}).get("rollout") or {})


def promoted(state: dict[str, Any], revision: str) -> bool:
    """The Deployment runs `revision`, the canary and the versions' Services are gone."""
    stable = get(state, "deployment", MODEL)
    rollout = rollout_status(state)
    return (
        revision_of(stable) == revision
        and rollout.get("stableRevision") == revision
        and rollout.get("decision") is None
        and get(state, "deployment", f"{MODEL}-canary") is None
        and get(state, "service", f"{MODEL}-canary") is None
    )


def test_a_healthy_canary_is_promoted_step_by_step(rollout: dict[str, Any]) -> None:
    first = revision_of(get(rollout, "deployment", MODEL))
    assert first is not None and rollout_status(rollout).get("stableRevision") == first
    with Watch(rollout) as watch:
        set_spec(rollout, model_spec("r2"))
        canary = wait_for(
            "the canary Deployment", lambda: get(rollout, "deployment", f"{MODEL}-canary"), timeout=60
        )
        new = revision_of(canary)
        assert new is not None and new != first
        assert canary["spec"]["selector"]["matchLabels"][REVISION_LABEL] == new
        wait_for("the new revision promoted", lambda: promoted(rollout, new), timeout=240)
    # The stable version never had fewer instances than its share of the traffic needs (2 of 2
    # at 20% and at 50%), and ran its own revision until the promotion.
    assert all(r >= math.ceil(2 * (100 - 50) / 100) for r in watch.stable_replicas), watch.stable_replicas
    assert watch.stable_revisions <= {first, new}
    # The route's backends followed the steps: stable/canary weights 80/20, then 50/50, then the
    # model's one Service again.
    splits = [w for w in watch.route_weights if len(w) == 2]
    assert splits[:2] == [(80, 20), (50, 50)], watch.route_weights
    assert watch.route_weights[-1] == (1,), watch.route_weights
    steps = [step for step, decision in watch.decisions if decision in ("Wait", "Hold", "Step")]
    assert 0 in steps and 1 in steps, watch.decisions
    for reason in ("CanaryStarted", "CanaryStep", "Promoted", "RolloutComplete"):
        assert events(rollout, reason), reason
    ready = condition(model(rollout), "Ready")
    assert ready.get("status") == "True", ready


def test_a_slow_canary_rolls_back_at_its_first_step(rollout: dict[str, Any]) -> None:
    stable = get(rollout, "deployment", MODEL)
    before = revision_of(stable)
    # Every version but the stable one answers its first tokens 50% later.
    rollout["engines"].fast_revision = before
    with Watch(rollout) as watch:
        set_spec(rollout, model_spec("r3-slow"))
        canary = wait_for("the canary", lambda: get(rollout, "deployment", f"{MODEL}-canary"), timeout=60)
        body = wait_for(
            "the rollback",
            lambda: condition(model(rollout), "Degraded").get("reason") == "RolledBack" and model(rollout),
            timeout=180,
        )
        wait_for("the canary gone", lambda: get(rollout, "deployment", f"{MODEL}-canary") is None, timeout=60)
        time.sleep(3)
    status = body["status"]["rollout"]
    assert status["decision"] == "RolledBack" and status["step"] == 0, status
    assert status["rolledBackRevision"] == revision_of(canary)
    analysis = status["analysis"]
    assert analysis["canaryTtftP99Seconds"] > analysis["maxTtftP99Seconds"], analysis
    degraded = condition(body, "Degraded")
    assert "above the stable" in degraded["message"] and "serves all traffic" in degraded["message"]
    # The stable version kept its two instances and its revision throughout.
    assert set(watch.stable_replicas) == {2}, watch.stable_replicas
    assert watch.stable_revisions == {before}
    assert revision_of(get(rollout, "deployment", MODEL)) == before
    assert events(rollout, "RolledBack")
    # It stays rolled back: no canary again for the same spec.
    time.sleep(12)
    assert get(rollout, "deployment", f"{MODEL}-canary") is None
    rollout["engines"].fast_revision = None


def test_paused_holds_and_a_restart_resumes_the_step(rollout: dict[str, Any]) -> None:
    set_spec(rollout, model_spec("r4", paused=True))
    wait_for("the canary", lambda: get(rollout, "deployment", f"{MODEL}-canary"), timeout=60)
    time.sleep(ROLLOUT["minStepSeconds"] + 12)
    held = rollout_status(rollout)
    assert (held.get("step"), held.get("decision")) == (0, "Hold"), held
    assert "paused" in held.get("message", "")
    set_spec(rollout, model_spec("r4", paused=False))  # a merge patch keeps what it leaves out
    wait_for("the second step", lambda: rollout_status(rollout).get("step") == 1, timeout=120)
    at = rollout_status(rollout)
    rollout["operator"].restart()
    time.sleep(5)
    after = rollout_status(rollout)
    # The restarted operator picks the step up where it stood, or has moved on from it.
    assert after.get("step") in (1, 2) or after.get("decision") in ("Promote", "Promoting", None), after
    if after.get("step") == 1:
        assert after.get("stepStartedAt") == at.get("stepStartedAt")
    new = revision_of(get(rollout, "deployment", f"{MODEL}-canary")) or after.get("canaryRevision")
    wait_for("the promotion after the restart", lambda: promoted(rollout, str(new)), timeout=240)


def test_a_route_to_a_missing_gateway_holds_the_canary_until_abort(rollout: dict[str, Any]) -> None:
    stable = revision_of(get(rollout, "deployment", MODEL))
    set_spec(rollout, model_spec("r6", gateway="absent", paused=False))
    wait_for("the canary", lambda: get(rollout, "deployment", f"{MODEL}-canary"), timeout=60)
    time.sleep(ROLLOUT["minStepSeconds"] + 12)
    held = rollout_status(rollout)
    assert (held.get("step"), held.get("decision")) == (0, "Hold"), held
    assert "waits for its route" in held.get("message", "") and "absent" in held.get("message", ""), held
    assert condition(model(rollout), "Routed").get("reason") == "GatewayNotFound"
    # abort still rolls it back, to the stable revision.
    set_spec(rollout, model_spec("r6", gateway="absent", abort=True))
    body = wait_for(
        "the rollback by abort",
        lambda: condition(model(rollout), "Degraded").get("reason") == "RolledBack" and model(rollout),
        timeout=60,
    )
    assert "clear rollout.abort" in condition(body, "Degraded")["message"]
    wait_for("the canary gone", lambda: get(rollout, "deployment", f"{MODEL}-canary") is None, timeout=60)
    assert revision_of(get(rollout, "deployment", MODEL)) == stable


def test_a_pool_without_prometheus_rolls_a_new_revision_in_place(rollout: dict[str, Any]) -> None:
    cluster = rollout["cluster"]
    cluster.apply(
        {"apiVersion": "gpupool.io/v1alpha1", "kind": "InferencePool", "metadata": {"name": BARE_POOL},
         "spec": h100_pool_spec()}
    )  # fmt: skip
    set_spec(rollout, model_spec("r4", pool=BARE_POOL, abort=False))
    wait_for(
        "the model on the bare pool",
        lambda: ready_replicas(rollout) == 2 and rollout_status(rollout),
        timeout=120,
    )
    before = revision_of(get(rollout, "deployment", MODEL))
    canaries = []

    def rolled() -> bool:
        canaries.append(get(rollout, "deployment", f"{MODEL}-canary"))
        now = revision_of(get(rollout, "deployment", MODEL))
        return now not in (before, None) and rollout_status(rollout).get("stableRevision") == now

    set_spec(rollout, model_spec("r5", pool=BARE_POOL, abort=False))
    wait_for("the new revision rolled in place", rolled, timeout=90)
    assert not any(canaries), "a canary ran on a pool without Prometheus"
    assert ready_replicas(rollout) >= 1


@pytest.mark.parametrize(
    ("rollout_spec", "message"),
    [
        ({"steps": [50, 25, 100]}, "rollout.steps must increase and end at 100"),
        ({"steps": [5, 25]}, "rollout.steps must increase and end at 100"),
        ({"analysis": {"maxErrorRatePercent": 150}}, "maxErrorRatePercent"),
        ({"analysis": {"maxTtftP99IncreasePercent": -1}}, "maxTtftP99IncreasePercent"),
        ({"paused": True, "abort": True}, "set paused or abort, not both"),
    ],
)
def test_bad_rollout_specs_are_refused_by_the_schema(
    rollout: dict[str, Any], rollout_spec: dict[str, Any], message: str
) -> None:
    manifest = {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "bad-rollout", "namespace": rollout["namespace"]},
        "spec": {**model_spec("r1"), "rollout": rollout_spec},
    }
    result = rollout["cluster"].kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(manifest), check=False
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
