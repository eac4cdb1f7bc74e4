"""The Controller's watch side (what each event puts in the cache and the queue) and its failure
reports. No API server: the watch side never calls one, which `NoKube` checks."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from gpupool.controller.apiclient import ApiError
from gpupool.controller.config import OperatorConfig
from gpupool.controller.operator import (
    DERIVED,
    FULL,
    RESYNC_KEY,
    RESYNCED,
    WORKLOADS,
    Controller,
    Key,
    Work,
    model_key,
    pool_key,
    short_error,
)


class NoKube:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the watch side called the API server ({name})")


@pytest.fixture
def controller() -> Controller:
    config = OperatorConfig(pool_accounting_seconds=0, status_refresh_seconds=0, namespace="ops")
    return Controller(config, NoKube())  # type: ignore[arg-type]


def drain(controller: Controller) -> list[tuple[Key, Work]]:
    taken = []
    while (item := controller.queue.get(timeout=0)) is not None:
        taken.append(item)
        controller.queue.done(item[0])
    return taken


def model(generation: int = 1, observed: int | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "chat", "namespace": "a", "generation": generation},
        "spec": {"pool": "h100"},
        "status": {"observedGeneration": observed} if observed is not None else {},
    }


def deployment(revision: str, ready: int = 0, generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "chat",
            "namespace": "a",
            "resourceVersion": revision,
            "generation": generation,
            "labels": {"gpupool.io/pool": "h100", "gpupool.io/model-deployment": "chat"},
            "ownerReferences": [
                {"apiVersion": "gpupool.io/v1alpha1", "kind": "ModelDeployment", "name": "chat"}
            ],
        },
        "status": {"readyReplicas": ready},
    }


def test_a_spec_change_queues_a_full_pass_and_our_own_status_write_queues_nothing(
    controller: Controller,
) -> None:
    controller.model_changed("MODIFIED", "a", "chat", model(generation=2, observed=1))
    controller.model_changed("MODIFIED", "a", "chat", model(generation=2, observed=2))  # our write
    assert drain(controller) == [(model_key("a", "chat"), FULL)]


def test_a_readiness_change_queues_the_workloads_only_and_merges_into_a_full_pass(
    controller: Controller,
) -> None:
    controller.workload_changed("ADDED", deployment("1"))  # applied by the pass that wrote status
    assert drain(controller) == [(pool_key("h100"), FULL)]
    controller.workload_changed("MODIFIED", deployment("2", ready=1))
    # The recount goes first: a status refresh has the lowest priority.
    assert drain(controller) == [(pool_key("h100"), FULL), (model_key("a", "chat"), WORKLOADS)]
    controller.workload_changed("MODIFIED", deployment("3", ready=2))
    controller.model_changed("MODIFIED", "a", "chat", model(generation=3, observed=2))
    (work,) = [w for k, w in drain(controller) if k.kind == "ModelDeployment"]
    assert work == FULL and not work.workloads_only
    annotated = deployment("4", ready=2)
    annotated["metadata"]["annotations"] = {"note": "by hand"}
    controller.workload_changed("MODIFIED", annotated)  # nothing the status reads
    assert drain(controller) == [(pool_key("h100"), FULL)]


def test_a_user_change_goes_before_status_refreshes(controller: Controller) -> None:
    controller.workload_changed("ADDED", deployment("1"))
    controller.workload_changed("MODIFIED", deployment("2", ready=1))
    controller.model_changed("MODIFIED", "b", "other", model(generation=2, observed=1))
    order = [k for k, _ in drain(controller) if k.kind == "ModelDeployment"]
    assert order == [model_key("b", "other"), model_key("a", "chat")]


def test_pools_replan_their_models_only_when_their_spec_moved(controller: Controller) -> None:
    pool = {"metadata": {"name": "h100", "generation": 2}, "spec": {}, "status": {"observedGeneration": 2}}
    controller.pool_changed(None, "h100", pool)  # start-up listing
    assert drain(controller) == [(pool_key("h100"), Work(replan=True))]
    controller.pool_changed("MODIFIED", "h100", pool)  # our status write coming back
    assert drain(controller) == [(pool_key("h100"), Work(replan=False))]
    assert controller.world.cache.known_pools() == ["h100"]
    controller.pool_changed("DELETED", "h100", pool)
    assert controller.world.cache.known_pools() == [] and drain(controller) == []


def test_node_heartbeats_are_dropped_and_real_changes_recount_every_pool(controller: Controller) -> None:
    for name in ("h100", "ascend"):
        controller.pool_changed("MODIFIED", name, {"metadata": {"name": name}, "spec": {}})
    drain(controller)
    node: dict[str, Any] = {
        "metadata": {"name": "n1", "labels": {"gpu": "h100"}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"gpu": "8"}},
    }
    controller.node_changed(None, "n1", node)
    controller.node_changed("MODIFIED", "n1", node)  # a heartbeat
    assert drain(controller) == []
    node["spec"] = {"unschedulable": True}
    controller.node_changed("MODIFIED", "n1", node)
    assert sorted(k for k, _ in drain(controller)) == [pool_key("ascend"), pool_key("h100")]


def test_a_preempted_pod_tells_its_model_once(controller: Controller) -> None:
    pod = {
        "metadata": {
            "name": "chat-1",
            "labels": {"gpupool.io/pool": "h100", "gpupool.io/model-deployment": "chat"},
        },
        "spec": {"nodeName": "n1"},
        "status": {
            "phase": "Running",
            "conditions": [
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "PreemptionByScheduler",
                    "message": "m",
                }
            ],
        },
    }
    controller.pod_changed("MODIFIED", "a", "chat-1", pod)
    assert drain(controller) == [(pool_key("h100"), FULL), (model_key("a", "chat"), FULL)]
    controller.pod_changed("MODIFIED", "a", "chat-1", pod)
    assert drain(controller) == []
    assert "chat-1" in controller.world.memory.preemptions[("a", "chat")]


def test_the_start_queues_a_resync_first(controller: Controller) -> None:
    controller.queue.add(RESYNC_KEY, FULL)
    assert drain(controller) == [(RESYNC_KEY, FULL)]
    assert controller.autoscaling.namespace == "ops"


def test_an_unreachable_api_server_is_one_short_line_without_a_stack_trace(
    controller: Controller, caplog: pytest.LogCaptureFixture
) -> None:
    refused = MaxRetryError(
        None,  # type: ignore[arg-type]
        "/apis/gpupool.io/v1alpha1/namespaces/a/modeldeployments/chat",
        NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused"),  # type: ignore[arg-type]
    )
    assert short_error(refused) == ("API server unreachable: [Errno 111] Connection refused", True, False)
    # Without urllib3's retries the connection error itself is raised.
    assert short_error(refused.reason)[0] == "API server unreachable: [Errno 111] Connection refused"  # type: ignore[arg-type]
    reset = ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    assert short_error(reset) == ("API server unreachable: [Errno 104] Connection reset by peer", True, False)
    assert short_error(ApiError(status=503, reason="Service Unavailable"))[1:] == (True, False)
    assert short_error(ApiError(status=422, reason="Unprocessable Entity")) == (
        "API server answered 422 Unprocessable Entity",
        False,
        False,
    )
    assert short_error(KeyError("spec")) == ("KeyError: 'spec'", False, True)
    with caplog.at_level(logging.INFO, logger="gpupool.controller.operator"):
        controller.failed(model_key("a", "chat"), FULL, refused, 0.4)
        controller.failed(pool_key("h100"), FULL, KeyError("spec"), 0.05)
    unreachable, bug = caplog.records
    assert unreachable.levelno == logging.WARNING and unreachable.exc_info is None
    assert unreachable.getMessage() == (
        "ModelDeployment a/chat failed (API server unreachable: [Errno 111] Connection refused); "
        "retry 0 in 0.40s"
    )
    assert bug.levelno == logging.ERROR and bug.exc_info is not None  # a bug keeps its stack trace


def test_the_resync_waits_behind_what_events_asked_for_and_merges_into_it() -> None:
    assert FULL.priority > DERIVED.priority > WORKLOADS.priority > RESYNCED.priority
    assert RESYNCED.merge(WORKLOADS) == DERIVED  # a full pass, ahead of status refreshes
    assert WORKLOADS.merge(RESYNCED).priority == DERIVED.priority
    assert RESYNCED.merge(RESYNCED) == RESYNCED
    assert WORKLOADS.merge(WORKLOADS) == WORKLOADS


def test_a_users_change_goes_ahead_of_what_other_passes_moved() -> None:
    assert FULL.merge(DERIVED) == FULL and DERIVED.merge(FULL) == FULL
    assert DERIVED.merge(DERIVED) == DERIVED
    assert DERIVED.merge(RESYNCED) == DERIVED and DERIVED.merge(WORKLOADS) == DERIVED
    assert FULL.from_user and not DERIVED.from_user
