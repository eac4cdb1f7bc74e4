"""Run a canary: a new version of a model beside the stable one, its instances and its traffic
following `spec.rollout.steps`, then promoted or rolled back.

Pure. `decide` renders the objects of the spec as it is now, its Deployment running the new
version; `run_canary` turns that outcome into the objects of where the rollout stands, from what
the cluster holds (`Held`: the model's Deployment and its canary Deployment) and what the
analysis measured of the step (`gpupool.services.rollout.decide_canary` judges it):

- A version is what the pods' engine runs, `gpupool.io/revision` on their template
  (`gpupool.render.workload.engine_revision`). The stable version is the one the model's
  Deployment holds; the spec's is the new one.
- While a canary runs, the model's Deployment keeps the stable template it holds, scaled to what
  the stable share of the traffic needs (never below it: ceil(N x (100 - w) / 100) of the N
  instances the model is sized or scaled for), and a second Deployment, `<name>-canary`, runs the
  new version on ceil(N x w / 100) instances, at least one. With an HTTPRoute the split is exact:
  the route's backends are two Services, `<name>-stable` and `<name>-canary`, each selecting one
  revision, weighted 100 - w and w. Without one the model's Service spreads requests over every
  instance, so the canary's share is its share of the instances, and the status says so.
- Promotion gives the model's Deployment the new template (its own rolling update); the canary
  Deployment keeps serving until every instance of it is updated and ready, then goes.
- A rollback puts the model's Deployment back to the stable template at N instances and removes
  the canary; the rolled-back version is not tried again until the spec changes (or, after an
  abort, until `abort` is cleared).
- A route whose Gateway does not exist holds the canary at its step (the route is what carries
  the split); `abort` still rolls it back.
- A pool that names no Prometheus has nothing to analyse a canary with: the new version rolls in
  place (`no_analysis` says why). A canary covers one pool's Deployment of a vLLM model without a
  weights cache; other models roll in place by `RollingUpdate`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from gpupool.api.conditions import (
    ConditionStatus,
    ConditionType,
    Reason,
    find_condition,
    set_condition,
)
from gpupool.api.rollout import CanaryAnalysisStatus, RolloutStatus, RolloutStrategy
from gpupool.api.v1alpha1 import EngineType, ModelDeployment
from gpupool.render import labels as lbl
from gpupool.render.workload import rollout_strategy, workload_name
from gpupool.services.modeldeployment import EventRecord, ModelOutcome
from gpupool.services.rollout import CanaryAction, CanaryDecision, CanaryState, StepMeasurement, decide_canary

Obj = dict[str, Any]

CANARY_SUFFIX = "canary"
STABLE_SUFFIX = "stable"
# Seconds between a running canary's passes: each reads the step's figures again.
PASS_SECONDS = 10.0

SPLIT_ROUTE = "HTTPRoute"
SPLIT_INSTANCES = "Instances"
PROMOTING = "Promoting"
ROLLED_BACK = "RolledBack"
IN_PLACE = "InPlace"


@dataclass(frozen=True)
class Held:
    """What the API server holds of the model's workloads (None: absent)."""

    stable: Obj | None = None  # the model's Deployment
    canary: Obj | None = None  # its canary Deployment


@dataclass(frozen=True)
class Analysed:
    """The two versions whose step the analysis measures, and since when (seconds)."""

    stable_revision: str
    canary_revision: str
    since: float


def revision_of(deployment: Obj | None) -> str | None:
    """The version a Deployment's pods run (`gpupool.io/revision` on its template)."""
    if deployment is None:
        return None
    template = (deployment.get("spec") or {}).get("template") or {}
    value = ((template.get("metadata") or {}).get("labels") or {}).get(lbl.REVISION_LABEL)
    return str(value) if value else None


def canary_name(md_name: str) -> str:
    return lbl.object_name(workload_name(md_name), CANARY_SUFFIX)


def service_name(md_name: str, suffix: str) -> str:
    return lbl.object_name(md_name, suffix)


def _rfc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _seconds(rfc: str | None) -> float | None:
    if not rfc:
        return None
    try:
        return datetime.fromisoformat(rfc.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _main(md: ModelDeployment, outcome: ModelOutcome) -> Obj | None:
    name = workload_name(str(md.metadata.get("name", "")))
    return next(
        (o for o in outcome.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name), None
    )


def not_covered(md: ModelDeployment, outcome: ModelOutcome) -> str | None:
    """Why the model rolls a new version in place rather than by a canary; None: a canary runs."""
    spec = md.spec
    if spec.rollout.strategy is not RolloutStrategy.CANARY:
        return f"rollout.strategy is {spec.rollout.strategy.value}"
    if spec.pools:
        return "a canary covers a model of one pool"
    if spec.engine.type is not EngineType.VLLM:
        return "a canary is analysed from vLLM's metrics"
    if spec.weights is not None and spec.weights.cache is not None:
        return "a canary does not run beside a weights cache's download"
    if any(o["kind"] == "LeaderWorkerSet" for o in outcome.objects) or _main(md, outcome) is None:
        return "a canary covers a model whose instances are Deployments"
    return None


def _previous(md: ModelDeployment) -> RolloutStatus | None:
    return md.status.rollout if md.status is not None else None


def _retry_allowed(md: ModelDeployment, previous: RolloutStatus, revision: str) -> bool:
    """Whether a rolled-back `revision` may be tried again: only after an abort that is cleared."""
    if previous.rolled_back_revision != revision:
        return True
    return previous.rolled_back_by_abort and not md.spec.rollout.abort


def analysed(md: ModelDeployment, outcome: ModelOutcome, held: Held, now: float) -> Analysed | None:
    """The versions whose current step the analysis must measure; None when no canary step runs."""
    if not outcome.apply or not_covered(md, outcome) is not None:
        return None
    new, stable = revision_of(_main(md, outcome)), revision_of(held.stable)
    if new is None or stable is None or new == stable:
        return None
    previous = _previous(md)
    if previous is not None and not _retry_allowed(md, previous, new):
        return None
    since = None
    if previous is not None and previous.canary_revision == new and previous.decision != ROLLED_BACK:
        since = _seconds(previous.step_started_at)
    return Analysed(stable, new, now if since is None else since)


def run_canary(
    md: ModelDeployment,
    outcome: ModelOutcome,
    held: Held,
    measured: StepMeasurement | None,
    now: float,
    *,
    no_analysis: str | None = None,
    unmeasured: str | None = None,
) -> ModelOutcome:
    """The outcome for where the model's rollout stands (see the module's docs). `no_analysis`
    says why the new version rolls in place; `unmeasured`, why the step could not be measured."""
    previous = _previous(md)
    if not outcome.apply:
        # Nothing is applied: what runs keeps running, and so does the record of the rollout.
        return replace(outcome, status=outcome.status.model_copy(update={"rollout": previous}))
    main = _main(md, outcome)
    new = revision_of(main)
    if main is None or new is None or not_covered(md, outcome) is not None:
        return outcome
    stable = revision_of(held.stable)
    if held.stable is None or stable is None:
        # A new model, or pods from before versions were labelled: nothing to run beside.
        return _with(outcome, RolloutStatus(stable_revision=new))
    if stable == new:
        return _settled(md, outcome, held, main, new, previous, now)
    if no_analysis is not None:
        rollout = RolloutStatus(
            stable_revision=stable,
            canary_revision=new,
            decision=IN_PLACE,
            message=f"revision {new} rolls out in place: {no_analysis}",
        )
        return _with(outcome, rollout)
    if previous is not None and not _retry_allowed(md, previous, new):
        return _rolled_back(md, outcome, held, main, previous, None, now)
    begun = previous is not None and previous.canary_revision == new and previous.decision != ROLLED_BACK
    started = _seconds(previous.step_started_at) if begun and previous is not None else None
    state = (
        CanaryState(previous.step or 0, started) if begun and previous and started else CanaryState(0, now)
    )
    routed = find_condition(outcome.status.conditions, ConditionType.ROUTED)
    if routed is not None and routed.reason == Reason.GATEWAY_NOT_FOUND:
        # The route carries the split: without its Gateway the step is not judged.
        measured, unmeasured = None, f"the canary waits for its route: {routed.message}"
    decision = decide_canary(md.spec.rollout, state, measured or StepMeasurement(), now)
    if unmeasured is not None and decision.action is CanaryAction.HOLD:
        decision = replace(decision, reason=f"{decision.reason} ({unmeasured})")
    analysis = _analysis(md, measured)
    if decision.action is CanaryAction.ROLLBACK:
        rollout = RolloutStatus(
            stable_revision=stable,
            canary_revision=new,
            step=state.step,
            weight=0,
            analysis=analysis,
            decision=ROLLED_BACK,
            message=decision.reason,
            rolled_back_revision=new,
            rolled_back_by_abort=md.spec.rollout.abort,
        )
        return _rolled_back(md, outcome, held, main, rollout, decision.reason, now)
    if decision.action is CanaryAction.PROMOTE:
        rollout = RolloutStatus(
            stable_revision=stable,
            canary_revision=new,
            step=decision.state.step,
            step_started_at=_rfc(now),
            weight=100,
            analysis=analysis,
            decision=CanaryAction.PROMOTE.value,
            message=decision.reason,
        )
        objects = list(outcome.objects)
        if held.canary is not None:
            objects.append(_canary(md, main, int(held.canary.get("spec", {}).get("replicas") or 0), new))
        message = f"revision {new} is promoted: {decision.reason}"
        outcome = _conditions(
            md, outcome, now, ConditionType.PROGRESSING, ConditionStatus.TRUE, Reason.PROMOTING, message
        )
        events = [*outcome.events, EventRecord("Normal", "Promoted", message)]
        return replace(_with(outcome, rollout), objects=objects, events=events, requeue_after=PASS_SECONDS)
    return _split(md, outcome, held, main, (stable, new), decision, analysis, now)


def _with(outcome: ModelOutcome, rollout: RolloutStatus | None) -> ModelOutcome:
    return replace(outcome, status=outcome.status.model_copy(update={"rollout": rollout}))


def _conditions(
    md: ModelDeployment,
    outcome: ModelOutcome,
    now: float,
    type_: ConditionType,
    status: ConditionStatus,
    reason: Reason,
    message: str,
) -> ModelOutcome:
    """The outcome with one condition set; its transition time is the previous status's when the
    status is the same there (the decision set it otherwise a moment ago), so that a pass that
    finds the rollout where it was writes nothing."""
    generation = md.metadata.get("generation")
    conditions = set_condition(
        outcome.status.conditions, type_, status, reason, message, generation, _rfc(now)
    )
    before = find_condition(md.status.conditions if md.status else [], type_)
    if before is not None and before.status == status:
        conditions = [
            c.model_copy(update={"last_transition_time": before.last_transition_time})
            if c.type == type_.value
            else c
            for c in conditions
        ]
    return replace(outcome, status=outcome.status.model_copy(update={"conditions": conditions}))


def _analysis(md: ModelDeployment, measured: StepMeasurement | None) -> CanaryAnalysisStatus:
    limits = md.spec.rollout.analysis
    m = measured or StepMeasurement()
    rate = None
    if m.canary_requests and m.canary_errors is not None:
        rate = round(100.0 * m.canary_errors / m.canary_requests, 3)
    stable = m.stable_ttft_p99_seconds
    ceiling = None if stable is None else round(stable * (1 + limits.max_ttft_p99_increase_percent / 100), 4)
    return CanaryAnalysisStatus(
        canary_requests=m.canary_requests,
        canary_error_rate_percent=rate,
        canary_ttft_p99_seconds=None
        if m.canary_ttft_p99_seconds is None
        else round(m.canary_ttft_p99_seconds, 4),
        stable_ttft_p99_seconds=None if stable is None else round(stable, 4),
        max_error_rate_percent=limits.max_error_rate_percent,
        max_ttft_p99_seconds=ceiling,
    )


def _stable(main: Obj, held: Obj, replicas: int) -> Obj:
    """The model's Deployment as rendered, but with the template the cluster holds (the stable
    version) and `replicas` instances."""
    stable = copy.deepcopy(main)
    template = copy.deepcopy(held["spec"]["template"])
    template.get("metadata", {}).pop("creationTimestamp", None)
    stable["spec"]["template"] = template
    stable["spec"]["replicas"] = replicas
    stable["spec"]["strategy"] = rollout_strategy(replicas)
    return stable


def _canary(md: ModelDeployment, main: Obj, replicas: int, revision: str) -> Obj:
    """The new version's Deployment: the rendered one under the canary's name, selecting its
    own revision's pods."""
    canary = copy.deepcopy(main)
    canary["metadata"]["name"] = canary_name(str(md.metadata["name"]))
    selector = canary["spec"]["selector"]["matchLabels"]
    canary["spec"]["selector"]["matchLabels"] = dict(
        sorted({**selector, lbl.REVISION_LABEL: revision}.items())
    )
    canary["spec"]["replicas"] = replicas
    canary["spec"]["strategy"] = rollout_strategy(replicas)
    return canary


def counts(instances: int, weight: int) -> tuple[int, int]:
    """(stable, canary) instances for a canary weight: the stable version keeps what its share of
    the traffic needs, the canary at least one."""
    if instances <= 0:
        return 0, 0
    stable = math.ceil(instances * (100 - weight) / 100)
    return stable, max(1, math.ceil(instances * weight / 100))


def _route_split(
    md: ModelDeployment, objects: list[Obj], stable: str, new: str, weight: int
) -> list[Obj] | None:
    """The objects with the route's one Service backend split into the two versions' Services, or
    None when there is no such route (no Gateway, or a backend that is not the model's Service)."""
    name = str(md.metadata["name"])
    route = next((o for o in objects if o["kind"] == "HTTPRoute"), None)
    service = next(
        (o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == lbl.object_name(name)),
        None,
    )
    if route is None or service is None:
        return None
    rules = route["spec"].get("rules") or []
    if not rules or any(
        [b.get("kind", "Service") for b in r.get("backendRefs") or []] != ["Service"] for r in rules
    ):
        return None
    split = []
    for suffix, revision in ((STABLE_SUFFIX, stable), (CANARY_SUFFIX, new)):
        version = copy.deepcopy(service)
        version["metadata"]["name"] = service_name(name, suffix)
        version["spec"]["selector"] = dict(
            sorted({**service["spec"]["selector"], lbl.REVISION_LABEL: revision}.items())
        )
        split.append(version)
    route = copy.deepcopy(route)
    for rule in route["spec"]["rules"]:
        [backend] = rule["backendRefs"]
        rule["backendRefs"] = [
            {**backend, "name": split[0]["metadata"]["name"], "weight": 100 - weight},
            {**backend, "name": split[1]["metadata"]["name"], "weight": weight},
        ]
    return [route if o["kind"] == "HTTPRoute" else o for o in objects] + split


def _split(
    md: ModelDeployment,
    outcome: ModelOutcome,
    held: Held,
    main: Obj,
    revisions: tuple[str, str],
    decision: CanaryDecision,
    analysis: CanaryAnalysisStatus,
    now: float,
) -> ModelOutcome:
    """Both versions running, their instances and traffic at the step's weight."""
    assert held.stable is not None
    stable_revision, new = revisions
    state, weight, reason = decision.state, decision.weight, decision.reason
    instances = int(main["spec"].get("replicas") or 0)
    stable_n, canary_n = counts(instances, weight)
    objects = [_stable(main, held.stable, stable_n) if o is main else o for o in outcome.objects] + [
        _canary(md, main, canary_n, new)
    ]
    routed = _route_split(md, objects, stable_revision, new, weight)
    if routed is not None:
        objects, split = routed, SPLIT_ROUTE
        share = f"HTTPRoute weights {100 - weight}/{weight}"
    else:
        split = SPLIT_INSTANCES
        approx = round(100 * canary_n / max(1, stable_n + canary_n))
        share = (
            f"no HTTPRoute: the Service spreads requests over every instance, so the canary gets "
            f"about {approx}% of them (its share of the instances), not exactly {weight}%"
        )
    previous = _previous(md)
    rollout = RolloutStatus(
        stable_revision=stable_revision,
        canary_revision=new,
        step=state.step,
        step_started_at=_rfc(state.since),
        weight=weight,
        split=split,
        stable_instances=stable_n,
        canary_instances=canary_n,
        analysis=analysis,
        decision=decision.action.value,
        message=reason,
    )
    message = (
        f"canary revision {new} at {weight}% ({canary_n} canary, {stable_n} stable instances; "
        f"{share}): {reason}"
    )
    outcome = _conditions(
        md, outcome, now, ConditionType.PROGRESSING, ConditionStatus.TRUE, Reason.CANARY_STEP, message
    )
    events = list(outcome.events)
    if previous is None or previous.canary_revision != new or previous.decision == ROLLED_BACK:
        events.append(
            EventRecord("Normal", "CanaryStarted", f"revision {new} beside {stable_revision}: {message}")
        )
    elif previous.step != state.step:
        events.append(EventRecord("Normal", Reason.CANARY_STEP.value, message))
    return replace(_with(outcome, rollout), objects=objects, events=events, requeue_after=PASS_SECONDS)


def _rolled_back(
    md: ModelDeployment,
    outcome: ModelOutcome,
    held: Held,
    main: Obj,
    rollout: RolloutStatus,
    reason: str | None,
    now: float,
) -> ModelOutcome:
    """The stable version serving everything; `reason` is the breach when the rollback is this
    pass's decision (an event says it), None when it is an earlier one's."""
    assert held.stable is not None
    instances = int(main["spec"].get("replicas") or 0)
    objects = [_stable(main, held.stable, instances) if o is main else o for o in outcome.objects]
    fix = (
        "clear rollout.abort to try it again"
        if rollout.rolled_back_by_abort
        else "change the spec (the weights' revision, image or engine arguments) to roll out another version"
    )
    why = reason if reason is not None else (rollout.message or "")
    message = (
        f"revision {rollout.rolled_back_revision} was rolled back ({why}); revision "
        f"{rollout.stable_revision} serves all traffic: {fix}"
    )
    outcome = _conditions(
        md, outcome, now, ConditionType.DEGRADED, ConditionStatus.TRUE, Reason.ROLLED_BACK, message
    )
    outcome = _conditions(
        md, outcome, now, ConditionType.PROGRESSING, ConditionStatus.FALSE, Reason.ROLLED_BACK, message
    )
    events = list(outcome.events)
    if reason is not None:
        events.append(EventRecord("Warning", Reason.ROLLED_BACK.value, message))
    return replace(_with(outcome, rollout), objects=objects, events=events)


def _settled(
    md: ModelDeployment,
    outcome: ModelOutcome,
    held: Held,
    main: Obj,
    revision: str,
    previous: RolloutStatus | None,
    now: float,
) -> ModelOutcome:
    """The model's Deployment runs the spec's version: a promotion finishing (the canary serves
    until every instance of the Deployment is updated and ready), or nothing to roll out."""
    instances = int(main["spec"].get("replicas") or 0)
    if (
        held.canary is not None
        and revision_of(held.canary) == revision
        and not _updated(held.stable, instances)
    ):
        serving = int(held.canary.get("spec", {}).get("replicas") or 0)
        objects = [*outcome.objects, _canary(md, main, serving, revision)]
        status = (held.stable or {}).get("status") or {}
        message = (
            f"revision {revision} is promoted: {status.get('updatedReplicas', 0)} of {instances} instances "
            f"of the Deployment updated, {status.get('readyReplicas', 0)} ready; the canary's {serving} "
            "serve until it is done"
        )
        rollout = RolloutStatus(
            stable_revision=previous.stable_revision if previous else None,
            canary_revision=revision,
            weight=100,
            canary_instances=serving,
            stable_instances=instances,
            decision=PROMOTING,
            message=message,
            step_started_at=previous.step_started_at if previous else None,
            step=previous.step if previous else None,
        )
        outcome = _conditions(
            md, outcome, now, ConditionType.PROGRESSING, ConditionStatus.TRUE, Reason.PROMOTING, message
        )
        return replace(_with(outcome, rollout), objects=objects, requeue_after=PASS_SECONDS)
    events = list(outcome.events)
    if previous is not None and previous.decision in (CanaryAction.PROMOTE.value, PROMOTING):
        events.append(EventRecord("Normal", "RolloutComplete", f"revision {revision} serves all traffic"))
    return replace(_with(outcome, RolloutStatus(stable_revision=revision)), events=events)


def _updated(deployment: Obj | None, replicas: int) -> bool:
    """Whether every instance of the Deployment runs its current template and is ready."""
    if deployment is None:
        return False
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    return (
        status.get("observedGeneration", 0) >= generation
        and int(status.get("updatedReplicas", 0) or 0) >= replicas
        and int(status.get("readyReplicas", 0) or 0) >= replicas
        and int(status.get("replicas", 0) or 0) == replicas
    )
