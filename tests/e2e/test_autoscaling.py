"""The autoscaler's closed loop: real Prometheus -> operator -> Deployment -> kwok pods -> metrics.

The pods run nowhere (kwok plays their kubelets), so this module serves their engine metrics:
`gpupool.simulate.server` on loopback exposes one vLLM endpoint per Running and Ready pod of the
test's ModelDeployment, from a small fluid model of the offered load the test sets, spread over the
serving pods unevenly, as a session-affinity router with bounded loads spreads it
(`gpupool.simulate.balancing`). A real Prometheus (tools/localcluster/prometheus.sh, on a port and
in a state folder of this module's own) scrapes each pod's endpoint every second through file
service discovery; the pods' `gpupool.io/pool` and `gpupool.io/model-deployment` labels are
relabelled onto the series as `pool` and `model_deployment`, as the chart's PodMonitor does. The
operator reads that Prometheus through the pool's `spec.prometheus`.

The tests run in order and share one model: scale up on a load step, keep the count and the
scaling state across an operator restart, hold when Prometheus is gone, scale down only after the
stabilisation window once the load drops, remove the least busy pods on a scale-down, hold while
Prometheus refuses the operator's credentials and resume with the right Secret (basic auth, then
https with the CA from a Secret), and feed the seasonal forecast from Prometheus' history.
"""

from __future__ import annotations

import base64
import json
import math
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from cluster import Cluster, h100_pool_spec
from engines import ServingPods, scraped
from harness import condition, fresh_namespaces, running_operator
from operator_process import audit_writes, wait_for
from test_observability import Prometheus

from gpupool.controller.prometheus import (
    Connection,
    history_plan,
    history_query,
    in_flight_query,
    read_history,
)
from gpupool.scaling.deletion import POD_DELETION_COST
from gpupool.simulate.balancing import session_shares

ROOT = Path(__file__).resolve().parents[2]
POOL = f"autoscale-h100-{uuid.uuid4().hex[:6]}"
MODEL = "chat"
INTERVAL = 2  # evaluationIntervalSeconds
STABILIZATION = 20  # scaleDownStabilizationSeconds
POLICY = {
    "enabled": True,
    "evaluationIntervalSeconds": INTERVAL,
    "metricsMaxAgeSeconds": 10,
    "predictive": False,
    "scaleUpStep": 2,
    "scaleUpPeriodSeconds": 5,
    "scaleDownStep": 4,
    "scaleDownPeriodSeconds": 5,
    "scaleDownStabilizationSeconds": STABILIZATION,
    "scaleDownDelayAfterScaleUpSeconds": 10,
}
QPS = 'sum by (namespace, model_deployment) (rate(vllm:request_success_total{pool="%s"}[1m]))'
WAITING = 'sum by (namespace, model_deployment) (vllm:num_requests_waiting{pool="%s"})'
# Seconds a request spends in the running batch: a chat answer of ~200 tokens at ~35 tokens/s.
IN_BATCH_SECONDS = 6.0

pytestmark = pytest.mark.e2e


class SimulatedPods(ServingPods):
    """Engine metrics for the model's Running and Ready pods, driven by an offered load."""

    def __init__(self, cluster: Cluster, namespace: str, sd_file: Path) -> None:
        super().__init__(cluster, namespace, MODEL, sd_file)
        self.capacity = 15.0  # replaced by the plan's QPS per instance once known

    def shares(self) -> dict[str, float]:
        """Each serving pod's share of the load: session affinity with bounded loads."""
        return session_shares(sorted(self._pods))

    def in_flight(self) -> dict[str, float]:
        """Requests running or queued on each serving pod now, as its engine reports them."""
        with self._lock:
            self._advance()
            return {name: pod.running + pod.waiting for name, pod in self._pods.items()}

    def _advance(self) -> None:
        """Move every pod's counters and gauges to now (fluid: no randomness)."""
        dt = self._tick()
        if not self._pods:
            return
        saturation = self.capacity * 1.1
        shares = self.shares()
        for name, pod in self._pods.items():
            offered = self.load_qps * shares[name]
            served = min(offered, saturation)
            done = served * dt
            pod.finished_stop += done
            pod.prompt_tokens += done * 1024
            pod.generation_tokens += done * 128
            pod.running = served * IN_BATCH_SECONDS
            pod.waiting = max(0.0, offered - saturation) * 5
            pod.kv_cache_usage = min(0.95, 0.6 * served / self.capacity)
            pod.accelerator_utilization = 1 - math.exp(-pod.running)
            # Every first token within 100 ms: the latency signal stays quiet; load drives the count.
            index = pod.ttft.bounds.index(0.1)
            for i in range(index, len(pod.ttft.bounds)):
                pod.ttft.counts[i] += done
            pod.ttft.total += done
            pod.ttft.sum += done * 0.05


@pytest.fixture(scope="module")
def loop(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("autoscaling")
    cluster.install_crds()
    namespace = f"autoscale-{uuid.uuid4().hex[:6]}"
    # The operator's own namespace, where it reads Prometheus credentials.
    operator_namespace = f"{namespace}-operator"
    sd_file = work / "targets.json"
    pods = SimulatedPods(cluster, namespace, sd_file)
    try:
        with ExitStack() as stack:
            prometheus = stack.enter_context(scraped(pods, work))
            operator = stack.enter_context(
                running_operator(
                    cluster, work, resync_seconds=5, extra_env={"GPUPOOL_NAMESPACE": operator_namespace}
                )
            )
            stack.enter_context(fresh_namespaces(cluster, namespace))
            stack.enter_context(fresh_namespaces(cluster, operator_namespace, models=False))
            cluster.apply(
                [
                    {
                        "apiVersion": "gpupool.io/v1alpha1",
                        "kind": "InferencePool",
                        "metadata": {"name": POOL},
                        "spec": h100_pool_spec(prometheus={"url": prometheus.url}),
                    },
                    {
                        "apiVersion": "gpupool.io/v1alpha1",
                        "kind": "ModelDeployment",
                        "metadata": {"name": MODEL, "namespace": namespace},
                        "spec": {
                            "model": {"name": "llama-3.1-8b"},
                            "pool": POOL,
                            "traffic": {"peakQps": 1},
                            "scaling": {"minReplicas": 1, "maxReplicas": 4},
                            "autoscaling": POLICY,
                        },
                    },
                ]
            )
            state = {
                "cluster": cluster,
                "namespace": namespace,
                "operator_namespace": operator_namespace,
                "pods": pods,
                "prometheus": prometheus,
                "operator": operator,
                "config": work / "prometheus.yml",
                "work": work,
            }
            body = wait_for(
                "the model planned", lambda: model(state).get("status", {}).get("plan"), timeout=60
            )
            pods.capacity = float(body["qpsPerInstance"])
            yield state
    finally:
        cluster.kubectl("delete", "inferencepool.gpupool.io", POOL, check=False)


def model(state: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = state["cluster"].get_json(
        "modeldeployment.gpupool.io", MODEL, "-n", state["namespace"]
    )
    return body


def wait_condition(state: dict[str, Any], type_: str, status: str, timeout: float = 60) -> dict[str, Any]:
    """Wait for a condition of the model; fail with the condition and the operator's log."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = model(state)
        last = condition(body, type_)
        if last.get("status") == status:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{type_} never became {status}: {last}\n{state['operator'].log_tail(30)}")


def deployment_replicas(state: dict[str, Any]) -> int:
    body = state["cluster"].get_json("deployment", MODEL, "-n", state["namespace"])
    return int(body["spec"]["replicas"])


def observed_qps(state: dict[str, Any], query: str = QPS) -> float | None:
    """A signal as the operator's query sees it in Prometheus now."""
    answer = state["prometheus"].query(query % POOL)
    for series in answer.get("data", {}).get("result", []):
        if series["metric"].get("namespace") == state["namespace"]:
            value = float(series["value"][1])
            return None if math.isnan(value) else value
    return None


def test_load_step_scales_up_within_two_evaluation_intervals(loop: dict[str, Any]) -> None:
    pods: SimulatedPods = loop["pods"]
    pods.load_qps = 0.25 * pods.capacity
    wait_for("one instance serving", lambda: deployment_replicas(loop) == 1 and pods.snapshot(), timeout=90)
    wait_condition(loop, "MetricsAvailable", "True")
    assert deployment_replicas(loop) == 1
    # A step to 2.2 instances' worth: the one instance saturates, so its queue passes the overload
    # threshold (5 waiting per instance) at once, and the 1-minute rate passes 80% of its capacity
    # soon after; the count the 80% target needs is 3.
    pods.load_qps = 2.2 * pods.capacity
    threshold = 0.8 * pods.capacity
    deadline = time.monotonic() + 90
    crossed: float | None = None
    scaled: float | None = None
    while time.monotonic() < deadline and scaled is None:
        qps, waiting = observed_qps(loop), observed_qps(loop, WAITING)
        over = (qps is not None and qps > threshold) or (waiting is not None and waiting > 5)
        if crossed is None and over:
            crossed = time.monotonic()
        if deployment_replicas(loop) > 1:
            scaled = time.monotonic()
        time.sleep(0.25)
    assert crossed is not None and scaled is not None, (crossed, scaled, loop["operator"].log_tail())
    # Two evaluation intervals, plus the 1 s tick of the loop and the range query's step alignment.
    assert scaled - crossed <= 2 * INTERVAL + 2, scaled - crossed
    status = model(loop)["status"]
    decision = status["autoscaling"]["lastDecision"]
    assert decision["direction"] == "Up" and decision["fromReplicas"] == 1 and decision["toReplicas"] > 1
    assert "scale up" in decision["reason"]
    wait_for("three instances for 2.2x the capacity", lambda: deployment_replicas(loop) == 3, timeout=90)
    events = loop["cluster"].get_json(
        "events", "-n", loop["namespace"], "--field-selector", f"involvedObject.name={MODEL},reason=Scaled"
    )["items"]
    assert any("autoscaler: scale up" in e["message"] for e in events)
    metrics = loop["operator"].metrics()
    assert 'gpupool_scaling_decisions_total{direction="Up"}' in metrics
    gauge = f'gpupool_model_autoscaler_desired_replicas{{name="{MODEL}",namespace="{loop["namespace"]}"}} 3.0'
    assert gauge in metrics, "\n".join(line for line in metrics.splitlines() if "autoscaler_desired" in line)


def test_operator_restart_keeps_the_count_and_the_scaling_state(loop: dict[str, Any]) -> None:
    assert deployment_replicas(loop) == 3
    before = model(loop)["status"]["autoscaling"]["state"]
    assert before["lastScaleUpTime"]
    loop["operator"].restart()
    # Several evaluations later, the count is what the load needs, not the plan's single instance,
    # and the last scale-up (which holds scale-downs back) is remembered.
    time.sleep(4 * INTERVAL)
    after = model(loop)["status"]["autoscaling"]
    assert after["state"]["lastScaleUpTime"] == before["lastScaleUpTime"]
    assert after["lastDecision"]["toReplicas"] == 3
    assert deployment_replicas(loop) == 3


def test_prometheus_down_holds_the_count_and_says_why(loop: dict[str, Any]) -> None:
    pods: SimulatedPods = loop["pods"]
    prometheus: Prometheus = loop["prometheus"]
    # Traffic falls while Prometheus is gone: nothing may scale down on metrics it cannot read.
    pods.load_qps = 0.1 * pods.capacity
    prometheus.stop()
    try:
        unavailable = wait_condition(loop, "MetricsAvailable", "False", timeout=30)
        assert condition(unavailable, "MetricsAvailable")["reason"] == "PrometheusUnreachable"
        end = time.monotonic() + STABILIZATION + 5 * INTERVAL
        while time.monotonic() < end:
            assert deployment_replicas(loop) == 3
            time.sleep(1)
        decision = model(loop)["status"]["autoscaling"]["lastDecision"]
        assert decision["metricsAvailable"] is False and decision["direction"] == "Hold"
    finally:
        prometheus.start(loop["config"])
    wait_condition(loop, "MetricsAvailable", "True")


def test_drop_scales_down_only_after_the_stabilisation_window(loop: dict[str, Any]) -> None:
    pods: SimulatedPods = loop["pods"]
    # Three instances' worth of demand first, long enough for the window to hold only threes.
    threshold = 0.6 * 3 * pods.capacity
    pods.load_qps = 2.2 * pods.capacity
    wait_for("three instances", lambda: deployment_replicas(loop) == 3, timeout=120)
    wait_for(
        "demand above the scale-down threshold", lambda: (observed_qps(loop) or 0) > threshold, timeout=90
    )
    time.sleep(STABILIZATION)
    pods.load_qps = 0.1 * pods.capacity
    # Below 60% of three instances' capacity: the policy asks for fewer from then on.
    below = wait_for(
        "demand below the scale-down threshold",
        lambda: (q := observed_qps(loop)) is not None and q < threshold and time.monotonic(),
        timeout=90,
    )
    assert deployment_replicas(loop) == 3
    scaled = wait_for("scale down", lambda: deployment_replicas(loop) < 3 and time.monotonic(), timeout=120)
    # The window keeps the highest recommendation of its last STABILIZATION seconds.
    assert scaled - below >= STABILIZATION - 2 * INTERVAL, scaled - below
    wait_for("back to one instance", lambda: deployment_replicas(loop) == 1, timeout=60)
    decision = model(loop)["status"]["autoscaling"]["lastDecision"]
    assert decision["direction"] in ("Down", "Hold") and decision["metricsAvailable"] is True


# --------------------------------------------------------------------------------------------------
# Safe scale-down: the least busy pods go


class PodWatch:
    """Every change to the model's pods in the API server's order (`kubectl get --watch`)."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [
                str(cluster.kubectl_path),
                "--kubeconfig",
                str(cluster.kubeconfig),
                "get",
                "pods",
                "-n",
                namespace,
                "-l",
                f"gpupool.io/model-deployment={MODEL}",
                "--watch",
                "--output-watch-events",
                "-o",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="pod-watch", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        decoder = json.JSONDecoder()
        buffer = ""
        for line in self.process.stdout:
            buffer += line
            while True:
                buffer = buffer.lstrip()
                try:
                    event, end = decoder.raw_decode(buffer)
                except json.JSONDecodeError:
                    break
                buffer = buffer[end:]
                with self._lock:
                    self.events.append((event["type"], event["object"]))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def removed(self) -> set[str]:
        """Pods the ReplicaSet deleted (a deletionTimestamp, or gone)."""
        with self._lock:
            return {
                obj["metadata"]["name"]
                for type_, obj in self.events
                if type_ == "DELETED" or obj["metadata"].get("deletionTimestamp")
            }

    def removals(self) -> list[tuple[str, dict[str, int | None]]]:
        """Each pod marked for deletion, in order, with the deletion costs of the pods still live
        just before (the marked one included): what the ReplicaSet controller chose from."""
        live: dict[str, int | None] = {}
        marked: list[tuple[str, dict[str, int | None]]] = []
        with self._lock:
            for type_, obj in self.events:
                name = obj["metadata"]["name"]
                if any(name == m for m, _ in marked):
                    continue
                if type_ == "DELETED" or obj["metadata"].get("deletionTimestamp"):
                    marked.append((name, dict(live)))
                    live.pop(name, None)
                    continue
                cost = (obj["metadata"].get("annotations") or {}).get(POD_DELETION_COST)
                live[name] = int(cost) if cost is not None else None
        return marked

    def cost_writes(self) -> list[tuple[str, str | None, frozenset[str]]]:
        """(pod, new cost, pods live then) for every change of a deletion cost the watch saw."""
        seen: dict[str, str | None] = {}
        marked: set[str] = set()
        writes = []
        with self._lock:
            for type_, obj in self.events:
                name = obj["metadata"]["name"]
                if type_ == "DELETED" or obj["metadata"].get("deletionTimestamp"):
                    marked.add(name)
                    continue
                cost = (obj["metadata"].get("annotations") or {}).get(POD_DELETION_COST)
                if type_ == "MODIFIED" and name in seen and seen[name] != cost:
                    writes.append((name, cost, frozenset(seen) - marked))
                seen[name] = cost
        return writes


def in_flight_by_pod(state: dict[str, Any]) -> dict[str, float]:
    """The in-flight requests of the model's pods as Prometheus has them now (the operator's query)."""
    answer = state["prometheus"].query(in_flight_query(POOL))
    return {
        r["metric"]["pod"]: float(r["value"][1])
        for r in answer.get("data", {}).get("result", [])
        if r["metric"].get("namespace") == state["namespace"]
    }


def test_scale_down_removes_the_least_busy_pods(loop: dict[str, Any]) -> None:
    pods: SimulatedPods = loop["pods"]
    cluster: Cluster = loop["cluster"]
    pods.load_qps = 3.0 * pods.capacity  # 3.75 instances' worth at 80%: four
    wait_for(
        "four instances serving",
        lambda: deployment_replicas(loop) == 4 and len(pods.snapshot()) == 4,
        timeout=150,
    )
    four = set(pods.in_flight())
    wait_for("Prometheus scraping the four pods", lambda: set(in_flight_by_pod(loop)) == four, timeout=30)
    watch = PodWatch(cluster, loop["namespace"])
    offset = cluster.audit_offset()
    try:
        # One instance's worth: the policy asks for two (in one step, or in two while the
        # one-minute rate comes down). The router keeps spreading it unevenly.
        pods.load_qps = 1.0 * pods.capacity
        wait_for("scale down to two", lambda: deployment_replicas(loop) == 2, timeout=120)
        seen = {deployment_replicas(loop)}
        wait_for(
            "two pods removed",
            lambda: seen.add(deployment_replicas(loop)) or len(watch.removed() & four) == 2,
            timeout=180,
        )
        # Evaluations holding at two (15 QPS is 48% of two instances) write no pod at all.
        deadline = time.monotonic() + 5 * INTERVAL
        while time.monotonic() < deadline:
            seen.add(deployment_replicas(loop))
            time.sleep(0.5)
    finally:
        watch.stop()
    # The requests of the removed pods queue again on the others for a moment: the policy holds
    # against that queue after its own scale-down instead of adding the pods back.
    last = model(loop)["status"]["autoscaling"]["lastDecision"]
    assert seen == {2}, (seen, last)
    removals = [(pod, live) for pod, live in watch.removals() if pod in four]
    assert len(removals) == 2, removals
    # Each cost written is the pod's in-flight requests: what the simulated engines report for this
    # load spread over the pods live at that moment...
    writes = watch.cost_writes()
    for pod, cost, live in writes:
        expected = pods.load_qps * session_shares(sorted(live))[pod] * IN_BATCH_SECONDS
        print(f"cost of {pod}: {cost}, in flight {expected:.1f} over {len(live)} pods")
        assert cost is not None and abs(int(cost) - expected) <= 1.5, (pod, cost, expected)
    for pod, live in removals:
        print(f"removed {pod}: costs {live}")
        # ...every live pod carried one when the ReplicaSet chose...
        assert all(cost is not None for cost in live.values()), live
        costs = {p: int(c or 0) for p, c in live.items()}
        # ...and it removed the least busy: any pod cheaper than this one went too (two pods
        # removed in one step are marked one after the other, in no particular order).
        cheaper = {p for p, c in costs.items() if c < costs[pod]}
        assert cheaper <= {p for p, _ in removals}, (pod, costs)
    first = {p: int(c or 0) for p, c in removals[0][1].items()}
    assert len(set(first.values())) >= 3, first  # uneven load: the choice matters
    # One merge patch per cost that changed, none on the passes that followed.
    patched = [
        w["objectRef"]
        for w in audit_writes(cluster.audit_log, offset)
        if w["objectRef"]["resource"] == "pods"
    ]
    assert sorted(r["name"] for r in patched) == sorted(p for p, _, _ in writes), patched
    assert patched and {r.get("subresource") for r in patched} == {None}


# --------------------------------------------------------------------------------------------------
# Prometheus authentication and TLS


def web_config(path: Path, password: str, tls: tuple[Path, Path] | None = None) -> Path:
    """Prometheus' --web.config.file: one basic-auth user (bcrypt hash), optionally https."""
    config: dict[str, Any] = {
        "basic_auth_users": {
            "autoscaler": bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
        }
    }
    if tls is not None:
        config["tls_server_config"] = {"cert_file": str(tls[0]), "key_file": str(tls[1])}
    path.write_text(yaml.safe_dump(config))
    return path


def certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signs for 127.0.0.1: (ca.crt, server.crt, server.key)."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=gpupool-e2e-ca", "-days", "1", "-sha256",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", "ca.crt",
    )  # fmt: skip
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key")
    openssl("req", "-new", "-key", "server.key", "-subj", "/CN=127.0.0.1", "-out", "server.csr")
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "1", "-sha256", "-extfile", "server.ext", "-out", "server.crt",
    )  # fmt: skip
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


def patch_prometheus(state: dict[str, Any], spec: dict[str, Any]) -> None:
    """Merge `spec` into the pool's spec.prometheus (None removes a field)."""
    state["cluster"].kubectl(
        "patch",
        "inferencepool.gpupool.io",
        POOL,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"prometheus": spec}}),
    )


def put_secret(state: dict[str, Any], name: str, data: dict[str, str]) -> None:
    state["cluster"].apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": state["operator_namespace"]},
            "stringData": data,
        }
    )


def wait_reason(
    state: dict[str, Any], reason: str, containing: str = "", timeout: float = 60
) -> dict[str, Any]:
    """Wait until MetricsAvailable has this reason (and a message containing `containing`); fail
    with the condition and the operator's log."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = condition(model(state), "MetricsAvailable")
        if last.get("reason") == reason and containing in last.get("message", ""):
            return last
        time.sleep(0.5)
    raise AssertionError(f"MetricsAvailable never became {reason}: {last}\n{state['operator'].log_tail(30)}")


def hold(state: dict[str, Any], replicas: int, until: float) -> None:
    """The count stays at `replicas` until the monotonic time `until`."""
    while time.monotonic() < until:
        assert deployment_replicas(state) == replicas
        time.sleep(1)


def test_prometheus_spec_rules_are_enforced_by_the_api_server(loop: dict[str, Any]) -> None:
    for spec, message in (
        (
            {"url": "http://p", "basicAuth": {"secretName": "a"}, "bearerToken": {"secretName": "b"}},
            "at most one of basicAuth and bearerToken",
        ),
        (
            {"url": "http://p", "tls": {"insecureSkipVerify": True}},
            "prometheus.tls applies to an https:// url",
        ),
        (
            {"url": "https://p", "tls": {"caSecretName": "ca", "insecureSkipVerify": True}},
            "give caSecretName or insecureSkipVerify, not both",
        ),
    ):
        pool = {
            "apiVersion": "gpupool.io/v1alpha1",
            "kind": "InferencePool",
            "metadata": {"name": f"{POOL}-invalid"},
            "spec": h100_pool_spec(prometheus=spec),
        }
        result = loop["cluster"].kubectl(
            "apply", "--dry-run=server", "-f", "-", input=json.dumps(pool), check=False
        )
        assert result.returncode != 0 and message in result.stderr, result.stderr


def test_refused_credentials_hold_the_count_and_say_what_to_fix(loop: dict[str, Any]) -> None:
    pods: SimulatedPods = loop["pods"]
    prometheus: Prometheus = loop["prometheus"]
    work: Path = loop["work"]
    operator_namespace = loop["operator_namespace"]
    plain_url = prometheus.url
    # Two instances for one instance's worth (50% of their capacity): a count a drop would lower.
    pods.load_qps = 1.0 * pods.capacity
    wait_for("two instances", lambda: deployment_replicas(loop) == 2, timeout=120)
    ca, cert, key = certificates(work / "tls")
    try:
        # Prometheus now asks for a password the pool does not give.
        prometheus.start(loop["config"], web_config(work / "web.yml", "correct horse"))
        refused = wait_reason(loop, "PrometheusUnauthorized", "401")
        assert "401 Unauthorized" in refused["message"]
        fix = "set spec.prometheus.basicAuth or bearerToken to a Secret in the operator's namespace"
        fix += f" {operator_namespace}"
        assert fix in refused["message"]
        # Traffic falls while the operator cannot read it: nothing may scale down.
        pods.load_qps = 0.1 * pods.capacity
        until = time.monotonic() + STABILIZATION + 5 * INTERVAL
        patch_prometheus(loop, {"basicAuth": {"secretName": "prometheus-auth"}})
        missing = wait_reason(loop, "PrometheusSecretMissing")
        assert f"Secret {operator_namespace}/prometheus-auth" in missing["message"]
        assert "does not exist" in missing["message"] and "'password'" in missing["message"]
        put_secret(loop, "prometheus-auth", {"username": "autoscaler", "password": "wrong"})
        wrong = wait_reason(loop, "PrometheusUnauthorized", "check the credentials")
        assert f"check the credentials in Secret {operator_namespace}/prometheus-auth" in wrong["message"]
        hold(loop, 2, until)
        decision = model(loop)["status"]["autoscaling"]["lastDecision"]
        assert decision["metricsAvailable"] is False and decision["direction"] == "Hold"
        assert condition(model(loop), "MetricsAvailable")["status"] == "False"

        put_secret(loop, "prometheus-auth", {"username": "autoscaler", "password": "correct horse"})
        wait_condition(loop, "MetricsAvailable", "True")

        # https with a certificate from a CA the operator does not know yet, then from its Secret.
        prometheus.start(loop["config"], web_config(work / "web.yml", "correct horse", (cert, key)))
        assert prometheus.url.startswith("https://")
        patch_prometheus(loop, {"url": prometheus.url})
        untrusted = wait_reason(loop, "PrometheusUnreachable", "certificate")
        assert (
            "certificate" in untrusted["message"]
            and "spec.prometheus.tls.caSecretName" in untrusted["message"]
        )
        put_secret(loop, "prometheus-ca", {"ca.crt": ca.read_text()})
        patch_prometheus(loop, {"tls": {"caSecretName": "prometheus-ca"}})
        fresh = wait_condition(loop, "MetricsAvailable", "True")
        assert condition(fresh, "MetricsAvailable")["reason"] == "MetricsFresh"
        # The operator's own reader, with the same Secrets' content, against the real server.
        prometheus.auth = "Basic " + base64.b64encode(b"autoscaler:correct horse").decode()
        prometheus.cafile = str(ca)
        assert prometheus.query("up")["status"] == "success"
    finally:
        prometheus.auth = prometheus.cafile = None
        prometheus.start(loop["config"])
        patch_prometheus(loop, {"url": plain_url, "basicAuth": None, "tls": None})
    wait_condition(loop, "MetricsAvailable", "True")


# --------------------------------------------------------------------------------------------------
# The seasonal forecast's history


def test_the_seasonal_history_comes_from_prometheus(loop: dict[str, Any]) -> None:
    pods: SimulatedPods = loop["pods"]
    prometheus: Prometheus = loop["prometheus"]
    # The operator's reader against the real Prometheus: a minute-long season, at 15 s steps.
    plan = history_plan([(60, 10.0)])
    assert plan is not None
    now = time.time()
    history = read_history(Connection(prometheus.url), POOL, plan, now)
    times, values = history.by_model[(loop["namespace"], MODEL)]
    assert all(t % plan.step_seconds == 0 for t in times) and times == sorted(times)
    assert times[0] <= now - 60 and times[-1] >= now - 2 * plan.step_seconds
    # Each point is the QPS Prometheus itself computes for that time, within what was offered.
    for t, value in zip(times, values, strict=True):
        answer = prometheus.api(
            "/api/v1/query", query=history_query(POOL, plan.rate_window_seconds), time=f"{t}"
        )
        mine = [r for r in answer["data"]["result"] if r["metric"].get("namespace") == loop["namespace"]]
        assert float(mine[0]["value"][1]) == pytest.approx(value), (t, mine, value)
        assert 0 <= value <= 3.0 * pods.capacity * 1.1

    # Through the operator: without a forecast the reason has no seasonal term...
    reason = model(loop)["status"]["autoscaling"]["lastDecision"]["reason"]
    assert "same time last period" not in reason
    # ...with one, the history it reads from Prometheus gives it one.
    loop["cluster"].kubectl(
        "patch",
        "modeldeployment.gpupool.io",
        MODEL,
        "-n",
        loop["namespace"],
        "--type=merge",
        "-p",
        json.dumps(
            {
                "spec": {
                    "autoscaling": {
                        "predictive": True,
                        "seasonalPeriodSeconds": 60,
                        "predictiveHorizonSeconds": 10,
                    }
                }
            }
        ),
    )
    decision = wait_for(
        "a decision with the seasonal term",
        lambda: (
            (d := model(loop)["status"]["autoscaling"]["lastDecision"])
            and "same time last period" in d["reason"]
            and d
        ),
        timeout=90,
    )
    print("decision:", decision["reason"])
    assert decision["metricsAvailable"] is True
