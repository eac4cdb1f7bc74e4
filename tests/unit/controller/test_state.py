"""The cluster cache: the watch's copies of managed Deployments, the listings' copies of the other
children, and the kopf settings of the watches that feed it."""

from __future__ import annotations

import itertools
from typing import Any

import kopf
import pytest

from gpupool.controller import handlers
from gpupool.controller.config import OperatorConfig
from gpupool.controller.reconciler import World, _child, unchanged_since_settled
from gpupool.controller.state import ClusterCache, ModelMemory, Settled


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


@pytest.fixture
def cache() -> ClusterCache:
    return ClusterCache()


def held(cache: ClusterCache, name: str = "chat") -> Any:
    return _child(World(NoReads(), cache), "Deployment", "team-a", name)  # type: ignore[arg-type]


def read(cache: ClusterCache, kube: Reads, name: str = "chat") -> Any:
    return _child(World(kube, cache), "Deployment", "team-a", name)  # type: ignore[arg-type]


def test_a_remembered_deployment_is_read_back_without_managed_fields(cache: ClusterCache) -> None:
    cache.remember(deployment("10", replicas=2))
    copy = held(cache)
    assert copy["spec"] == {"replicas": 2}
    assert "managedFields" not in copy["metadata"]
    assert copy["metadata"]["resourceVersion"] == "10"


def test_an_older_event_does_not_replace_a_newer_copy(cache: ClusterCache) -> None:
    cache.remember(deployment("12", replicas=3))
    cache.remember(deployment("11", replicas=1))
    assert held(cache)["spec"]["replicas"] == 3
    cache.remember(deployment("13", replicas=4))
    assert held(cache)["spec"]["replicas"] == 4


def test_a_deletion_forgets_the_copy_unless_a_newer_one_replaced_it(cache: ClusterCache) -> None:
    cache.remember(deployment("20"))
    cache.forget(deployment("21"))
    fallback = Reads(None)
    assert read(cache, fallback) is None  # type: ignore[arg-type]
    assert len(fallback.calls) == 1  # nothing held: the API server answers
    # Re-created (revision 30) before the old object's deletion (revision 25) was seen.
    cache.remember(deployment("30", replicas=2))
    cache.forget(deployment("25"))
    assert held(cache)["spec"]["replicas"] == 2


def test_revisions_that_are_not_numbers_let_the_latest_win(cache: ClusterCache) -> None:
    cache.remember(deployment("b", replicas=2))
    cache.remember(deployment("a", replicas=5))
    assert held(cache)["spec"]["replicas"] == 5
    cache.forget(deployment("z"))
    assert read(cache, Reads(None)) is None  # type: ignore[arg-type]


def test_only_a_change_the_model_reads_asks_for_a_refresh(cache: ClusterCache) -> None:
    first = deployment("40")
    assert cache.remember(first)  # new
    annotated = deployment("41")
    annotated["metadata"]["annotations"] = {"note": "by hand"}
    assert not cache.remember(annotated)  # nothing the status reads
    ready = deployment("42")
    ready["status"] = {"replicas": 1, "readyReplicas": 1}
    assert cache.remember(ready)
    scaled = deployment("43", replicas=3)
    scaled["metadata"]["generation"] = 2
    scaled["status"] = ready["status"]
    assert cache.remember(scaled)  # someone changed the spec
    assert not cache.remember(deployment("39"))  # older than the copy held
    assert held(cache)["spec"]["replicas"] == 3


def test_copies_are_independent_of_the_caller(cache: ClusterCache) -> None:
    cache.remember(deployment("5"))
    held(cache)["spec"]["replicas"] = 99
    assert held(cache)["spec"]["replicas"] == 1


def test_a_listing_drops_what_it_lacks_unless_newer_and_never_undoes_a_newer_copy(
    cache: ClusterCache,
) -> None:
    def service(name: str, revision: str, port: int = 8000) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "team-a", "resourceVersion": revision},
            "spec": {"ports": [{"port": port}]},
        }

    cache.remember(service("gone", "5"))  # deleted by someone before the listing
    cache.remember(service("applied", "60", port=9000))  # our apply, after the listing
    cache.remember(service("changed", "70", port=7000))  # newer than the listed copy
    listed = [service("kept", "40"), service("changed", "30")]
    cache.refresh("Service", listed, 50)
    assert cache.child("Service", "team-a", "gone") is None
    assert cache.child("Service", "team-a", "kept") is not None
    assert cache.child("Service", "team-a", "applied")["spec"]["ports"] == [{"port": 9000}]
    assert cache.child("Service", "team-a", "changed")["spec"]["ports"] == [{"port": 7000}]
    cache.remember(deployment("80"))
    cache.refresh("Service", [], 90)
    assert held(cache) is not None  # a listing of one kind leaves the others alone


def test_deployments_are_found_by_their_model_identity(cache: ClusterCache) -> None:
    def labelled(name: str, revision: str, identity: str | None) -> dict[str, Any]:
        body = deployment(revision, name=name)
        if identity:
            body["metadata"]["labels"] = {"gpupool.io/model-deployment": identity}
        return body

    cache.remember(labelled("chat", "1", "chat"))
    cache.remember(labelled("chat-h100", "2", "chat"))
    cache.remember(labelled("other", "3", "other"))
    assert cache.deployments_of("team-a", "chat") == {"chat", "chat-h100"}
    cache.remember(labelled("chat-h100", "4", None))  # relabelled
    assert cache.deployments_of("team-a", "chat") == {"chat"}
    cache.forget(labelled("chat", "5", "chat"))
    assert cache.deployments_of("team-a", "chat") == set()
    assert cache.deployments_of("team-b", "other") == set()


def test_the_operator_watches_only_its_own_deployments_and_pods() -> None:
    from kopf._cogs.structs.references import Resource

    settings = kopf.OperatorSettings()
    config = OperatorConfig()
    handlers.tune(settings, config)
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
    assert settings.queueing.worker_limit == config.queued_objects > handlers.HANDLER_THREADS
    assert settings.queueing.idle_timeout <= 1


def test_once_a_listing_filled_the_watched_kind_a_miss_is_an_absent_object(cache: ClusterCache) -> None:
    fallback = Reads(None)
    assert read(cache, fallback) is None and len(fallback.calls) == 1  # not complete: asks
    cache.refresh("Deployment", [deployment("7", name="other")], 7, watched=True)
    assert read(cache, fallback) is None and len(fallback.calls) == 1  # complete: no request
    assert read(cache, fallback, name="other") is not None
    cache.refresh("Service", [], 8)
    assert not cache.complete("Service")  # not watched: a listing is only as fresh as its time


def test_kopf_retries_its_watches_without_end_each_request_from_the_first_pause() -> None:
    settings = kopf.OperatorSettings()
    handlers.tune(settings, OperatorConfig())
    backoffs = settings.networking.error_backoffs
    first = list(itertools.islice(iter(backoffs), 8))  # type: ignore[call-overload]
    assert first == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    assert list(itertools.islice(iter(backoffs), 2)) == [1.0, 2.0]  # the next request starts over


def test_revisions_of_held_children_and_none_for_the_rest(cache: ClusterCache) -> None:
    cache.remember(deployment("7"))
    keys = (("Deployment", "team-a", "chat"), ("Service", "team-a", "chat"))
    assert cache.revisions(keys) == (7, None)
    cache.remember(deployment("9"))
    assert cache.revisions(keys) == (9, None)


def test_a_model_is_unchanged_only_while_it_and_its_children_read_as_they_settled(
    cache: ClusterCache,
) -> None:
    world = World(NoReads(), cache)  # type: ignore[arg-type]
    key = ("team-a", "chat")
    assert not unchanged_since_settled(world, key, "40")  # never settled
    cache.remember(deployment("7"))
    children = (("Deployment", "team-a", "chat"),)
    world.memory.settled[key] = Settled("40", children, cache.revisions(children))
    assert unchanged_since_settled(world, key, "40")
    # The model changed (a spec edit, or someone else's status write).
    assert not unchanged_since_settled(world, key, "41")
    # A child changed (the Deployment controller's status, an edit by hand).
    cache.remember(deployment("8"))
    assert not unchanged_since_settled(world, key, "40")
    # A child went away.
    world.memory.settled[key] = Settled("40", children, cache.revisions(children))
    cache.forget(deployment("8"))
    assert not unchanged_since_settled(world, key, "40")


def test_the_asks_by_pool_follow_every_model_that_asks_and_forget_the_ones_gone() -> None:
    memory = ModelMemory()
    a, b = object(), object()
    memory.remember_asks(("ns", "m1"), {"h100": a, "910b": b})  # type: ignore[dict-item]
    memory.remember_asks(("ns", "m2"), {"h100": b})  # type: ignore[dict-item]
    assert memory.asking("h100") == {("ns", "m1"): a, ("ns", "m2"): b}
    memory.remember_asks(("ns", "m1"), {"910b": a})  # type: ignore[dict-item]
    assert memory.asking("h100") == {("ns", "m2"): b}
    assert memory.asking("910b") == {("ns", "m1"): a}
    assert memory.forget_asks(("ns", "m1")) == frozenset({"910b"})
    assert memory.asking("910b") == {} and "910b" not in memory.by_pool
    assert memory.forget_asks(("ns", "gone")) == frozenset()
    assert set(memory.asks) == {("ns", "m2")}


def modeldeployment(revision: str, name: str = "chat", generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "resourceVersion": revision,
            "generation": generation,
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"pool": "h100"},
    }


def test_a_model_is_read_from_the_watchs_copy_and_from_the_api_server_only_on_a_miss(
    cache: ClusterCache,
) -> None:
    from gpupool.controller.reconciler import _read_model

    cache.remember_model(modeldeployment("5", generation=2))
    body = _read_model(World(NoReads(), cache), "team-a", "chat")  # type: ignore[arg-type]
    assert body is not None and body["metadata"]["generation"] == 2
    assert "managedFields" not in body["metadata"]
    body["spec"]["pool"] = "changed"  # the caller's copy
    assert cache.model("team-a", "chat") == {**body, "spec": {"pool": "h100"}}
    # A miss asks the API server, and its answer is kept for the next pass.
    kube = Reads(modeldeployment("9", name="other"))
    assert _read_model(World(kube, cache), "team-a", "other") is not None  # type: ignore[arg-type]
    assert _read_model(World(kube, cache), "team-a", "other") is not None  # type: ignore[arg-type]
    assert len(kube.calls) == 1
    gone = Reads(None)
    assert _read_model(World(gone, cache), "team-a", "absent") is None  # type: ignore[arg-type]


def test_a_models_copy_never_goes_back_and_a_deletion_or_listing_drops_it(cache: ClusterCache) -> None:
    cache.remember_model(modeldeployment("7", generation=3))
    cache.remember_model(modeldeployment("6", generation=2))  # an older event after our write
    assert (cache.model("team-a", "chat") or {})["metadata"]["generation"] == 3
    cache.forget_model(modeldeployment("6"))  # the deletion of an earlier incarnation
    assert cache.model("team-a", "chat") is not None
    cache.forget_model(modeldeployment("8"))
    assert cache.model("team-a", "chat") is None
    # A listing drops a copy it lacks (a deletion whose event was missed) unless newer than it.
    cache.remember_model(modeldeployment("10", name="a"))
    cache.remember_model(modeldeployment("30", name="b"))
    cache.refresh_models([modeldeployment("12", name="c")], 20)
    assert cache.model("team-a", "a") is None
    assert cache.model("team-a", "b") is not None and cache.model("team-a", "c") is not None
