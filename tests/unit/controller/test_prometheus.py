"""The Prometheus reader's edges: credentials, the seasonal history query and its cache, in-flight
requests per pod and the deletion costs written from them.

A stand-in Prometheus HTTP API on loopback answers; the real one is exercised end to end in
tests/e2e/test_autoscaling.py.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from loopback import serving

from gpupool.api.conditions import Reason
from gpupool.api.v1alpha1 import EngineType, PrometheusSpec
from gpupool.catalog.types import Vendor
from gpupool.controller import autoscaler
from gpupool.controller.prometheus import (
    MAX_RANGE_INTERVALS,
    Connection,
    CredentialsError,
    HistoryPlan,
    PrometheusError,
    StepReading,
    connect,
    history_plan,
    in_flight_from_vector,
    in_flight_query,
    read_history,
    read_in_flight,
    read_pool,
    read_step,
)
from gpupool.scaling import AutoscalingPolicy
from gpupool.scaling.deletion import POD_DELETION_COST

NOW = 1_700_000_000.0
DAY = 86_400


class _Prometheus(BaseHTTPRequestHandler):
    """Answers by path; checks the Authorization header when `credentials` is set."""

    credentials: ClassVar[str | None] = None
    matrix: ClassVar[list[dict[str, Any]]] = []
    vector: ClassVar[list[dict[str, Any]]] = []
    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []
    headers_seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        cls = type(self)
        url = urlparse(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        cls.seen.append((url.path, params))
        cls.headers_seen.append(self.headers.get("Authorization"))
        if cls.credentials is not None and self.headers.get("Authorization") != cls.credentials:
            self.send_response(401)
            self.send_header("WWW-Authenticate", "Basic")
            self.end_headers()
            self.wfile.write(b"Unauthorized\n")
            return
        if url.path == "/api/v1/query":
            data = {"resultType": "vector", "result": cls.vector}
        else:
            data = {"resultType": "matrix", "result": cls.matrix}
        body = json.dumps({"status": "success", "data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture
def prometheus() -> Iterator[tuple[str, type[_Prometheus]]]:
    handler = type(
        "Prometheus",
        (_Prometheus,),
        {"credentials": None, "matrix": [], "vector": [], "seen": [], "headers_seen": []},
    )
    with serving(handler) as url:
        yield url, handler


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def secrets(store: dict[str, dict[str, str]]) -> autoscaler.SecretReader:
    return store.get


# --------------------------------------------------------------------------------------------------
# credentials


def test_basic_auth_comes_from_a_secret_of_the_operator_namespace(
    prometheus: tuple[str, type[_Prometheus]],
) -> None:
    url, handler = prometheus
    handler.credentials = basic("autoscaler", "s3cret")
    spec = PrometheusSpec.model_validate({"url": url, "basicAuth": {"secretName": "prom"}})
    store = {"prom": {"username": "autoscaler", "password": "s3cret"}}
    conn = connect(spec, "gpupool-system", secrets(store))
    got = read_pool(conn, "h100", EngineType.VLLM, Vendor.NVIDIA, NOW, 15, 5)
    assert got.error is None
    assert set(handler.headers_seen) == {basic("autoscaler", "s3cret")}
    # The credentials never show in the connection's repr (logs).
    assert "s3cret" not in repr(conn) and "YXV0b3NjYWxlcjpzM2NyZXQ" not in repr(conn)


def test_a_bearer_token_is_sent_as_is(prometheus: tuple[str, type[_Prometheus]]) -> None:
    url, handler = prometheus
    handler.credentials = "Bearer tok-123"
    spec = PrometheusSpec.model_validate(
        {"url": url, "bearerToken": {"secretName": "prom-token", "key": "token"}}
    )
    conn = connect(spec, "ops", secrets({"prom-token": {"token": "tok-123\n"}}))
    assert read_pool(conn, "h100", EngineType.VLLM, Vendor.NVIDIA, NOW, 15, 5).error is None


def test_a_missing_secret_or_key_says_what_to_create() -> None:
    spec = PrometheusSpec.model_validate({"url": "http://p:9090", "basicAuth": {"secretName": "prom"}})
    with pytest.raises(CredentialsError) as missing:
        connect(spec, "gpupool-system", secrets({}))
    assert missing.value.reason is Reason.PROMETHEUS_SECRET_MISSING
    message = str(missing.value)
    assert "Secret gpupool-system/prom" in message and "does not exist" in message
    assert "'username'" in message and "'password'" in message
    with pytest.raises(CredentialsError) as no_key:
        connect(spec, "gpupool-system", secrets({"prom": {"username": "a"}}))
    assert "has no key 'password'" in str(no_key.value)


def test_a_ca_bundle_that_is_not_pem_is_the_secrets_fault() -> None:
    spec = PrometheusSpec.model_validate({"url": "https://p:9090", "tls": {"caSecretName": "prom-ca"}})
    with pytest.raises(CredentialsError) as bad:
        connect(spec, "ops", secrets({"prom-ca": {"ca.crt": "not a certificate"}}))
    assert "Secret ops/prom-ca" in str(bad.value)


def test_401_is_unauthorized_and_names_the_fix(prometheus: tuple[str, type[_Prometheus]]) -> None:
    url, handler = prometheus
    handler.credentials = basic("autoscaler", "right")
    without = read_pool(Connection(url, namespace="ops"), "h100", EngineType.VLLM, Vendor.NVIDIA, NOW, 15, 5)
    assert without.error_reason is Reason.PROMETHEUS_UNAUTHORIZED
    assert without.error is not None and "401 Unauthorized" in without.error
    assert (
        "set spec.prometheus.basicAuth or bearerToken" in without.error and "namespace ops" in without.error
    )
    spec = PrometheusSpec.model_validate({"url": url, "basicAuth": {"secretName": "prom"}})
    wrong = connect(spec, "ops", secrets({"prom": {"username": "autoscaler", "password": "wrong"}}))
    got = read_pool(wrong, "h100", EngineType.VLLM, Vendor.NVIDIA, NOW, 15, 5)
    assert got.error is not None and "check the credentials in Secret ops/prom" in got.error
    # One refused query is enough to know: the other signals are not tried.
    assert len(handler.seen) == 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"url": "http://p", "basicAuth": {"secretName": "a"}, "bearerToken": {"secretName": "b"}},
            "at most one of basicAuth and bearerToken",
        ),
        ({"url": "http://p", "tls": {"insecureSkipVerify": True}}, "https:// url"),
        (
            {"url": "https://p", "tls": {"caSecretName": "ca", "insecureSkipVerify": True}},
            "caSecretName or insecureSkipVerify",
        ),
    ],
)
def test_inconsistent_prometheus_specs_are_rejected(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PrometheusSpec.model_validate(spec)


# --------------------------------------------------------------------------------------------------
# the seasonal history


def test_a_day_is_read_at_five_minute_steps() -> None:
    plan = history_plan([(DAY, 413.0)])
    assert plan == HistoryPlan(span_seconds=DAY + 300, step_seconds=300, refresh_seconds=300)
    assert plan.rate_window_seconds == 300
    assert plan.span_seconds // plan.step_seconds == 289  # 290 points, a day and one step


def test_short_periods_are_read_finer_and_refreshed_before_they_run_out() -> None:
    # A one-minute pattern with a 10 s horizon: 15 s steps; the answer covers `now + 10 - 60`
    # for 50 s after it was read, so it is re-read after 25 s.
    plan = history_plan([(60, 10.0)])
    assert plan is not None and (plan.step_seconds, plan.refresh_seconds) == (15, 25)
    assert plan.rate_window_seconds == 60


def test_prometheus_point_limit_forces_a_coarser_step() -> None:
    # A week for one model, a one-minute pattern for another: the finest step (15 s) over a week
    # would be 40,321 points, over Prometheus' 11,000 intervals per series.
    plan = history_plan([(7 * DAY, 900.0), (60, 10.0)])
    assert plan is not None
    assert plan.span_seconds // plan.step_seconds <= MAX_RANGE_INTERVALS
    assert plan.step_seconds == math.ceil(7 * DAY / (MAX_RANGE_INTERVALS - 1)) == 55
    for period in (60, 3_600, DAY, 7 * DAY):
        for other in (60, 900, DAY):
            p = history_plan([(period, 30.0), (other, 30.0)])
            assert p is not None and p.span_seconds / p.step_seconds <= MAX_RANGE_INTERVALS


def test_a_horizon_of_a_whole_period_needs_no_history() -> None:
    assert history_plan([(600, 700.0)]) is None
    assert history_plan([]) is None


def test_the_history_query_reads_every_engine_of_the_pool_at_once(
    prometheus: tuple[str, type[_Prometheus]],
) -> None:
    url, handler = prometheus
    handler.matrix = [
        {
            "metric": {"namespace": "a", "model_deployment": "chat"},
            "values": [(NOW - 600, "10"), (NOW - 300, "NaN"), (NOW, "12")],
        },
        {"metric": {"namespace": "a", "model_deployment": "idle"}, "values": [(NOW, "NaN")]},
    ]
    plan = HistoryPlan(span_seconds=DAY + 300, step_seconds=300, refresh_seconds=300)
    history = read_history(Connection(url), "h100", plan, NOW + 17)
    ((path, params),) = handler.seen
    assert path == "/api/v1/query_range"
    assert params["step"] == "300" and float(params["end"]) - float(params["start"]) == DAY + 300
    assert float(params["end"]) % 300 == 0 and float(params["end"]) <= NOW + 17
    query = params["query"]
    assert "vllm:request_success_total" in query and "nv_inference_request_failure" in query
    assert 'pool="h100"' in query and "[300s]" in query and "model_deployment" in query
    # Gaps are left out rather than carried as NaN, which the forecast cannot interpolate.
    assert history.by_model == {("a", "chat"): ([NOW - 600, NOW], [10.0, 12.0])}


def tracked(period: int = 60, horizon: int = 10, predictive: bool = True) -> autoscaler.Tracked:
    policy = AutoscalingPolicy(
        enabled=True,
        predictive=predictive,
        seasonal_period_seconds=period,
        predictive_horizon_seconds=horizon,
    )
    return autoscaler.Tracked(pool="h100", engine=EngineType.VLLM, policy=policy, load_time_seconds=100)


def test_the_history_is_cached_between_evaluations(prometheus: tuple[str, type[_Prometheus]]) -> None:
    url, handler = prometheus
    scaling = autoscaler.Autoscaling()
    handler.matrix = [{"metric": {"namespace": "a", "model_deployment": "chat"}, "values": [(NOW, "5")]}]
    conn = Connection(url)
    models = [tracked()]
    # Evaluations every 2 s for a minute: read at 0 s, then at the first evaluation 25 s (the
    # refresh) after each read: 26 s and 52 s.
    for second in range(0, 60, 2):
        history = scaling.seasonal_history(conn, "h100", models, NOW + second)
        assert history is not None and history.by_model
    ends = [float(p["end"]) for _, p in handler.seen]
    assert ends == [(NOW + s) // 15 * 15 for s in (0, 26, 52)]


def test_a_failed_history_read_keeps_the_last_answer_until_the_next_refresh(
    prometheus: tuple[str, type[_Prometheus]],
) -> None:
    url, handler = prometheus
    scaling = autoscaler.Autoscaling()
    handler.matrix = [{"metric": {"namespace": "a", "model_deployment": "chat"}, "values": [(NOW, "5")]}]
    first = scaling.seasonal_history(Connection(url), "h100", [tracked()], NOW)
    handler.credentials = "Bearer rotated"  # every read fails from now on
    assert scaling.seasonal_history(Connection(url), "h100", [tracked()], NOW + 30) == first
    assert scaling.seasonal_history(Connection(url), "h100", [tracked()], NOW + 40) == first
    assert len(handler.seen) == 2  # the failure is not retried at every evaluation


def test_no_predictive_model_no_history_query(prometheus: tuple[str, type[_Prometheus]]) -> None:
    url, handler = prometheus
    scaling = autoscaler.Autoscaling()
    assert scaling.seasonal_history(Connection(url), "h100", [tracked(predictive=False)], NOW) is None
    assert handler.seen == []


def test_the_history_reaches_the_models_window(prometheus: tuple[str, type[_Prometheus]]) -> None:
    url, handler = prometheus
    handler.matrix = [{"metric": {"namespace": "a", "model_deployment": "chat"}, "values": [(NOW, "5")]}]
    metrics = read_pool(Connection(url), "h100", EngineType.VLLM, Vendor.NVIDIA, NOW, 15, 5)
    metrics.history = {("a", "chat"): ([NOW - DAY, NOW - DAY + 300], [4.0, 9.0])}
    window = metrics.window("a", "chat")
    assert window.qps_history_timestamps == [NOW - DAY, NOW - DAY + 300] and window.qps_history == [4.0, 9.0]
    assert metrics.window("a", "other").qps_history == []


# --------------------------------------------------------------------------------------------------
# in-flight requests and deletion costs


def test_in_flight_requests_come_from_one_query_per_pool(prometheus: tuple[str, type[_Prometheus]]) -> None:
    url, handler = prometheus
    handler.vector = [
        {"metric": {"namespace": "a", "pod": "chat-1"}, "value": [NOW, "12"]},
        {"metric": {"namespace": "a", "pod": "chat-2"}, "value": [NOW, "3"]},
        {"metric": {"namespace": "b", "pod": "chat-1"}, "value": [NOW, "NaN"]},
        {"metric": {"namespace": "a"}, "value": [NOW, "1"]},
    ]
    assert read_in_flight(Connection(url), "h100", NOW) == {("a", "chat-1"): 12.0, ("a", "chat-2"): 3.0}
    ((path, params),) = handler.seen
    assert path == "/api/v1/query" and params["query"] == in_flight_query("h100")
    for series in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "nv_inference_pending_request_count",
    ):
        assert series in params["query"]
    assert "sum by (namespace, pod)" in params["query"]
    assert in_flight_from_vector(None) == {}


class RecordingKube:
    """Pods as the API server would list them; records the annotation patches."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods
        self.listed: list[tuple[str | None, str | None]] = []
        self.patches: list[tuple[str | None, str, dict[str, str | None]]] = []

    def list(self, resource: Any, namespace: str | None = None, *, label_selector: str | None = None) -> Any:
        self.listed.append((namespace, label_selector))
        return iter(self.pods)

    def annotate(
        self, resource: Any, namespace: str | None, name: str, annotations: dict[str, str | None]
    ) -> None:
        self.patches.append((namespace, name, annotations))
        for pod in self.pods:
            if pod["metadata"]["name"] == name:
                pod["metadata"].setdefault("annotations", {}).update(annotations)


def pod(name: str, cost: str | None = None, **meta: Any) -> dict[str, Any]:
    annotations = {POD_DELETION_COST: cost} if cost is not None else {}
    return {"metadata": {"name": name, "annotations": annotations, **meta}, "status": {"phase": "Running"}}


def test_scale_down_marks_the_least_busy_pods_once(prometheus: tuple[str, type[_Prometheus]]) -> None:
    url, handler = prometheus
    handler.vector = [
        {"metric": {"namespace": "a", "pod": "chat-1"}, "value": [NOW, "28"]},
        {"metric": {"namespace": "a", "pod": "chat-2"}, "value": [NOW, "9"]},
        {"metric": {"namespace": "b", "pod": "chat-3"}, "value": [NOW, "50"]},  # another namespace
    ]
    kube = RecordingKube(
        [
            pod("chat-1"),
            pod("chat-2", "4"),
            pod("chat-3"),
            pod("chat-4", "2", deletionTimestamp="2026-01-01T00:00:00Z"),
        ]
    )
    loads = autoscaler.PodLoads(Connection(url), "h100", NOW)
    writes = autoscaler.mark_least_busy(kube, "a", "chat", loads)  # type: ignore[arg-type]
    assert kube.listed == [("a", "gpupool.io/model-deployment=chat")]
    # chat-3 has no sample in namespace a: 0, as it is already; chat-4 is terminating: left alone.
    assert kube.patches == [
        ("a", "chat-1", {POD_DELETION_COST: "28"}),
        ("a", "chat-2", {POD_DELETION_COST: "9"}),
    ]
    assert writes == 2
    # A second scale-down in the same evaluation reuses the sample and writes nothing new.
    assert autoscaler.mark_least_busy(kube, "a", "chat", loads) == 0  # type: ignore[arg-type]
    assert len(handler.seen) == 1


def test_no_in_flight_sample_no_writes_and_no_retry(prometheus: tuple[str, type[_Prometheus]]) -> None:
    url, handler = prometheus
    handler.credentials = "Bearer required"
    kube = RecordingKube([pod("chat-1", "5")])
    loads = autoscaler.PodLoads(Connection(url), "h100", NOW)
    assert autoscaler.mark_least_busy(kube, "a", "chat", loads) == 0  # type: ignore[arg-type]
    assert autoscaler.mark_least_busy(kube, "a", "code", loads) == 0  # type: ignore[arg-type]
    assert kube.patches == [] and len(handler.seen) == 1
    with pytest.raises(PrometheusError):
        autoscaler.PodLoads(None, "h100", NOW).get()


def test_a_canary_step_reads_both_versions_in_one_query_per_figure(
    prometheus: tuple[str, type[_Prometheus]],
) -> None:
    url, handler = prometheus
    handler.vector = [
        {"metric": {"revision": "new"}, "value": [NOW, "120"]},
        {"metric": {"revision": "old"}, "value": [NOW, "NaN"]},
    ]
    conn = connect(PrometheusSpec.model_validate({"url": url}), "ops", secrets({}))
    readings = read_step(conn, "team-a", "chat", ("new", "old"), NOW - 90, NOW)
    queries = [params["query"] for _, params in handler.seen]
    assert len(queries) == 3 and all('revision=~"new|old"' in q and "[90s]" in q for q in queries)
    # The fake answers every figure alike: 120 for the canary, nothing finite for the stable one.
    assert readings["new"] == StepReading(120.0, 120.0, 120.0)
    assert readings["old"] == StepReading(None, None, None)
