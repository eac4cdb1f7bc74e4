"""Passes of a canary built from the operator's own decision (`decide`, then `run_canary`), for
the tests of the canary service and of the Argo CD health scripts that read its statuses."""

from __future__ import annotations

import copy
from typing import Any

from gpupool.api.v1alpha1 import InferencePool, ModelDeployment, ModelDeploymentStatus
from gpupool.services.canary import Held, run_canary
from gpupool.services.modeldeployment import ModelOutcome, PoolContext, WorkloadObservation, decide
from gpupool.services.rollout import StepMeasurement

NOW = "2026-01-01T00:00:00Z"
T0 = 1_767_225_600.0  # NOW in seconds
POOL = InferencePool.model_validate(
    {
        "metadata": {"name": "h100", "uid": "pool-uid", "generation": 1},
        "spec": {"vendor": "nvidia", "accelerator": "H100-80GB", "nodeSelector": {"gpu-type": "nvidia"}},
    }
)
HEALTHY = StepMeasurement(
    canary_requests=500, canary_errors=0, canary_ttft_p99_seconds=0.105, stable_ttft_p99_seconds=0.1
)
SLOW = StepMeasurement(
    canary_requests=500, canary_errors=0, canary_ttft_p99_seconds=0.15, stable_ttft_p99_seconds=0.1
)


def model(revision: str, status: ModelDeploymentStatus | None = None, **spec: Any) -> ModelDeployment:
    body: dict[str, Any] = {
        "model": {"name": "llama-3.1-8b"},
        "weights": {"huggingFace": {"id": "meta-llama/Llama-3.1-8B-Instruct", "revision": revision}},
        "pool": "h100",
        "replicas": 4,
        "rollout": {"minStepSeconds": 60, "minStepRequests": 100},
    }
    body.update(spec)
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "chat", "namespace": "team-a", "uid": "md-uid", "generation": 2},
            "spec": body,
            "status": status.to_wire() if status is not None else None,
        }
    )


def outcome_of(md: ModelDeployment) -> ModelOutcome:
    return decide(md, {"h100": PoolContext(POOL)}, {"h100": WorkloadObservation(4, 4, 4)}, NOW)


def deployment(outcome: ModelOutcome, name: str = "chat") -> dict[str, Any]:
    return next(o for o in outcome.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name)


def held_from(md: ModelDeployment, replicas: int = 4, updated: int | None = None) -> dict[str, Any]:
    """The Deployment of `md` as the API server holds it once it ran."""
    held = copy.deepcopy(deployment(outcome_of(md)))
    held["metadata"]["generation"] = 3
    held["spec"]["replicas"] = replicas
    done = replicas if updated is None else updated
    held["status"] = {
        "observedGeneration": 3,
        "replicas": replicas,
        "readyReplicas": done,
        "updatedReplicas": done,
    }
    return held


OLD = model("v1")
STABLE = held_from(OLD)


def step(
    md: ModelDeployment,
    held: Held,
    measured: StepMeasurement | None = None,
    now: float = T0,
    **kwargs: Any,
) -> tuple[ModelOutcome, ModelDeployment]:
    """One pass: the outcome, and the model as the API server holds it after the status write."""
    out = run_canary(md, outcome_of(md), held, measured, now, **kwargs)
    return out, md.model_copy(update={"status": ModelDeploymentStatus.model_validate(out.status.to_wire())})
