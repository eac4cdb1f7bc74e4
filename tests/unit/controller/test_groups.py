"""What the reconciler does with LeaderWorkerSets: the missing CRD, the stale kind."""

from __future__ import annotations

from typing import Any

from gpupool.controller import groups
from gpupool.controller.apiclient import ApiError
from gpupool.controller.kube import Kube

GROUP_SET = {
    "apiVersion": "leaderworkerset.x-k8s.io/v1",
    "kind": "LeaderWorkerSet",
    "metadata": {"name": "big", "namespace": "ns"},
    "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 2}},
}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "small", "namespace": "ns"}}


def test_a_404_applying_a_set_says_the_crd_is_missing_and_what_to_do() -> None:
    message = groups.missing_crd(ApiError(status=404), [GROUP_SET])
    assert message is not None
    assert "on 2 nodes" in message
    assert "no LeaderWorkerSet CRD (leaderworkerset.x-k8s.io/v1)" in message
    assert "install the LeaderWorkerSet controller" in message


def test_other_errors_and_other_kinds_are_not_a_missing_crd() -> None:
    assert groups.missing_crd(ApiError(status=422), [GROUP_SET]) is None
    assert groups.missing_crd(ApiError(status=404), [DEPLOYMENT]) is None


class _Kube:
    """The two calls Kube.delete_controlled makes, over a dict of sets."""

    delete_controlled = Kube.delete_controlled

    def __init__(self, held: dict[str, dict[str, Any]]) -> None:
        self.held = held
        self.deleted: list[str] = []

    def get(self, resource: Any, namespace: str | None, name: str) -> dict[str, Any] | None:
        assert resource is groups.LEADER_WORKER_SET
        return self.held.get(name)

    def delete(self, obj: dict[str, Any]) -> bool:
        self.deleted.append(obj["metadata"]["name"])
        return True


def _owned(name: str, uid: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "ownerReferences": [{"uid": uid, "controller": True}]}}


def test_only_sets_the_model_controls_and_no_longer_asks_for_are_deleted() -> None:
    kube = _Kube({"a": _owned("a", "me"), "b": _owned("b", "someone-else"), "c": _owned("c", "me")})
    deleted = groups.prune_group_sets(kube, "ns", "me", {"a", "b", "c", "gone"}, wanted={"c"})  # type: ignore[arg-type]
    assert (deleted, kube.deleted) == (1, ["a"])
