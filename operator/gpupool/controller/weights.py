"""Kubernetes IO for a model's weights caches: read its claims and download Jobs, delete stale ones.

Read fresh in each pass of a model that has (or had) spec.weights.cache: one list of claims and
one of Jobs by the model's weights label, plus, for a cache whose latest attempt failed, that
attempt's pods, whose termination says why. Only objects this ModelDeployment controls count.
Jobs are also watched (`gpupool.controller.handlers`), so a finished download wakes its model.
"""

from __future__ import annotations

from typing import Any

from gpupool.controller.kube import JOB, PERSISTENT_VOLUME_CLAIM, POD, Kube, controlled_by
from gpupool.render.labels import label_value
from gpupool.render.weights import ATTEMPT_LABEL, CACHE_LABEL, WEIGHTS_OF_LABEL
from gpupool.services.weights import CacheClaim, CacheObservation, DownloadJob

# The label the Job controller puts on a Job's pods.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def _condition(body: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return dict(condition)
    return None


def _pod_failure(kube: Kube, namespace: str, job: str) -> tuple[str, str] | None:
    """The reason and message of the failed container (else the pod) of the Job's pods."""
    for pod in kube.list(POD, namespace, label_selector=f"{JOB_NAME_LABEL}={job}"):
        status = pod.get("status") or {}
        for container in status.get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated") or {}
            if terminated and terminated.get("exitCode", 0) != 0:
                code = terminated.get("exitCode")
                reason = f"{terminated.get('reason') or 'Error'} (exit code {code})"
                return reason, " ".join(str(terminated.get("message") or "").split())[-500:]
        if status.get("phase") == "Failed":
            return str(status.get("reason") or "PodFailed"), str(status.get("message") or "")
    return None


def _job(kube: Kube, body: dict[str, Any], latest: bool) -> DownloadJob:
    meta = body["metadata"]
    labels = meta.get("labels") or {}
    done = _condition(body, "Complete")
    failed = _condition(body, "Failed")
    reason = message = ""
    if failed is not None:
        reason = str(failed.get("reason") or "Failed")
        message = str(failed.get("message") or "")
        pod = _pod_failure(kube, meta["namespace"], meta["name"]) if latest else None
        if pod is not None:
            reason, message = pod[0], pod[1] or message
    finished = done or failed
    try:
        attempt = int(labels.get(ATTEMPT_LABEL, "0"))
    except ValueError:
        attempt = 0
    return DownloadJob(
        name=meta["name"],
        cache=str(labels.get(CACHE_LABEL, "")),
        attempt=attempt,
        uid=str(meta.get("uid", "")),
        succeeded=done is not None,
        failed=failed is not None,
        finished_at=str(finished.get("lastTransitionTime")) if finished else None,
        reason=reason,
        message=message,
    )


def observe_cache(kube: Kube, namespace: str, name: str, uid: str | None) -> CacheObservation:
    """The model's cache claims and download Jobs, as the API server holds them now."""
    selector = f"{WEIGHTS_OF_LABEL}={label_value(name)}"
    claims = tuple(
        CacheClaim(
            name=c["metadata"]["name"],
            cache=str((c["metadata"].get("labels") or {}).get(CACHE_LABEL, "")),
            phase=(c.get("status") or {}).get("phase"),
            uid=str(c["metadata"].get("uid", "")),
        )
        for c in kube.list(PERSISTENT_VOLUME_CLAIM, namespace, label_selector=selector)
        if controlled_by(c, uid)
    )
    bodies = [j for j in kube.list(JOB, namespace, label_selector=selector) if controlled_by(j, uid)]

    def attempt(body: dict[str, Any]) -> tuple[str, int]:
        labels = body["metadata"].get("labels") or {}
        value = str(labels.get(ATTEMPT_LABEL, "0"))
        return str(labels.get(CACHE_LABEL, "")), int(value) if value.isdigit() else 0

    latest: dict[str, int] = {}
    for body in bodies:
        cache, number = attempt(body)
        latest[cache] = max(latest.get(cache, 0), number)
    jobs = tuple(_job(kube, body, attempt(body)[1] == latest[attempt(body)[0]]) for body in bodies)
    return CacheObservation(claims=claims, jobs=jobs)


def delete_stale(kube: Kube, objects: tuple[dict[str, Any], ...]) -> int:
    """Delete the claims and Jobs of caches no longer used; the deletes made."""
    return sum(1 for obj in objects if kube.delete(obj))
