"""Decide a model's weights cache: its claim, the download Job to start, the retry and the status.

Pure: from the ModelDeployment, the checkpoint's size and what the cluster holds of the model's
cache claims and download Jobs (`CacheObservation`), `decide_cache` says which claim the instances
mount, whether the weights are there yet, which Job to create (none while one runs or after one
succeeded), when to look again after a failure, and which claims and Jobs of other revisions to
delete. Everything it reads is in the world (the Jobs are the record of the attempts), so the same
cluster always gives the same answer and a pass that finds nothing new writes nothing.

Retries: a failed attempt is followed by the next after RETRY_BASE_SECONDS, doubling per failed
attempt up to RETRY_MAX_SECONDS, for MAX_ATTEMPTS attempts in all; then the cache stays Failed
until the spec changes (another revision) or someone deletes the Jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from gpupool.api.conditions import ConditionStatus, Reason
from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.api.weights import WeightsCache, WeightsPhase, WeightsStatus
from gpupool.render import weights as render
from gpupool.render.images import default_image
from gpupool.render.workload import owner_references

Obj = dict[str, Any]

RETRY_BASE_SECONDS: Final = 15
RETRY_MAX_SECONDS: Final = 600
MAX_ATTEMPTS: Final = 6


@dataclass(frozen=True)
class DownloadJob:
    """One download Job of the model, as the cluster reports it."""

    name: str
    cache: str  # the cache key (render.weights.cache_key) it downloads into
    attempt: int
    uid: str = ""
    succeeded: bool = False
    failed: bool = False
    finished_at: str | None = None  # when it succeeded or failed (RFC 3339)
    reason: str = ""  # why it failed: the pod's termination reason, else the Job's
    message: str = ""


@dataclass(frozen=True)
class CacheClaim:
    name: str
    cache: str
    phase: str | None = None  # the claim's status.phase: Pending, Bound, Lost
    uid: str = ""


@dataclass(frozen=True)
class CacheObservation:
    """The model's cache claims and download Jobs (only those the ModelDeployment controls)."""

    claims: tuple[CacheClaim, ...] = ()
    jobs: tuple[DownloadJob, ...] = ()


Verdict = tuple[ConditionStatus, Reason, str]


@dataclass(frozen=True)
class CacheDecision:
    claim: str
    ready: bool
    status: WeightsStatus
    condition: Verdict
    objects: list[Obj] = field(default_factory=list)  # the claim, and a Job to create
    retry_after: float | None = None
    stale: tuple[Obj, ...] = ()  # claims and Jobs of other caches, to delete


def retry_delay_seconds(failures: int) -> int:
    """Seconds between the `failures`-th failed attempt and the next."""
    return int(min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, failures - 1)))


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _reference(kind: str, api_version: str, namespace: str, name: str, uid: str) -> Obj:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
    }


def stale_objects(namespace: str, observation: CacheObservation, keep: str | None) -> tuple[Obj, ...]:
    """The claims and Jobs of every cache but `keep` (None: of every cache)."""
    stale = [
        _reference("Job", "batch/v1", namespace, job.name, job.uid)
        for job in observation.jobs
        if job.cache != keep
    ]
    stale += [
        _reference("PersistentVolumeClaim", "v1", namespace, claim.name, claim.uid)
        for claim in observation.claims
        if claim.cache != keep
    ]
    return tuple(stale)


def decide_cache(
    md: ModelDeployment,
    pool: InferencePool,
    cache: WeightsCache,
    checkpoint_bytes: int,
    observation: CacheObservation | None,
    now: str,
) -> CacheDecision:
    """The cache of the spec's revision and what to do about it.

    `observation` None is a preview (`gpupool render`): the claim and the first Job, with the
    weights taken as cached so that the instances are shown as they will run.
    """
    source = md.spec.weights
    assert source is not None and source.hugging_face is not None  # the API types guarantee it
    hf = source.hugging_face
    md_name: str = md.metadata["name"]
    namespace: str = md.metadata.get("namespace", "")
    owners = owner_references(md.api_version, md.kind, md.metadata)
    revision = hf.revision or render.DEFAULT_REVISION
    size = render.cache_size(cache, checkpoint_bytes)
    key = render.cache_key(hf.id, revision, cache, size)
    claim = render.render_cache_claim(
        md_name, namespace, owners, key=key, revision=revision, cache=cache, size=size
    )
    claim_name = claim["metadata"]["name"]
    download_rate = pool.spec.weight_loading.download_mbps * 10**6
    image = md.spec.engine.image or default_image(md.spec.engine.type, pool.spec.vendor)
    token = (hf.token_secret_ref.name, hf.token_secret_ref.key) if hf.token_secret_ref else None

    def job(attempt: int) -> Obj:
        return render.render_download_job(
            md_name,
            namespace,
            owners,
            key=key,
            attempt=attempt,
            repository=hf.id,
            revision=revision,
            image=image,
            token=token,
            deadline=render.deadline_seconds(checkpoint_bytes, download_rate),
        )

    def status(phase: WeightsPhase, job_name: str | None, attempts: int) -> WeightsStatus:
        return WeightsStatus(
            phase=phase,
            repository=hf.id,
            revision=revision,
            size=size,
            claim_name=claim_name,
            job_name=job_name,
            attempts=attempts,
        )

    what = f"{hf.id}@{revision} ({size}, PersistentVolumeClaim {claim_name})"
    if observation is None:
        first = job(1)
        return CacheDecision(
            claim=claim_name,
            ready=True,
            status=status(WeightsPhase.PENDING, first["metadata"]["name"], 1),
            condition=(ConditionStatus.FALSE, Reason.DOWNLOAD_PENDING, f"{what} is to be downloaded"),
            objects=[claim, first],
        )

    jobs = sorted((j for j in observation.jobs if j.cache == key), key=lambda j: j.attempt)
    bound = any(c.name == claim_name and c.phase == "Bound" for c in observation.claims)
    done = next((j for j in jobs if j.succeeded), None)
    if done is not None:
        return CacheDecision(
            claim=claim_name,
            ready=True,
            status=status(WeightsPhase.READY, done.name, len(jobs)),
            condition=(ConditionStatus.TRUE, Reason.WEIGHTS_CACHED, f"{what} downloaded by Job {done.name}"),
            objects=[claim],
            stale=stale_objects(namespace, observation, key),
        )
    latest = jobs[-1] if jobs else None
    if latest is not None and not latest.failed:
        waiting = (
            ConditionStatus.FALSE,
            Reason.DOWNLOADING if bound else Reason.DOWNLOAD_PENDING,
            f"Job {latest.name} downloads {what}"
            if bound
            else f"{what}: the claim waits to bind before Job {latest.name} can start (a StorageClass "
            "that provisions it, or a PersistentVolume that matches it)",
        )
        phase = WeightsPhase.DOWNLOADING if bound else WeightsPhase.PENDING
        return CacheDecision(claim_name, False, status(phase, latest.name, len(jobs)), waiting, [claim])
    if latest is None:
        first = job(1)
        verdict = (
            ConditionStatus.FALSE,
            Reason.DOWNLOAD_PENDING,
            f"Job {first['metadata']['name']} starts the download of {what}",
        )
        return CacheDecision(
            claim_name,
            False,
            status(WeightsPhase.PENDING, first["metadata"]["name"], 1),
            verdict,
            [claim, first],
        )
    failures = len(jobs)
    why = latest.reason + (f": {latest.message}" if latest.message else "")
    failed = f"attempt {latest.attempt} (Job {latest.name}) failed: {why or 'no reason given'}"
    if failures >= MAX_ATTEMPTS:
        message = (
            f"{what}: {failed}; all {MAX_ATTEMPTS} attempts failed. Fix the cause (the repository id, "
            "revision, token Secret or the cluster's egress) and change the spec, or delete the Jobs "
            "to start again"
        )
        return CacheDecision(
            claim_name,
            False,
            status(WeightsPhase.FAILED, latest.name, failures),
            (ConditionStatus.FALSE, Reason.DOWNLOAD_FAILED, message),
            [claim],
        )
    delay = retry_delay_seconds(failures)
    finished = _time(latest.finished_at) if latest.finished_at else _time(now)
    due = finished.timestamp() + delay
    remaining = due - _time(now).timestamp()
    if remaining > 0:
        at = datetime.fromtimestamp(due, finished.tzinfo).isoformat().replace("+00:00", "Z")
        message = f"{what}: {failed}; attempt {latest.attempt + 1} of {MAX_ATTEMPTS} starts at {at}"
        return CacheDecision(
            claim_name,
            False,
            status(WeightsPhase.FAILED, latest.name, failures),
            (ConditionStatus.FALSE, Reason.DOWNLOAD_FAILED, message),
            [claim],
            retry_after=remaining,
        )
    retry = job(latest.attempt + 1)
    name = retry["metadata"]["name"]
    message = f"{what}: {failed}; Job {name} (attempt {latest.attempt + 1} of {MAX_ATTEMPTS}) retries"
    return CacheDecision(
        claim_name,
        False,
        status(WeightsPhase.PENDING, name, failures + 1),
        (ConditionStatus.FALSE, Reason.DOWNLOAD_FAILED, message),
        [claim, retry],
    )
