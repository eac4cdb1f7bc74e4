"""What the reconciler does with an object the API server refuses: its message, once."""

from __future__ import annotations

import json

from gpupool.api.conditions import Condition, ConditionType, find_condition
from gpupool.api.v1alpha1 import ModelDeploymentStatus
from gpupool.controller import reconciler
from gpupool.controller.apiclient import ApiError
from gpupool.controller.state import ModelMemory
from gpupool.services.modeldeployment import ModelOutcome

DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "chat", "namespace": "ns"}}


def _refused(message: str) -> ApiError:
    err = ApiError(status=422, reason="Unprocessable Entity")
    err.body = json.dumps({"kind": "Status", "message": message, "reason": "Invalid", "code": 422})
    return err


def test_the_refusal_is_the_api_servers_message_on_one_line() -> None:
    err = _refused('Deployment.apps "chat" is invalid:\n spec.template.spec.nodeSelector: Invalid value')
    assert reconciler.refusal_message(err) == (
        'Deployment.apps "chat" is invalid: spec.template.spec.nodeSelector: Invalid value'
    )
    bare = ApiError(status=400, reason="Bad Request")
    assert reconciler.refusal_message(bare) == "400 Bad Request"


def test_refused_objects_are_not_sent_again_until_they_change() -> None:
    memory = ModelMemory()
    key = ("ns", "chat-refusal-test")
    outcome = ModelOutcome(objects=[DEPLOYMENT], apply=True)
    assert reconciler._refusal_of(memory, key, outcome) is None
    message = reconciler._remember_refusal(memory, key, outcome, _refused("denied by policy"))
    assert message == "denied by policy"
    assert reconciler._refusal_of(memory, key, outcome) == "denied by policy"
    changed = ModelOutcome(objects=[{**DEPLOYMENT, "spec": {"replicas": 2}}], apply=True)
    assert reconciler._refusal_of(memory, key, changed) is None


def test_a_refusal_turns_ready_false_and_degraded_true_with_the_message() -> None:
    ready = Condition(
        type="Ready", status="True", last_transition_time="t", reason="Available", observed_generation=3
    )
    outcome = ModelOutcome(status=ModelDeploymentStatus(observed_generation=3, conditions=[ready]))
    status = reconciler._rejected_status(outcome, "denied by policy")
    for type_, state in ((ConditionType.READY, "False"), (ConditionType.DEGRADED, "True")):
        condition = find_condition(status.conditions, type_)
        assert condition is not None
        assert (condition.status, condition.reason, condition.observed_generation) == (state, "Rejected", 3)
        assert "denied by policy" in condition.message
