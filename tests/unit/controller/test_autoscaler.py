"""The autoscaler's controller pieces: the Prometheus reader, the decision step, the owner of the count."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from loopback import serving

from gpupool.api.conditions import ConditionType, find_condition
from gpupool.api.v1alpha1 import EngineType, InferencePool, ModelDeployment
from gpupool.catalog.types import Vendor
from gpupool.controller import autoscaler
from gpupool.controller.prometheus import Connection, queries, read_pool, unavailable
from gpupool.scaling import Signal
from gpupool.services.modeldeployment import PoolContext, WorkloadObservation, decide

NOW = 1_700_000_000.0
POLICY = {"enabled": True, "evaluationIntervalSeconds": 5, "predictive": False}


class _Answers(BaseHTTPRequestHandler):
    """A stand-in Prometheus HTTP API: one range-query answer per signal, recorded queries."""

    answers: ClassVar[dict[str, list[dict[str, Any]]]] = {}
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        params = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        type(self).seen.append(params)
        result = next((r for key, r in type(self).answers.items() if key in params["query"]), [])
        body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture
def prometheus() -> Iterator[tuple[str, type[_Answers]]]:
    handler = type("Answers", (_Answers,), {"answers": {}, "seen": []})
    with serving(handler) as url:
        yield url, handler


def series(namespace: str, name: str, values: list[tuple[float, str]]) -> dict[str, Any]:
    return {"metric": {"namespace": namespace, "model_deployment": name}, "values": values}


def test_one_query_per_signal_for_the_whole_pool(prometheus: tuple[str, type[_Answers]]) -> None:
    url, handler = prometheus
    handler.answers["request_success_total{pool"] = [
        series("a", "chat", [(NOW - 10, "4"), (NOW - 5, "5"), (NOW, "6")]),
        series("b", "code", [(NOW, "NaN")]),
    ]
    got = read_pool(Connection(url), "h100", EngineType.VLLM, Vendor.NVIDIA, NOW, 15, 5)
    assert got.error is None
    # One query per signal, not per model, each grouped by model.
    assert len(handler.seen) == len(queries("h100", EngineType.VLLM, Vendor.NVIDIA)) == 7
    assert all("model_deployment" in q["query"] and 'pool="h100"' in q["query"] for q in handler.seen)
    chat = got.window("a", "chat")
    assert chat.timestamps == [NOW - 10, NOW - 5, NOW]
    assert chat.qps == [4.0, 5.0, 6.0]
    # A signal with no series for the model is expected but missing: NaN everywhere.
    assert chat.waiting_requests is not None and all(math.isnan(v) for v in chat.waiting_requests)
    code = got.window("b", "code")
    assert code.qps is not None and math.isnan(code.qps[-1])
    assert not got.has_series("c", "other")


def test_triton_leaves_out_what_it_does_not_export() -> None:
    exprs = queries("p", EngineType.TRITON, Vendor.ASCEND)
    assert Signal.KV_CACHE_USAGE not in exprs and Signal.TTFT_P99_SECONDS not in exprs
    assert "pod_name" in exprs[Signal.ACCELERATOR_UTILIZATION]
    # Failures carry a `reason` label that successes lack: `success + failure` would match nothing,
    # so both counters go through one selector.
    assert " + " not in exprs[Signal.QPS]
    assert 'nv_inference_request_success|nv_inference_request_failure", pool="p"' in exprs[Signal.QPS]
    window = unavailable(EngineType.TRITON, Vendor.ASCEND, "down").window("a", "m")
    assert window.kv_cache_usage is None and window.qps == []


def test_unreachable_prometheus_is_an_error_not_an_exception() -> None:
    got = read_pool(Connection("http://127.0.0.1:9"), "h100", EngineType.VLLM, Vendor.NVIDIA, NOW, 60, 15)
    assert got.error is not None and "cannot be queried" in got.error
    assert got.window("a", "chat").qps == []


def pool(**spec: Any) -> InferencePool:
    return InferencePool.model_validate(
        {
            "metadata": {"name": "h100"},
            "spec": {"vendor": "nvidia", "accelerator": "H100-80GB", **spec},
        }
    )


def planned(**spec: Any) -> ModelDeployment:
    """A ModelDeployment with the status a first reconcile gives it."""
    body: dict[str, Any] = {
        "model": {"name": "llama-3.1-8b"},
        "pool": "h100",
        "traffic": {"peakQps": 1},
        "scaling": {"minReplicas": 1, "maxReplicas": 6},
        "autoscaling": POLICY,
    }
    body.update(spec)
    md = ModelDeployment.model_validate(
        {"metadata": {"name": "chat", "namespace": "a", "generation": 1}, "spec": body}
    )
    outcome = decide(md, {"h100": PoolContext(pool())}, {}, "2026-01-01T00:00:00Z")
    return md.model_copy(update={"status": outcome.status})


def on_h100() -> dict[str, PoolContext | None]:
    return {"h100": PoolContext(pool())}


def test_prometheus_down_holds_and_says_why() -> None:
    md = planned()
    metrics = unavailable(EngineType.VLLM, Vendor.NVIDIA, "Prometheus at x cannot be queried")
    configured = pool(prometheus={"url": "http://127.0.0.1:9"})
    scaling = autoscaler.Autoscaling().autoscale(md, WorkloadObservation(1, 1, 1), metrics, configured, NOW)
    assert scaling is not None
    decision = scaling.autoscaling.last_decision
    assert decision is not None and decision.direction == "Hold" and not decision.metrics_available
    outcome = decide(md, on_h100(), {"h100": WorkloadObservation(1, 1, 1)}, "t", scaling=scaling)
    cond = find_condition(outcome.status.conditions, ConditionType.METRICS_AVAILABLE)
    assert cond is not None and (cond.status, cond.reason) == ("False", "PrometheusUnreachable")
    assert outcome.status.replicas == 1
    assert outcome.status.autoscaling == scaling.autoscaling


def test_a_decision_sets_the_count_the_next_reconcile_renders(prometheus: tuple[str, type[_Answers]]) -> None:
    url, handler = prometheus
    times = [NOW - 60 + 5 * i for i in range(13)]
    handler.answers["rate(vllm:request_success_total{pool"] = [
        series("a", "chat", [(t, "40") for t in times])
    ]
    handler.answers["num_requests_waiting"] = [series("a", "chat", [(t, "0") for t in times])]
    handler.answers["kv_cache_usage_perc"] = [series("a", "chat", [(t, "0.5") for t in times])]
    handler.answers["DCGM_FI_DEV_GPU_UTIL"] = [series("a", "chat", [(t, "0.9") for t in times])]
    metrics = read_pool(Connection(url), "h100", EngineType.VLLM, Vendor.NVIDIA, NOW, 65, 5)
    md = planned()
    scaling = autoscaler.Autoscaling().autoscale(
        md, WorkloadObservation(1, 1, 1), metrics, pool(prometheus={"url": url}), NOW
    )
    assert scaling is not None and scaling.replicas == 4
    decision = scaling.autoscaling.last_decision
    assert decision is not None and decision.direction == "Up" and decision.to_replicas == 4
    outcome = decide(md, on_h100(), {"h100": WorkloadObservation(1, 1, 1)}, "t", scaling=scaling)
    assert outcome.status.replicas == 4
    deployment = next(o for o in outcome.objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 4
    assert any(
        e.reason == "Scaled" and e.message.startswith("autoscaler: scale up 1 -> 4") for e in outcome.events
    )
    assert outcome.status.autoscaling == scaling.autoscaling
    # A pass between evaluations keeps the count the autoscaler decided last.
    later = decide(md.model_copy(update={"status": outcome.status}), on_h100(), {}, "u")
    assert later.status.replicas == 4 and later.status.autoscaling == scaling.autoscaling


def test_what_the_policy_learned_survives_a_restart_in_status(prometheus: tuple[str, type[_Answers]]) -> None:
    url, handler = prometheus

    def metrics_at(now: float) -> Any:
        times = [now - 60 + 5 * i for i in range(13)]
        handler.answers["rate(vllm:request_success_total{pool"] = [
            series("a", "chat", [(t, "40") for t in times])
        ]
        handler.answers["num_requests_waiting"] = [series("a", "chat", [(t, "0") for t in times])]
        handler.answers["num_requests_running"] = [series("a", "chat", [(t, "240") for t in times])]
        return read_pool(Connection(url), "h100", EngineType.VLLM, Vendor.NVIDIA, now, 65, 5)

    md = planned()
    first = autoscaler.Autoscaling().autoscale(
        md, WorkloadObservation(4, 4, 4), metrics_at(NOW), pool(prometheus={"url": url}), NOW
    )
    assert first is not None
    state = first.autoscaling.state
    assert state.demand_history is not None and state.demand_history.values == [40.0]
    assert state.batch_seconds == pytest.approx(6.0)  # 240 running / 40 QPS
    written = decide(md, on_h100(), {"h100": WorkloadObservation(4, 4, 4)}, "t", scaling=first).status
    # A restarted operator has no memory but the status it reads back from the API server.
    restarted = ModelDeployment.model_validate(md.model_copy(update={"status": written}).to_wire())
    later = NOW + 120
    second = autoscaler.Autoscaling().autoscale(
        restarted, WorkloadObservation(4, 4, 4), metrics_at(later), pool(prometheus={"url": url}), later
    )
    assert second is not None
    kept = second.autoscaling.state
    assert kept.demand_history is not None and kept.demand_history.values == [40.0, 40.0, 40.0]
    assert kept.batch_seconds == pytest.approx(6.0)


def test_explicit_replicas_win_and_clear_the_autoscaler_status() -> None:
    md = planned()
    down = unavailable(EngineType.VLLM, Vendor.NVIDIA, "down")
    scaling = autoscaler.Autoscaling().autoscale(md, None, down, pool(), NOW)
    assert scaling is not None
    with_decision = decide(md, on_h100(), {}, "t", scaling=scaling).status
    assert with_decision.autoscaling is not None
    assert find_condition(with_decision.conditions, ConditionType.METRICS_AVAILABLE) is not None
    owned = md.model_copy(
        update={"spec": md.spec.model_copy(update={"replicas": 2}), "status": with_decision}
    )
    outcome = decide(owned, on_h100(), {}, "t", scaling=scaling)
    assert outcome.status.replicas == 2
    assert outcome.status.autoscaling is None
    assert find_condition(outcome.status.conditions, ConditionType.METRICS_AVAILABLE) is None


def test_the_watch_tracks_only_models_the_autoscaler_owns() -> None:
    scaling = autoscaler.Autoscaling()
    body = {"spec": {"pool": "h100", "autoscaling": POLICY}}
    scaling.track("ADDED", "a", "chat", body)
    scaling.track("ADDED", "a", "fixed", {"spec": {"pool": "h100", "replicas": 2, "autoscaling": POLICY}})
    scaling.track("ADDED", "a", "off", {"spec": {"pool": "h100"}})
    assert scaling.due_pools(0.0) == {"h100": [("a", "chat")]}
    assert scaling.due_pools(4.0) == {}  # the 5 s interval has not passed
    assert scaling.due_pools(5.0) == {"h100": [("a", "chat")]}
    scaling.track("DELETED", "a", "chat", body)
    assert scaling.due_pools(100.0) == {}
