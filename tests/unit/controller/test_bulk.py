"""Many new models of one pool at once, through the Controller's workers, against an API server kept
in memory: every demand reaches the pool's allocation, each model takes one pass, and the passes
read their models from the watch's copies."""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections import Counter
from typing import Any

from gpupool.controller import kube as k
from gpupool.controller.config import OperatorConfig
from gpupool.controller.operator import Controller

POOL = "h100"


def node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"pool": POOL}},
        "status": {
            "allocatable": {"nvidia.com/gpu": "8", "cpu": "96"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


class MemoryApi:
    """The calls the reconciler makes, on objects held in memory; each write tells the watch side,
    as the watches would, after a short delay of its own."""

    def __init__(self, on_change: Any = None) -> None:
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.versions = itertools.count(100)
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.on_change = on_change

    def store(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        key = (obj["kind"], meta.get("namespace"), meta["name"])
        with self.lock:
            old = self.objects.get(key)
            new = copy.deepcopy(obj)
            new["metadata"]["resourceVersion"] = str(next(self.versions))
            new["metadata"].setdefault("uid", f"uid-{meta['name']}")
            new["metadata"].setdefault("generation", 1)
            if old is not None and "status" in old and "status" not in new:
                new["status"] = old["status"]
            self.objects[key] = new
        if self.on_change is not None:
            self.on_change("MODIFIED" if old else "ADDED", copy.deepcopy(new))
        return copy.deepcopy(new)

    def serves(self, resource: k.Resource, refresh: bool = False) -> bool:
        return resource.api_version in ("v1", "apps/v1", "policy/v1", "networking.k8s.io/v1")

    def get(self, resource: k.Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        self.calls[f"get {resource.kind}"] += 1
        time.sleep(0.001)
        with self.lock:
            found = self.objects.get((resource.kind, namespace if resource.namespaced else None, name))
            return copy.deepcopy(found) if found else None

    def list(self, resource: k.Resource, namespace: str | None = None, **_: Any) -> Any:
        self.calls[f"list {resource.kind}"] += 1
        with self.lock:
            items = [copy.deepcopy(v) for (kind, _, _), v in self.objects.items() if kind == resource.kind]
        yield from items

    def list_at(self, resource: k.Resource, namespace: str | None = None, **_: Any) -> Any:
        return list(self.list(resource, namespace)), next(self.versions)

    def stream_at(self, resource: k.Resource, namespace: str | None = None, **_: Any) -> Any:
        items, version = self.list_at(resource, namespace)
        return iter(items), lambda: version

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls[f"apply {obj['kind']}"] += 1
        time.sleep(0.001)  # the other workers' passes go on meanwhile
        return self.store(obj)

    def apply_if_changed(self, desired: dict[str, Any], current: dict[str, Any] | None = None) -> bool:
        self.apply(k.with_applied_hash(desired))
        return True

    def apply_status(self, resource: k.Resource, body: dict[str, Any], status: dict[str, Any]) -> Any:
        if body.get("status") == status:
            return None
        self.calls[f"status {resource.kind}"] += 1
        meta = body["metadata"]
        namespace = meta.get("namespace") if resource.namespaced else None
        with self.lock:
            current = copy.deepcopy(self.objects[(resource.kind, namespace, meta["name"])])
        current["status"] = status
        return self.store(current)

    def post_event(self, *_: Any) -> None:
        self.calls["event"] += 1


def test_a_bulk_of_new_models_registers_every_demand_and_passes_each_model_once() -> None:
    passes: Counter[str] = Counter()
    controller: Controller

    def watch(type_: str, body: dict[str, Any]) -> None:
        if body["kind"] == "ModelDeployment":
            meta = body["metadata"]
            controller.model_changed(type_, meta["namespace"], meta["name"], body)

    api = MemoryApi(watch)
    for i in range(40):
        api.store(node(f"n{i}"))
    pool = {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "InferencePool",
        "metadata": {"name": POOL},
        "spec": {
            "vendor": "nvidia",
            "accelerator": "H100-80GB",
            "acceleratorsPerNode": 8,
            "nodeSelector": {"pool": POOL},
            "tiers": [{"name": "P1", "priority": 1000, "reservedPercent": 50}],
        },
    }
    api.store(pool)
    controller = Controller(OperatorConfig(workers=8, resync_seconds=3600), api)  # type: ignore[arg-type]
    process = controller.process

    def counted(key: Any, work: Any) -> None:
        passes[key.kind] += 1
        process(key, work)

    controller.workers._handle = counted
    controller.pool_changed(None, POOL, api.objects[("InferencePool", None, POOL)])
    controller.start()
    try:
        assert controller.queue.wait_idle(30)
        passes.clear()
        api.calls.clear()
        models = 120
        for i in range(models):
            api.store(
                {
                    "apiVersion": "gpupool.io/v1alpha1",
                    "kind": "ModelDeployment",
                    "metadata": {"name": f"m{i:03d}", "namespace": "bulk"},
                    "spec": {"model": {"name": "llama-3.1-8b"}, "pool": POOL, "tier": "P1", "replicas": 1},
                }
            )
        assert controller.queue.wait_idle(60)
    finally:
        controller.stop()
    memory = controller.world.memory
    _, allocation = memory.allocations[POOL]
    assert len(memory.asking(POOL)) == models
    # Every model's demand is in the allocation the next pass reads (none lost to a pass that ran
    # at the same time), and each one runs the instance it asked for: 120 of the pool's 320 GPUs.
    assert len(allocation.demands) == models
    assert set(allocation.counts.values()) == {1}
    assert passes["ModelDeployment"] == models
    # The passes read their models from the watch's copies, and create what the cache lacks (a
    # LeaderWorkerSet, not watched, is looked for once per model without a Deployment).
    assert api.calls["get ModelDeployment"] == 0
    assert api.calls["get LeaderWorkerSet"] == models
    assert api.calls["apply Deployment"] == models
