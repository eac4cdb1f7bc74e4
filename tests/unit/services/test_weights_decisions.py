"""decide(): a model with spec.weights.cache, from what the cluster holds of its claims and Jobs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gpupool.api.v1alpha1 import InferencePool, ModelDeployment, ModelDeploymentSpec
from gpupool.services.modeldeployment import PoolContext, decide, sizing_request
from gpupool.services.weights import (
    MAX_ATTEMPTS,
    CacheClaim,
    CacheObservation,
    DownloadJob,
    retry_delay_seconds,
)

NOW = "2026-05-01T12:00:00Z"


def pool() -> InferencePool:
    return InferencePool.model_validate(
        {
            "metadata": {"name": "h100", "uid": "pool-uid"},
            "spec": {"vendor": "nvidia", "accelerator": "H100-80GB"},
        }
    )


def model(revision: str = "rev-a", replicas: int = 2, **cache: Any) -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "chat", "namespace": "team", "uid": "md-uid", "generation": 1},
            "spec": {
                "model": {"name": "llama-3.1-8b"},
                "pool": "h100",
                "replicas": replicas,
                "weights": {
                    "huggingFace": {"id": "meta-llama/Llama-3.1-8B-Instruct", "revision": revision},
                    "cache": {"storageClassName": "nfs", **cache},
                },
            },
        }
    )


def run(md: ModelDeployment, seen: CacheObservation | None, now: str = NOW) -> Any:
    return decide(md, {"h100": PoolContext(pool())}, {}, now, weights=seen)


def kinds(outcome: Any) -> list[str]:
    return [o["kind"] for o in outcome.objects]


def reason(outcome: Any) -> str:
    return next(c.reason for c in outcome.status.conditions if c.type == "WeightsReady")


def claim_of(outcome: Any) -> str:
    return str(outcome.status.weights.claim_name)


def key_of(outcome: Any) -> str:
    claim = next(o for o in outcome.objects if o["kind"] == "PersistentVolumeClaim")
    return str(claim["metadata"]["labels"]["gpupool.io/weights-cache"])


def test_a_new_cache_starts_one_job_and_holds_the_deployment_back() -> None:
    outcome = run(model(), CacheObservation())
    assert kinds(outcome).count("Deployment") == 0
    assert kinds(outcome)[:2] == ["PersistentVolumeClaim", "Job"]
    assert outcome.withheld == frozenset({"chat"})
    assert reason(outcome) == "DownloadPending"
    ready = next(c for c in outcome.status.conditions if c.type == "Ready")
    assert ready.reason == "WaitingForWeights"
    claim = outcome.objects[0]
    # 8B bf16 is 16 GB of weights; plus 20% in whole GiB.
    assert claim["spec"]["resources"]["requests"]["storage"] == "18Gi"
    assert claim["metadata"]["ownerReferences"][0]["uid"] == "md-uid"


def test_a_running_job_creates_nothing_new() -> None:
    first = run(model(), CacheObservation())
    key = key_of(first)
    seen = CacheObservation(
        claims=(CacheClaim(claim_of(first), key, "Bound"),),
        jobs=(DownloadJob("chat-weights-x-1", key, 1),),
    )
    outcome = run(model(), seen)
    assert kinds(outcome).count("Job") == 0
    assert reason(outcome) == "Downloading"
    assert outcome.status.weights.phase == "Downloading"


def test_a_succeeded_job_renders_the_instances_on_the_cache() -> None:
    first = run(model(), CacheObservation())
    key = key_of(first)
    seen = CacheObservation(
        claims=(CacheClaim(claim_of(first), key, "Bound"),),
        jobs=(DownloadJob("chat-weights-x-1", key, 1, succeeded=True, finished_at=NOW),),
    )
    outcome = run(model(), seen)
    (deployment,) = [o for o in outcome.objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "weights"]
    assert volume["persistentVolumeClaim"] == {"claimName": claim_of(first), "readOnly": True}
    args = pod["containers"][0]["args"]
    assert args[0] == "/mnt/weights/meta-llama/Llama-3.1-8B-Instruct"
    assert "--revision" not in args
    assert reason(outcome) == "Cached" and outcome.status.weights.phase == "Ready"
    assert outcome.withheld == frozenset()


def test_a_new_revision_is_a_new_cache_and_the_old_one_goes_once_it_is_ready() -> None:
    old = run(model("rev-a"), CacheObservation())
    new = run(model("rev-b"), CacheObservation())
    assert claim_of(old) != claim_of(new)
    held = (
        CacheClaim(claim_of(old), key_of(old), "Bound", uid="u1"),
        CacheClaim(claim_of(new), key_of(new), "Bound", uid="u2"),
    )
    old_job = DownloadJob("old-1", key_of(old), 1, succeeded=True, uid="j1")
    downloading = run(model("rev-b"), CacheObservation(held, (old_job, DownloadJob("new-1", key_of(new), 1))))
    assert downloading.stale == ()
    ready = CacheObservation(held, (old_job, DownloadJob("new-1", key_of(new), 1, succeeded=True)))
    done = run(model("rev-b"), ready)
    assert {(o["kind"], o["metadata"]["name"]) for o in done.stale} == {
        ("Job", "old-1"),
        ("PersistentVolumeClaim", claim_of(old)),
    }


def test_a_failure_waits_then_retries_with_a_growing_delay_and_gives_up() -> None:
    first = run(model(), CacheObservation())
    key = key_of(first)
    claims = (CacheClaim(claim_of(first), key, "Bound"),)
    failed = DownloadJob(
        "chat-1", key, 1, failed=True, finished_at=NOW, reason="Error (exit code 1)", message="404"
    )
    waiting = run(model(), CacheObservation(claims, (failed,)), now="2026-05-01T12:00:05Z")
    assert reason(waiting) == "DownloadFailed"
    assert kinds(waiting).count("Job") == 0
    assert waiting.requeue_after == pytest.approx(retry_delay_seconds(1) - 5)
    message = next(c.message for c in waiting.status.conditions if c.type == "WeightsReady")
    assert (
        "Error (exit code 1): 404" in message and "attempt 2 of 6 starts at 2026-05-01T12:00:15Z" in message
    )
    # The same cluster later in the wait says the same: nothing to write.
    again = run(model(), CacheObservation(claims, (failed,)), now="2026-05-01T12:00:09Z")

    def said(o: Any) -> list[tuple[str, str, str]]:
        return [(c.type, c.reason, c.message) for c in o.status.conditions]

    assert said(again) == said(waiting) and again.status.weights == waiting.status.weights

    due = run(model(), CacheObservation(claims, (failed,)), now="2026-05-01T12:00:15Z")
    (retry,) = [o for o in due.objects if o["kind"] == "Job"]
    assert retry["metadata"]["labels"]["gpupool.io/weights-attempt"] == "2"

    assert [retry_delay_seconds(n) for n in range(1, 7)] == [15, 30, 60, 120, 240, 480]
    jobs = tuple(
        DownloadJob(f"chat-{n}", key, n, failed=True, finished_at=NOW, reason="Error")
        for n in range(1, MAX_ATTEMPTS + 1)
    )
    spent = run(model(), CacheObservation(claims, jobs), now="2026-06-01T00:00:00Z")
    assert kinds(spent).count("Job") == 0 and spent.requeue_after is None
    assert "all 6 attempts failed" in next(
        c.message for c in spent.status.conditions if c.type == "WeightsReady"
    )


def test_read_write_once_for_several_instances_is_refused_before_anything_is_created() -> None:
    with pytest.raises(ValidationError, match="ReadWriteOnce"):
        model(accessMode="ReadWriteOnce", replicas=2)
    md = model(accessMode="ReadWriteOnce", replicas=1)
    md = md.model_copy(
        update={
            "spec": md.spec.model_copy(
                update={"replicas": None, "traffic": md.spec.traffic.model_copy(update={"peak_qps": 40.0})}
            )
        }
    )
    outcome = run(md, CacheObservation())
    assert not outcome.apply and outcome.objects == []
    assert reason(outcome) == "CacheNotShareable"


def test_cache_needs_a_hugging_face_source() -> None:
    with pytest.raises(ValidationError, match=r"weights.cache downloads weights.huggingFace"):
        ModelDeploymentSpec.model_validate(
            {
                "model": {"name": "llama-3.1-8b"},
                "pool": "h100",
                "weights": {"pvc": {"claimName": "mine"}, "cache": {}},
            }
        )


def test_the_load_rate_follows_where_the_weights_come_from() -> None:
    rates = {"downloadMbps": 500, "localNvmeMbps": 6800, "networkFileSystemMbps": 524}
    h100 = InferencePool.model_validate(
        {
            "metadata": {"name": "h100"},
            "spec": {"vendor": "nvidia", "accelerator": "H100-80GB", "weightLoading": rates},
        }
    )
    uncached = model().spec.model_copy(update={"weights": None})
    download = sizing_request(ModelDeployment(metadata={"name": "a"}, spec=uncached), h100)
    shared = sizing_request(model(), h100)
    local = sizing_request(model(accessMode="ReadWriteOnce", replicas=1), h100)
    # Download then read from local disk, one after the other.
    assert download.weight_load_bytes_per_second == (500 * 6800 * 10**12) // ((500 + 6800) * 10**6)
    assert shared.weight_load_bytes_per_second == 524 * 10**6
    assert local.weight_load_bytes_per_second == 6800 * 10**6
