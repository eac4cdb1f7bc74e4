"""A canary's objects, status and events from the decided outcome, what the cluster holds and what
the analysis measured (gpupool.services.canary)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from canary_passes import HEALTHY, NOW, OLD, SLOW, STABLE, T0, deployment, held_from, model, outcome_of, step
from gpupool.api.conditions import ConditionType, Reason, find_condition
from gpupool.render.labels import REVISION_LABEL
from gpupool.services.canary import (
    PASS_SECONDS,
    Held,
    analysed,
    canary_name,
    counts,
    not_covered,
    revision_of,
    run_canary,
)
from gpupool.services.modeldeployment import ModelOutcome
from gpupool.services.traffic import route_of, routed_status

ROLLOUT_EVENTS = {"CanaryStarted", "CanaryStep", "Promoted", "RolloutComplete", "RolledBack"}


def rollout_events(out: ModelOutcome) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in out.events if e.reason in ROLLOUT_EVENTS]


def condition(out: ModelOutcome, type_: ConditionType) -> tuple[str, str]:
    found = find_condition(out.status.conditions, type_)
    assert found is not None
    return found.status.value, found.reason


def test_the_pods_carry_what_their_engine_runs() -> None:
    old, new = revision_of(STABLE), revision_of(deployment(outcome_of(model("v2"))))
    assert old and new and old != new
    # The instance count is not a new version.
    assert revision_of(deployment(outcome_of(model("v1", replicas=7)))) == old


def test_a_new_model_runs_no_canary() -> None:
    out, _ = step(OLD, Held())
    assert [o["metadata"]["name"] for o in out.objects if o["kind"] == "Deployment"] == ["chat"]
    assert out.status.rollout is not None and out.status.rollout.stable_revision == revision_of(STABLE)
    assert out.requeue_after is None


def test_a_new_revision_starts_a_canary_beside_the_stable_deployment() -> None:
    new = model("v2")
    assert analysed(new, outcome_of(new), Held(STABLE), T0) is not None
    out, _ = step(new, Held(STABLE))
    stable, canary = deployment(out), deployment(out, canary_name("chat"))
    # The stable Deployment keeps its template, at what 95% of the traffic needs (ceil 3.8 = 4).
    assert stable["spec"]["template"] == STABLE["spec"]["template"]
    assert stable["spec"]["replicas"] == 4
    assert canary["spec"]["replicas"] == 1
    assert revision_of(canary) == revision_of(deployment(outcome_of(new)))
    assert canary["spec"]["selector"]["matchLabels"][REVISION_LABEL] == revision_of(canary)
    rollout = out.status.rollout
    assert rollout is not None
    assert (rollout.step, rollout.weight, rollout.split, rollout.decision) == (0, 5, "Instances", "Hold")
    assert "about 20%" in (find_condition(out.status.conditions, ConditionType.PROGRESSING) or {}).message  # type: ignore[union-attr]
    assert condition(out, ConditionType.PROGRESSING) == ("True", Reason.CANARY_STEP.value)
    assert rollout_events(out) == [("Normal", "CanaryStarted")]
    assert out.requeue_after == PASS_SECONDS


def test_a_route_splits_the_traffic_exactly_over_two_services() -> None:
    routing = {"parentRefs": [{"name": "public"}]}
    new = model("v2", routing=routing)
    out, _ = step(new, Held(STABLE))
    route = next(o for o in out.objects if o["kind"] == "HTTPRoute")
    backends = route["spec"]["rules"][0]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in backends] == [("chat-stable", 95), ("chat-canary", 5)]
    services = {o["metadata"]["name"]: o for o in out.objects if o["kind"] == "Service"}
    assert services["chat-stable"]["spec"]["selector"][REVISION_LABEL] == revision_of(STABLE)
    assert services["chat-canary"]["spec"]["selector"][REVISION_LABEL] == revision_of(
        deployment(out, "chat-canary")
    )
    assert REVISION_LABEL not in services["chat"]["spec"]["selector"]  # the model's Service spans both
    assert out.status.rollout is not None and out.status.rollout.split == "HTTPRoute"


def test_healthy_steps_move_on_and_promote_then_the_canary_goes() -> None:
    new = model("v2")
    out, md = step(new, Held(STABLE), HEALTHY)
    canary = deployment(out, "chat-canary")
    assert out.status.rollout is not None and out.status.rollout.decision == "Wait"  # 0 of 60 s
    out, md = step(md, Held(STABLE, canary), HEALTHY, now=T0 + 61)
    assert out.status.rollout is not None
    assert (out.status.rollout.step, out.status.rollout.weight, out.status.rollout.decision) == (
        1,
        25,
        "Step",
    )
    assert [e.reason for e in out.events] == [Reason.CANARY_STEP.value]
    # The step's clock restarts: 25% waits its own minimum time.
    out, md = step(md, Held(STABLE, deployment(out, "chat-canary")), HEALTHY, now=T0 + 90)
    assert out.status.rollout is not None and out.status.rollout.decision == "Wait"
    out, md = step(md, Held(STABLE, deployment(out, "chat-canary")), HEALTHY, now=T0 + 130)
    assert out.status.rollout is not None and out.status.rollout.decision == "Promote"
    assert deployment(out)["spec"]["template"] == deployment(outcome_of(new))["spec"]["template"]
    assert [e.reason for e in out.events] == ["Promoted"]
    canary = deployment(out, "chat-canary")
    # The Deployment rolls to the new version; the canary serves until it is done.
    rolling = held_from(new, updated=2)
    out, md = step(md, Held(rolling, canary), now=T0 + 140)
    assert out.status.rollout is not None and out.status.rollout.decision == "Promoting"
    assert deployment(out, "chat-canary")["spec"]["replicas"] == canary["spec"]["replicas"]
    out, md = step(md, Held(held_from(new), canary), now=T0 + 200)
    assert [o["metadata"]["name"] for o in out.objects if o["kind"] == "Deployment"] == ["chat"]
    assert out.status.rollout is not None and out.status.rollout.decision is None
    assert [e.reason for e in out.events] == ["RolloutComplete"]


def test_a_slow_canary_is_rolled_back_and_stays_so_without_new_writes() -> None:
    new = model("v2")
    out, md = step(new, Held(STABLE), SLOW)
    assert out.status.rollout is not None and out.status.rollout.decision == "RolledBack"
    assert [o["metadata"]["name"] for o in out.objects if o["kind"] == "Deployment"] == ["chat"]
    stable = deployment(out)
    assert stable["spec"]["template"] == STABLE["spec"]["template"] and stable["spec"]["replicas"] == 4
    assert condition(out, ConditionType.DEGRADED) == ("True", Reason.ROLLED_BACK.value)
    degraded = find_condition(out.status.conditions, ConditionType.DEGRADED)
    assert degraded is not None and "150 ms is 50% above the stable 100 ms" in degraded.message
    assert rollout_events(out) == [("Warning", Reason.ROLLED_BACK.value)]
    # Later passes: the same objects and status, no event, no new attempt.
    again, _ = step(md, Held(stable), HEALTHY, now=T0 + 100)
    assert again.events == [] and again.objects == out.objects
    assert again.status.to_wire() == out.status.to_wire()
    assert analysed(md, outcome_of(md), Held(stable), T0 + 100) is None
    # A new revision is a new attempt.
    newer = model("v3", status=md.status)
    out, _ = step(newer, Held(stable))
    assert out.status.rollout is not None and out.status.rollout.decision == "Hold"


def test_abort_rolls_back_and_clearing_it_tries_again() -> None:
    out, md = step(model("v2", rollout={"abort": True}), Held(STABLE))
    assert out.status.rollout is not None and out.status.rollout.rolled_back_by_abort
    assert (
        "clear rollout.abort" in (find_condition(out.status.conditions, ConditionType.DEGRADED) or {}).message
    )  # type: ignore[union-attr]
    cleared = model("v2", status=md.status)
    out, _ = step(cleared, Held(STABLE))
    assert out.status.rollout is not None and out.status.rollout.decision == "Hold"
    assert condition(out, ConditionType.DEGRADED) == ("False", Reason.RECONCILED.value)


def test_paused_holds_the_step() -> None:
    out, md = step(model("v2"), Held(STABLE), HEALTHY)
    paused = model(
        "v2", status=md.status, rollout={"minStepSeconds": 60, "minStepRequests": 100, "paused": True}
    )
    out, _ = step(paused, Held(STABLE, deployment(out, "chat-canary")), HEALTHY, now=T0 + 600)
    assert out.status.rollout is not None
    assert (out.status.rollout.step, out.status.rollout.decision) == (0, "Hold")


def test_without_prometheus_or_another_strategy_the_version_rolls_in_place() -> None:
    out, _ = step(model("v2"), Held(STABLE), no_analysis="pool h100 names no spec.prometheus")
    assert deployment(out)["spec"]["template"] == deployment(outcome_of(model("v2")))["spec"]["template"]
    assert not any(o["metadata"]["name"] == "chat-canary" for o in out.objects)
    assert out.status.rollout is not None and out.status.rollout.decision == "InPlace"
    rolling = model("v2", rollout={"strategy": "RollingUpdate"})
    assert not_covered(rolling, outcome_of(rolling)) == "rollout.strategy is RollingUpdate"
    out, _ = step(rolling, Held(STABLE))
    assert out.status.rollout is None and out.requeue_after is None


def test_an_unreachable_prometheus_holds_with_the_reason() -> None:
    out, _ = step(model("v2"), Held(STABLE), unmeasured="Prometheus at http://p cannot be queried")
    assert out.status.rollout is not None and out.status.rollout.decision == "Hold"
    assert "cannot be queried" in (out.status.rollout.message or "")


def test_a_pass_within_a_step_moves_no_condition_and_posts_nothing() -> None:
    out, md = step(model("v2"), Held(STABLE), HEALTHY)
    held = Held(STABLE, deployment(out, "chat-canary"))
    again, _ = step(md, held, HEALTHY, now=T0 + 5)
    assert again.events == []
    assert again.objects == out.objects

    def states(o: ModelOutcome) -> list[tuple[str, str, str, str]]:
        return [(c.type, c.status.value, c.reason, c.last_transition_time) for c in o.status.conditions]

    assert states(again) == states(out)
    assert again.status.rollout is not None and out.status.rollout is not None
    assert again.status.rollout.step_started_at == out.status.rollout.step_started_at


@given(st.integers(0, 200), st.integers(1, 99))
def test_the_stable_version_keeps_what_its_traffic_needs(instances: int, weight: int) -> None:
    stable, canary = counts(instances, weight)
    if instances == 0:
        assert (stable, canary) == (0, 0)
        return
    assert stable * 100 >= instances * (100 - weight)
    assert canary >= 1 and canary * 100 >= instances * weight
    assert stable + canary <= instances + 2


def test_a_route_to_a_missing_gateway_holds_the_canary() -> None:
    new = model("v2", routing={"parentRefs": [{"name": "public"}]})
    decided = outcome_of(new)
    routed = routed_status(
        decided.status, route_of(decided.objects), served=True, missing=[("team-a", "public")], now=NOW
    )
    out = run_canary(new, replace(decided, status=routed), Held(STABLE), HEALTHY, T0 + 600)
    assert out.status.rollout is not None and out.status.rollout.decision == "Hold"
    assert "waits for its route" in (out.status.rollout.message or "")
