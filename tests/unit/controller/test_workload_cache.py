"""The watch's copies of managed Deployments, and the marks handler threads leave for the loops."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import kopf
import pytest

from gpupool.controller import handlers, reconciler
from gpupool.controller.handlers import Marks


def deployment(revision: str, replicas: int = 1, name: str = "chat") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "resourceVersion": revision,
            "managedFields": [{"manager": "gpupool", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"replicas": replicas},
    }


class NoReads:
    """Fails the test if the reconciler falls back to the API server."""

    def get(self, *args: Any) -> Any:
        raise AssertionError(f"read the API server: {args}")


class Reads:
    def __init__(self, answer: dict[str, Any] | None) -> None:
        self.answer = answer
        self.calls: list[tuple[Any, ...]] = []

    def get(self, *args: Any) -> Any:
        self.calls.append(args)
        return self.answer


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    reconciler._workloads.clear()
    yield
    reconciler._workloads.clear()


def held(name: str = "chat") -> Any:
    return reconciler._workload(NoReads(), "team-a", name)  # type: ignore[arg-type]


def test_a_remembered_deployment_is_read_back_without_managed_fields() -> None:
    reconciler.remember_workload(deployment("10", replicas=2))
    copy = held()
    assert copy["spec"] == {"replicas": 2}
    assert "managedFields" not in copy["metadata"]
    assert copy["metadata"]["resourceVersion"] == "10"


def test_an_older_event_does_not_replace_a_newer_copy() -> None:
    reconciler.remember_workload(deployment("12", replicas=3))
    reconciler.remember_workload(deployment("11", replicas=1))
    assert held()["spec"]["replicas"] == 3
    reconciler.remember_workload(deployment("13", replicas=4))
    assert held()["spec"]["replicas"] == 4


def test_a_deletion_forgets_the_copy_unless_a_newer_one_replaced_it() -> None:
    reconciler.remember_workload(deployment("20"))
    reconciler.forget_workload(deployment("21"))
    fallback = Reads(None)
    assert reconciler._workload(fallback, "team-a", "chat") is None  # type: ignore[arg-type]
    assert len(fallback.calls) == 1  # nothing held: the API server answers
    # Re-created (revision 30) before the old object's deletion (revision 25) was seen.
    reconciler.remember_workload(deployment("30", replicas=2))
    reconciler.forget_workload(deployment("25"))
    assert held()["spec"]["replicas"] == 2


def test_revisions_that_are_not_numbers_let_the_latest_win() -> None:
    reconciler.remember_workload(deployment("b", replicas=2))
    reconciler.remember_workload(deployment("a", replicas=5))
    assert held()["spec"]["replicas"] == 5
    reconciler.forget_workload(deployment("z"))
    assert reconciler._workload(Reads(None), "team-a", "chat") is None  # type: ignore[arg-type]


def test_only_a_change_the_model_reads_asks_for_a_refresh() -> None:
    first = deployment("40")
    assert reconciler.remember_workload(first)  # new
    annotated = deployment("41")
    annotated["metadata"]["annotations"] = {"note": "by hand"}
    assert not reconciler.remember_workload(annotated)  # nothing the status reads
    ready = deployment("42")
    ready["status"] = {"replicas": 1, "readyReplicas": 1}
    assert reconciler.remember_workload(ready)
    scaled = deployment("43", replicas=3)
    scaled["metadata"]["generation"] = 2
    scaled["status"] = ready["status"]
    assert reconciler.remember_workload(scaled)  # someone changed the spec
    assert not reconciler.remember_workload(deployment("39"))  # older than the copy held
    assert held()["spec"]["replicas"] == 3


def test_copies_are_independent_of_the_caller() -> None:
    reconciler.remember_workload(deployment("5"))
    held()["spec"]["replicas"] = 99
    assert held()["spec"]["replicas"] == 1


def test_marks_from_many_threads_are_all_taken_once() -> None:
    marks = Marks()
    taken: list[set[Any]] = []
    done = threading.Event()

    def taker() -> None:
        while not done.is_set():
            taken.append(marks.take())
        taken.append(marks.take())

    def marker(base: int) -> None:
        for i in range(2000):
            marks.add((base, i))
        marks.update((base, i) for i in range(2000, 2100))

    thread = threading.Thread(target=taker)
    thread.start()
    markers = [threading.Thread(target=marker, args=(b,)) for b in range(4)]
    for m in markers:
        m.start()
    for m in markers:
        m.join()
    done.set()
    thread.join()
    seen = [key for batch in taken for key in batch]
    assert len(seen) == len(set(seen)) == 4 * 2100


def test_the_operator_watches_only_its_own_deployments_and_pods() -> None:
    from kopf._cogs.structs.references import Resource

    settings = kopf.OperatorSettings()
    handlers.tune(settings)
    managed = "app.kubernetes.io/managed-by=gpupool"
    watched = {
        "deployments": Resource("apps", "v1", "deployments", kind="Deployment"),
        "pods": Resource("", "v1", "pods", kind="Pod"),
        "nodes": Resource("", "v1", "nodes", kind="Node"),
        "modeldeployments": Resource("gpupool.io", "v1alpha1", "modeldeployments", kind="ModelDeployment"),
    }
    selectors = {name: settings.watching.label_selectors.collect(r) for name, r in watched.items()}
    assert selectors == {"deployments": [managed], "pods": [managed], "nodes": [], "modeldeployments": []}
    # A bounded number of objects in flight, each let go soon after its last event.
    assert settings.queueing.worker_limit == handlers.QUEUED_OBJECTS > handlers.WORKERS
    assert settings.queueing.idle_timeout <= 1
