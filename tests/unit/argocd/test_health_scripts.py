"""Argo CD health of ModelDeployments and InferencePools, computed in Argo CD's own Lua runtime.

tools/argocd-lua runs argocd/health/gpupool.io/<Kind>/health.lua on gopher-lua v1.1.2 with the
libraries Argo CD opens for a script from argocd-cm (package, base, table, a safe os; no string
or math) and reads the returned table as Argo CD does (argoproj/argo-cd util/lua/lua.go). The
statuses come from the operator's own status builders (`decide`, `pool_status`) where the operator
writes them, a canary's steps, promotion and rollback included (`run_canary`, through
tests/canary_passes.py); objects before or between reconciles, and conditions no builder writes
alone, are written out as the API server would hold them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from argocd_lua import HEALTH_SCRIPTS, ArgocdHealth, run_health_script
from canary_passes import HEALTHY, SLOW, STABLE, T0, deployment, held_from
from canary_passes import model as canary_model
from canary_passes import step as canary_step
from gpupool.api.conditions import ConditionType, find_condition
from gpupool.api.v1alpha1 import InferencePool, ModelDeployment, ModelDeploymentStatus
from gpupool.services.canary import Held
from gpupool.services.modeldeployment import PoolContext, WorkloadObservation, decide
from gpupool.services.pool import pool_status

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:05:00Z"
GENERATION = 4

POOL = InferencePool.model_validate(
    {
        "metadata": {"name": "h100", "uid": "pool-uid", "generation": 2},
        "spec": {"vendor": "nvidia", "accelerator": "H100-80GB", "nodeSelector": {"gpu-type": "nvidia"}},
    }
)


def model(**spec: Any) -> ModelDeployment:
    body: dict[str, Any] = {"model": {"name": "llama-3.1-8b"}, "pool": "h100", "traffic": {"peakQps": 1}}
    body.update(spec)
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "chat", "namespace": "team-a", "uid": "md-uid", "generation": GENERATION},
            "spec": body,
        }
    )


def reconciled(
    md: ModelDeployment,
    workload: WorkloadObservation | None = None,
    pool: InferencePool | None = POOL,
    previous: ModelDeploymentStatus | None = None,
) -> dict[str, Any]:
    """The ModelDeployment as the API server holds it after the operator's pass over it."""
    if previous is not None:
        md = md.model_copy(update={"status": previous})
    outcome = decide(
        md,
        {"h100": PoolContext(pool) if pool is not None else None},
        {"h100": workload} if workload else {},
        LATER if previous is not None else NOW,
    )
    return manifest("ModelDeployment", outcome.status.to_wire())


def manifest(kind: str, status: dict[str, Any] | None, generation: int = GENERATION) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "chat", "namespace": "team-a", "uid": "md-uid", "generation": generation},
        "spec": {},
    }
    if status is not None:
        obj["status"] = status
    return obj


def condition(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": GENERATION,
        "lastTransitionTime": NOW,
    }


def written(*conditions: dict[str, Any]) -> dict[str, Any]:
    """A ModelDeployment whose status the operator wrote for the current generation."""
    return manifest("ModelDeployment", {"observedGeneration": GENERATION, "conditions": list(conditions)})


def described(obj: dict[str, Any], type_: ConditionType) -> str:
    """`Reason: message` of a condition, the message the scripts give for a state that is not healthy."""
    found = next((c for c in obj["status"]["conditions"] if c["type"] == type_.value), None)
    assert found is not None, type_
    return f"{found['reason']}: {found['message']}" if found.get("message") else str(found["reason"])


def running(replicas: int, ready: int | None = None, current: bool = True) -> WorkloadObservation:
    ready = replicas if ready is None else ready
    return WorkloadObservation(
        replicas=replicas,
        ready_replicas=ready,
        updated_replicas=replicas,
        observed_generation_current=current,
    )


def settled(md: ModelDeployment, replicas: int) -> ModelDeploymentStatus:
    """The status of a model once its `replicas` instances all run the current spec."""
    first = reconciled(md)
    again = reconciled(md, running(replicas), previous=ModelDeploymentStatus.model_validate(first["status"]))
    return ModelDeploymentStatus.model_validate(again["status"])


def test_serving_models_are_healthy(argocd_health: ArgocdHealth) -> None:
    for replicas, reason in ((1, "Available"), (3, "Available"), (0, "ScaledToZero")):
        md = model(replicas=replicas)
        obj = manifest("ModelDeployment", settled(md, replicas).to_wire())
        ready = find_condition(
            ModelDeploymentStatus.model_validate(obj["status"]).conditions, ConditionType.READY
        )
        assert ready is not None and ready.reason == reason
        assert argocd_health("ModelDeployment", obj) == ("Healthy", ready.message), replicas


def test_a_ready_condition_without_message_gives_its_reason(argocd_health: ArgocdHealth) -> None:
    obj = written(condition("Ready", "True", "Available"), condition("Progressing", "False", "Reconciled"))
    assert argocd_health("ModelDeployment", obj) == ("Healthy", "Available")


@pytest.mark.parametrize(
    ("replicas", "workload"),
    [
        (1, None),  # the Deployment was just applied
        (2, running(2, ready=0)),  # no instance ready yet
        (2, running(2, ready=1)),  # one of two ready: Ready=True, reason InstancesStarting
        (2, running(2, current=False)),  # a new template, not yet observed by the Deployment controller
    ],
    ids=["applied", "none-ready", "half-ready", "new-template"],
)
def test_starting_and_rolling_models_are_progressing(
    argocd_health: ArgocdHealth, replicas: int, workload: WorkloadObservation | None
) -> None:
    md = model(replicas=replicas)
    obj = reconciled(md, workload, previous=ModelDeploymentStatus.model_validate(reconciled(md)["status"]))
    ready = find_condition(
        ModelDeploymentStatus.model_validate(obj["status"]).conditions, ConditionType.READY
    )
    assert ready is not None and ready.reason == "InstancesStarting"
    assert argocd_health("ModelDeployment", obj) == ("Progressing", described(obj, ConditionType.PROGRESSING))


def test_instances_starting_without_a_progressing_condition_is_progressing(
    argocd_health: ArgocdHealth,
) -> None:
    obj = written(condition("Ready", "False", "InstancesStarting", "0/2 instances ready"))
    assert argocd_health("ModelDeployment", obj) == ("Progressing", "InstancesStarting: 0/2 instances ready")


A100 = InferencePool.model_validate(
    {
        **POOL.model_dump(by_alias=True, exclude_none=True),
        "spec": {**POOL.spec.to_wire(), "accelerator": "A100-80GB"},
    }
)


@pytest.mark.parametrize(
    ("reason", "md", "pool"),
    [
        # Two whole nodes would hold it; a forced size narrower than a node keeps it on one.
        ("DoesNotFit", model(model={"name": "llama-3.1-405b"}, engine={"tensorParallel": 4}), POOL),
        ("PoolNotFound", model(), None),
        ("UnknownModel", model(model={"name": "llama-9"}), POOL),
        ("UnsupportedPrecision", model(precision="fp8"), A100),  # no FP8 units before Hopper
        ("ContextTooLong", model(maxModelLen=1_000_000), POOL),
    ],
    ids=["DoesNotFit", "PoolNotFound", "UnknownModel", "UnsupportedPrecision", "ContextTooLong"],
)
def test_specs_that_cannot_be_served_are_degraded(
    argocd_health: ArgocdHealth, reason: str, md: ModelDeployment, pool: InferencePool | None
) -> None:
    obj = reconciled(md, pool=pool)
    degraded = find_condition(
        ModelDeploymentStatus.model_validate(obj["status"]).conditions, ConditionType.DEGRADED
    )
    assert degraded is not None and (degraded.status, degraded.reason) == ("True", reason)
    assert argocd_health("ModelDeployment", obj) == ("Degraded", described(obj, ConditionType.DEGRADED))


def test_an_impossible_change_to_a_serving_model_is_degraded(argocd_health: ArgocdHealth) -> None:
    serving = settled(model(replicas=1), 1)
    changed = model(replicas=1, model={"name": "llama-3.1-405b"}, engine={"tensorParallel": 4})
    obj = reconciled(changed, running(1), previous=serving)
    # Ready says the old workload keeps serving; the health names what is wrong with the spec.
    assert "keeps serving" in described(obj, ConditionType.READY)
    assert argocd_health("ModelDeployment", obj) == ("Degraded", described(obj, ConditionType.DEGRADED))
    assert argocd_health("ModelDeployment", obj)[1].startswith("DoesNotFit: ")


@pytest.mark.parametrize("reason", ["TierCapped", "QuotaExceeded", "InsufficientCapacity", "Unschedulable"])
def test_a_model_kept_at_zero_by_a_limit_is_degraded(argocd_health: ArgocdHealth, reason: str) -> None:
    message = f"0 instances: 2 asked, 0 allowed ({reason})"
    obj = written(
        condition("Degraded", "False", "Reconciled"),
        condition("Ready", "False", reason, message),
        condition("Progressing", "False", "Reconciled", "workload matches the spec"),
    )
    assert argocd_health("ModelDeployment", obj) == ("Degraded", f"{reason}: {message}")


# What the rollout controller writes during a canary (docs/rollouts.md): the stable version keeps
# Ready=True Available while Progressing names the step.
@pytest.mark.parametrize(
    ("ready", "message"),
    [
        (
            condition("Ready", "True", "Available", "2/2 instances ready"),
            "step 1 of 3: 5% of traffic to the canary",
        ),
        (
            condition("Ready", "True", "Available", "2/2 instances ready"),
            "step 2 of 3: 25% of traffic to the canary, 140 of 100 requests served, holding 300 s",
        ),
        (
            condition("Ready", "True", "InstancesStarting", "2/3 instances ready"),
            "step 1 of 3: 5% of traffic to the canary, canary instance starting",
        ),
    ],
    ids=["first-step", "second-step", "canary-starting"],
)
def test_a_canary_step_is_progressing(
    argocd_health: ArgocdHealth, ready: dict[str, Any], message: str
) -> None:
    obj = written(
        condition("Degraded", "False", "Reconciled"),
        ready,
        condition("Progressing", "True", "CanaryStep", message),
    )
    assert argocd_health("ModelDeployment", obj) == ("Progressing", f"CanaryStep: {message}")


def test_the_operators_canary_statuses_read_as_progressing_then_degraded_or_healthy(
    argocd_health: ArgocdHealth,
) -> None:
    """The statuses `run_canary` writes: a step under way and a promotion are Progressing; a
    rollback is Degraded with its figures; the end of a promotion is Healthy."""

    def health(md: ModelDeployment) -> tuple[str, str]:
        assert md.status is not None
        return argocd_health(
            "ModelDeployment", manifest("ModelDeployment", md.status.to_wire(), generation=2)
        )

    new = canary_model("v2")
    out, md = canary_step(new, Held(STABLE), HEALTHY)
    state, message = health(md)
    assert state == "Progressing" and message.startswith("CanaryStep: canary revision"), message
    out, md = canary_step(md, Held(STABLE, deployment(out, "chat-canary")), HEALTHY, now=T0 + 61)
    assert health(md)[0] == "Progressing"
    _, rolled = canary_step(new, Held(STABLE), SLOW)
    state, message = health(rolled)
    assert state == "Degraded" and message.startswith("RolledBack: revision"), message
    assert "50% above the stable 100 ms" in message
    # Promoted: Progressing while the Deployment rolls, Healthy once the canary is gone.
    out, md = canary_step(md, Held(STABLE, deployment(out, "chat-canary")), HEALTHY, now=T0 + 200)
    assert md.status is not None and md.status.rollout is not None
    assert md.status.rollout.decision == "Promote" and health(md)[0] == "Progressing"
    canary = deployment(out, "chat-canary")
    _, md = canary_step(md, Held(held_from(new, updated=1), canary), now=T0 + 210)
    state, message = health(md)
    assert state == "Progressing" and message.startswith("Promoting:"), message
    _, done = canary_step(md, Held(held_from(new), canary), now=T0 + 300)
    _, done = canary_step(done, Held(held_from(new)), now=T0 + 310)
    assert health(done)[0] == "Healthy", health(done)


def test_a_rolled_back_canary_is_degraded_while_the_stable_version_serves(
    argocd_health: ArgocdHealth,
) -> None:
    message = "rolled back at step 2 of 3 (25%): error rate 3.10% over 200 requests exceeds 1%"
    obj = written(
        condition("Degraded", "True", "RolledBack", message),
        condition("Ready", "True", "Available", "2/2 instances ready"),
        condition("Progressing", "False", "RolledBack", "the stable version serves all traffic"),
    )
    assert argocd_health("ModelDeployment", obj) == ("Degraded", f"RolledBack: {message}")


@pytest.mark.parametrize(("kind", "noun"), [("ModelDeployment", "model"), ("InferencePool", "pool")])
def test_objects_not_reconciled_yet_are_progressing(
    argocd_health: ArgocdHealth, kind: str, noun: str
) -> None:
    waiting = ("Progressing", f"Waiting for gpupool to reconcile the {noun}")
    assert argocd_health(kind, manifest(kind, None)) == waiting
    assert argocd_health(kind, manifest(kind, {})) == waiting
    assert argocd_health(kind, manifest(kind, {"observedGeneration": GENERATION})) == waiting


@pytest.mark.parametrize("kind", ["ModelDeployment", "InferencePool"])
def test_a_spec_change_not_yet_observed_is_progressing(argocd_health: ArgocdHealth, kind: str) -> None:
    healthy = condition("Ready", "True", "Available" if kind == "ModelDeployment" else "NodesFound", "ready")
    status = {"observedGeneration": GENERATION - 1, "conditions": [healthy]}
    observing = ("Progressing", f"Waiting for gpupool to observe generation {GENERATION}")
    assert argocd_health(kind, manifest(kind, status)) == observing
    # A status written before the operator recorded observedGeneration at all.
    assert argocd_health(kind, manifest(kind, {"conditions": [healthy]})) == observing
    assert argocd_health(kind, manifest(kind, {**status, "observedGeneration": GENERATION}))[0] == "Healthy"


def test_a_ready_condition_of_unknown_status_is_progressing(argocd_health: ArgocdHealth) -> None:
    md = written(condition("Ready", "Unknown", "InstancesStarting", "the Deployment reports no status yet"))
    assert argocd_health("ModelDeployment", md) == (
        "Progressing",
        "InstancesStarting: the Deployment reports no status yet",
    )
    pool = manifest("InferencePool", md["status"])
    assert argocd_health("InferencePool", pool) == ("Progressing", described(pool, ConditionType.READY))


def node(name: str, gpus: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"gpu-type": "nvidia"}},
        "spec": {},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "96"} if gpus else {"cpu": "96"}},
    }


@pytest.mark.parametrize(
    ("nodes", "reason", "health"),
    [
        ([node("a", 8), node("b", 8)], "NodesFound", "Healthy"),
        ([], "NoNodesMatch", "Degraded"),
        ([node("a", 0)], "NoAcceleratorResource", "Degraded"),
    ],
    ids=["nodes", "no-nodes", "no-accelerators"],
)
def test_pools_as_the_operator_reports_them(
    argocd_health: ArgocdHealth, nodes: list[dict[str, Any]], reason: str, health: str
) -> None:
    status = pool_status(POOL, nodes, [], NOW).to_wire()
    obj = manifest("InferencePool", status, generation=2)
    assert argocd_health("InferencePool", obj) == (health, described(obj, ConditionType.READY))
    assert described(obj, ConditionType.READY).startswith(f"{reason}: ")


def test_a_pool_status_without_ready_is_progressing(argocd_health: ArgocdHealth) -> None:
    obj = manifest("InferencePool", {"observedGeneration": GENERATION, "conditions": []})
    assert argocd_health("InferencePool", obj) == ("Progressing", "Waiting for gpupool to reconcile the pool")


@pytest.mark.parametrize("kind", ["ModelDeployment", "InferencePool"])
def test_objects_being_deleted_are_progressing_before_any_script_runs(
    argocd_health: ArgocdHealth, kind: str
) -> None:
    """gitops-engine's GetResourceHealth answers for a deleted object itself, unless Argo CD's hook
    finalizer holds it; then the script decides."""
    degraded = {"observedGeneration": GENERATION, "conditions": [condition("Ready", "False", "NoNodesMatch")]}
    obj = manifest(kind, degraded)
    obj["metadata"]["deletionTimestamp"] = LATER
    obj["metadata"]["finalizers"] = ["example.com/cleanup"]
    assert argocd_health(kind, obj) == ("Progressing", "Pending deletion")
    obj["metadata"]["finalizers"] = ["argocd.argoproj.io/hook-finalizer"]
    assert argocd_health(kind, obj) == ("Degraded", "NoNodesMatch")


# The runtime itself: what separates Argo CD's gopher-lua from a plain Lua 5.1.


def test_scripts_from_argocd_cm_have_no_string_library(argocd_lua: str, tmp_path: Path) -> None:
    script = tmp_path / "health.lua"
    script.write_text('return {status = "Healthy", message = string.format("%d ready", 2)}\n')
    code, health = run_health_script(argocd_lua, script, manifest("ModelDeployment", None))
    assert code == 2 and health["status"] == "Unknown"
    assert "format" in health["message"]
    assert run_health_script(argocd_lua, script, {}, open_libs=True) == (
        0,
        {"status": "Healthy", "message": "2 ready"},
    )


@pytest.mark.parametrize(
    ("body", "code", "health"),
    [
        (
            'return {status = "Fine"}',
            0,
            {"status": "Unknown", "message": "Lua returned an invalid health status"},
        ),
        ("return {}", 0, {}),
        ("return nil", 0, {}),
        (
            'return "Healthy"',
            2,
            {"status": "Unknown", "message": "expect table output from Lua script, not string"},
        ),
        # Numbers from the object are Lua numbers; whole ones concatenate without a fraction.
        (
            'return {status = "Healthy", message = "generation " .. obj.metadata.generation}',
            0,
            {"status": "Healthy", "message": f"generation {GENERATION}"},
        ),
        # The safe os library is reachable through require only (Argo CD registers its global under "table").
        (
            'local os = require("os"); return {status = "Healthy", message = os.date("!%Y", 0)}',
            0,
            {"status": "Healthy", "message": "1970"},
        ),
    ],
    ids=["invalid-status", "empty-table", "nil", "string", "number", "require-os"],
)
def test_how_argocd_reads_a_script_result(
    argocd_lua: str, tmp_path: Path, body: str, code: int, health: dict[str, str]
) -> None:
    script = tmp_path / "health.lua"
    script.write_text(body + "\n")
    assert run_health_script(argocd_lua, script, manifest("ModelDeployment", None)) == (code, health)


def test_a_script_that_does_not_finish_is_stopped_after_a_second(argocd_lua: str, tmp_path: Path) -> None:
    script = tmp_path / "health.lua"
    script.write_text("while true do end\n")
    code, health = run_health_script(argocd_lua, script, {})
    assert (code, health["status"]) == (2, "Unknown")
    assert "context deadline exceeded" in health["message"]


def test_every_script_is_tested_here() -> None:
    assert sorted(p.parent.name for p in HEALTH_SCRIPTS.glob("*/health.lua")) == [
        "InferencePool",
        "ModelDeployment",
    ]
