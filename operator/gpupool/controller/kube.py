"""Kubernetes IO for the operator: read, server-side apply when something differs, status, events.

Every write the operator makes goes through `Kube`, which is where the rule "a no-op pass makes no
writes" is kept: children are applied only when their desired form is not already what the API
server holds, status only when it differs, and events only when the caller has something new to say.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from gpupool import __version__
from gpupool.controller.apiclient import ApiClient, ApiError, load_credentials

FIELD_MANAGER = "gpupool"
USER_AGENT = f"gpupool-operator/{__version__}"
APPLIED_HASH = "gpupool.io/applied-hash"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
        if sub is not None:
            base += f"/{sub}"
        return base


DEPLOYMENT = Resource("apps/v1", "Deployment", "deployments", True)
SERVICE = Resource("v1", "Service", "services", True)
CONFIGMAP = Resource("v1", "ConfigMap", "configmaps", True)
EVENT = Resource("v1", "Event", "events", True)
NODE = Resource("v1", "Node", "nodes", False)
POD = Resource("v1", "Pod", "pods", True)
SECRET = Resource("v1", "Secret", "secrets", True)
PRIORITY_CLASS = Resource("scheduling.k8s.io/v1", "PriorityClass", "priorityclasses", False)
RESOURCE_QUOTA = Resource("v1", "ResourceQuota", "resourcequotas", True)
NAMESPACE = Resource("v1", "Namespace", "namespaces", False)
PERSISTENT_VOLUME_CLAIM = Resource("v1", "PersistentVolumeClaim", "persistentvolumeclaims", True)
JOB = Resource("batch/v1", "Job", "jobs", True)
POD_DISRUPTION_BUDGET = Resource("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True)
NETWORK_POLICY = Resource("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True)
# Gateway API (its CRDs may be absent: `Kube.serves` says whether the API server has them).
HTTP_ROUTE = Resource("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes", True)
GATEWAY = Resource("gateway.networking.k8s.io/v1", "Gateway", "gateways", True)
# Gateway API Inference Extension (optional too). Its InferencePool is not gpupool's own
# cluster-scoped InferencePool (INFERENCE_POOL): same kind name, another group.
INFERENCE_EXTENSION_POOL = Resource("inference.networking.k8s.io/v1", "InferencePool", "inferencepools", True)
INFERENCE_OBJECTIVE = Resource(
    "inference.networking.x-k8s.io/v1alpha2", "InferenceObjective", "inferenceobjectives", True
)
MODEL_DEPLOYMENT = Resource("gpupool.io/v1alpha1", "ModelDeployment", "modeldeployments", True)
INFERENCE_POOL = Resource("gpupool.io/v1alpha1", "InferencePool", "inferencepools", False)
# Optional: served by the LeaderWorkerSet controller's CRD where it is installed.
LEADER_WORKER_SET = Resource("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "leaderworkersets", True)
# Optional: Kueue's kinds (kueue.x-k8s.io), for pools with spec.scheduler kueue.
RESOURCE_FLAVOR = Resource("kueue.x-k8s.io/v1beta2", "ResourceFlavor", "resourceflavors", False)
COHORT = Resource("kueue.x-k8s.io/v1beta2", "Cohort", "cohorts", False)
CLUSTER_QUEUE = Resource("kueue.x-k8s.io/v1beta2", "ClusterQueue", "clusterqueues", False)
LOCAL_QUEUE = Resource("kueue.x-k8s.io/v1beta2", "LocalQueue", "localqueues", True)
KUEUE_WORKLOAD = Resource("kueue.x-k8s.io/v1beta2", "Workload", "workloads", True)

_BY_KIND = {
    (r.api_version, r.kind): r
    for r in (
        DEPLOYMENT,
        SERVICE,
        CONFIGMAP,
        EVENT,
        NODE,
        POD,
        SECRET,
        PRIORITY_CLASS,
        RESOURCE_QUOTA,
        NAMESPACE,
        POD_DISRUPTION_BUDGET,
        NETWORK_POLICY,
        HTTP_ROUTE,
        GATEWAY,
        INFERENCE_EXTENSION_POOL,
        INFERENCE_OBJECTIVE,
        MODEL_DEPLOYMENT,
        INFERENCE_POOL,
        LEADER_WORKER_SET,
        PERSISTENT_VOLUME_CLAIM,
        JOB,
        RESOURCE_FLAVOR,
        COHORT,
        CLUSTER_QUEUE,
        LOCAL_QUEUE,
        KUEUE_WORKLOAD,
    )
}
# The children of a model, by kind ("InferencePool" is the Inference Extension's: a model never
# owns one of gpupool's own pools).
CHILDREN = {
    r.kind: r
    for r in (
        DEPLOYMENT,
        SERVICE,
        CONFIGMAP,
        POD_DISRUPTION_BUDGET,
        NETWORK_POLICY,
        HTTP_ROUTE,
        INFERENCE_EXTENSION_POOL,
        INFERENCE_OBJECTIVE,
        PERSISTENT_VOLUME_CLAIM,
        JOB,
        LOCAL_QUEUE,
    )
}


def resource_of(obj: dict[str, Any]) -> Resource:
    return _BY_KIND[(obj["apiVersion"], obj["kind"])]


def contains(actual: Any, desired: Any) -> bool:
    """True when every field of `desired` is in `actual` with the same value.

    The API server adds defaults and bookkeeping around what we send; those extra fields are not
    drift. It also drops zero values of `omitempty` fields (`globalDefault: false`), so a zero we
    ask for matches a field that is absent. Lists must match element for element.
    """
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            contains(actual[key], value) if key in actual else _is_zero(value)
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(desired)
            and all(contains(a, d) for a, d in zip(actual, desired, strict=True))
        )
    return bool(actual == desired)


def _is_zero(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, int | float) and not isinstance(value, bool):
        return False  # numbers are serialised even when zero (replicas: 0)
    return not value


def applied_hash(obj: dict[str, Any]) -> str:
    """A digest of what we apply; it changes when we stop setting a field, which `contains` misses."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def with_applied_hash(obj: dict[str, Any]) -> dict[str, Any]:
    stamped: dict[str, Any] = json.loads(json.dumps(obj))
    annotations = stamped.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[APPLIED_HASH] = applied_hash(obj)
    return stamped


def controlled_by(obj: dict[str, Any], uid: str | None) -> bool:
    """Whether the owner `uid` is `obj`'s controller (an ownerReference with controller: true)."""
    owners = obj["metadata"].get("ownerReferences") or []
    return any(o.get("uid") == uid and o.get("controller") for o in owners)


def needs_apply(desired: dict[str, Any], current: dict[str, Any] | None) -> bool:
    return current is None or not contains(current, with_applied_hash(desired))


def _log_write(verb: str, obj: dict[str, Any]) -> None:
    """One log line per write, naming the object (JSON logs carry kind, namespace and name)."""
    meta = obj["metadata"]
    log.info(
        "%s %s %s/%s",
        verb,
        obj["kind"],
        meta.get("namespace", ""),
        meta["name"],
        extra={"obj_kind": obj["kind"], "obj_namespace": meta.get("namespace"), "obj_name": meta["name"]},
    )


def load_client(kubeconfig: str | None = None) -> ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (or $KUBECONFIG)."""
    # A distinct user agent lets audit logs tell the operator's requests from everyone else's.
    return ApiClient(load_credentials(kubeconfig), USER_AGENT)


class Kube:
    """A thin, synchronous, generic client over the Kubernetes REST API."""

    def __init__(self, api_client: ApiClient) -> None:
        self.api = api_client
        self._served: dict[str, frozenset[str]] = {}

    def serves(self, resource: Resource, refresh: bool = False) -> bool:
        """Whether the API server serves `resource` (its CRD is installed), from its discovery
        document: read the first time, then again only with `refresh` (once per resync, so a CRD
        installed later is seen at the next resync)."""
        held = self._served.get(resource.api_version)
        if held is None or refresh:
            path = f"/apis/{resource.api_version}" if "/" in resource.api_version else "/api/v1"
            try:
                document = self.api.request("GET", path) or {}
                held = frozenset(str(r.get("name")) for r in document.get("resources") or [])
            except ApiError as err:
                if err.status != 404:
                    raise
                held = frozenset()
            self._served[resource.api_version] = held
        return resource.plural in held

    def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.api.request("GET", resource.path(namespace, name))
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        return result

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 250,
        revision_out: builtins.list[int | None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every matching object, read a page at a time.

        Pages keep the operator's memory flat however many objects there are: a caller that keeps
        only what it needs never holds more than one page of full objects. `managedFields`, often
        the largest part of an object and never read here, is dropped; `apiVersion` and `kind`,
        which list items lack, are filled in. With `revision_out`, the listing's resource version
        (one consistent snapshot across pages; None when it is not a number) is appended to it once
        the first page is read.
        """
        query = [("limit", str(page_size))]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        token = ""
        while True:
            page = self.api.request(
                "GET", resource.path(namespace), query=query + ([("continue", token)] if token else [])
            )
            if revision_out is not None and not revision_out:
                try:
                    revision_out.append(int((page.get("metadata") or {}).get("resourceVersion", "")))
                except ValueError:
                    revision_out.append(None)
            for item in page.get("items", []):
                item.get("metadata", {}).pop("managedFields", None)
                item.setdefault("apiVersion", resource.api_version)
                item.setdefault("kind", resource.kind)
                yield item
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    def stream_at(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> tuple[Iterator[dict[str, Any]], Callable[[], int | None]]:
        """Every matching object, read a page at a time as the iterator is consumed, and a callable
        giving the resource version the listing was made at (None when it is not a number, or
        before the first page): one consistent snapshot across pages."""
        version: builtins.list[int | None] = []
        items = self.list(resource, namespace, label_selector=label_selector, revision_out=version)
        return items, lambda: version[0] if version else None

    def list_at(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> tuple[builtins.list[dict[str, Any]], int | None]:
        """Every matching object, held at once, with the resource version of the listing."""
        items, revision = self.stream_at(resource, namespace, label_selector=label_selector)
        return builtins.list(items), revision()

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply with our field manager, taking ownership of the fields we set."""
        resource = resource_of(obj)
        meta = obj["metadata"]
        result: dict[str, Any] = self.api.request(
            "PATCH",
            resource.path(meta.get("namespace"), meta["name"]),
            body=obj,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        _log_write("applied", obj)
        return result

    def delete_controlled(
        self, resource: Resource, namespace: str, uid: str | None, names: Iterable[str]
    ) -> int:
        """Delete each object of `resource` called one of `names` in `namespace` whose controller
        is the owner `uid`; the number deleted. Absent names, and objects someone else controls,
        are left alone."""
        deleted = 0
        for name in sorted(names):
            current = self.get(resource, namespace, name)
            if current is None:
                continue
            if controlled_by(current, uid) and self.delete(current):
                deleted += 1
        return deleted

    def delete(self, obj: dict[str, Any]) -> bool:
        """Delete `obj` if it is still the same object (uid precondition); True when it was deleted.

        Children are background-deleted: the garbage collector removes what they own (a
        Deployment's ReplicaSets and pods) and pods still drain through their preStop hooks.
        """
        resource = resource_of(obj)
        meta = obj["metadata"]
        body = {"propagationPolicy": "Background", "preconditions": {"uid": meta["uid"]}}
        try:
            self.api.request("DELETE", resource.path(meta.get("namespace"), meta["name"]), body=body)
        except ApiError as err:
            if err.status in (404, 409):
                return False
            raise
        _log_write("deleted", obj)
        return True

    def apply_if_changed(self, desired: dict[str, Any], current: dict[str, Any] | None = None) -> bool:
        """Apply `desired` unless the API server already holds it; True when a write was made."""
        resource = resource_of(desired)
        meta = desired["metadata"]
        if current is None:
            current = self.get(resource, meta.get("namespace"), meta["name"])
        if not needs_apply(desired, current):
            return False
        self.apply(with_applied_hash(desired))
        return True

    def apply_status(
        self, resource: Resource, body: dict[str, Any], status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Server-side apply of the status subresource, unless it already reads the same. Returns
        the object as the API server stored it, or None when nothing was written."""
        if body.get("status") == status:
            return None
        meta = body["metadata"]
        patch = {
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {
                "name": meta["name"],
                **({"namespace": meta["namespace"]} if resource.namespaced else {}),
            },
            "status": status,
        }
        stored = self.api.request(
            "PATCH",
            resource.path(meta.get("namespace"), meta["name"], "status"),
            body=patch,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        return stored if isinstance(stored, dict) and stored else {"metadata": {}}

    def annotate(
        self, resource: Resource, namespace: str | None, name: str, annotations: dict[str, str | None]
    ) -> None:
        """Set (or, with None, remove) annotations with a JSON merge patch: no field ownership is
        taken, and nothing else of the object is sent."""
        self.api.request(
            "PATCH",
            resource.path(namespace, name),
            body={"metadata": {"annotations": annotations}},
            content_type="application/merge-patch+json",
        )

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data, decoded as UTF-8 text; None when it does not exist."""
        body = self.get(SECRET, namespace, name)
        if body is None:
            return None
        data = body.get("data") or {}
        return {key: base64.b64decode(value).decode("utf-8", "replace") for key, value in data.items()}

    def post_event(self, involved: dict[str, Any], type_: str, reason: str, message: str, now: str) -> None:
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.api.request("POST", EVENT.path(namespace), body=event)
        except ApiError as err:  # an event is a courtesy; never fail a reconcile over it
            log.warning(
                "could not post event %s on %s: %s",
                reason,
                meta["name"],
                err.reason,
                extra={
                    "obj_kind": involved["kind"],
                    "obj_namespace": meta.get("namespace"),
                    "obj_name": meta["name"],
                },
            )
