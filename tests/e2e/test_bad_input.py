"""Bad input against a real API server and a real operator: refused with a message naming the
field, or answered once by a condition; never a traceback, and never holding up a good model.

The cases come from the table in bad_manifests.py. Objects are created through the API (one
request each, strict field validation as kubectl applies them), so the whole table goes in a
few seconds.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bad_manifests import ANSWERED, CASES, NAMESPACE, NVIDIA_POOL, REFUSED, Case
from harness import apply_sample_pools, fresh_namespaces, running_operator
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from operator_process import OperatorProcess, wait_for

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "gpupool.io", "v1alpha1"
GOOD_NAMESPACE = f"{NAMESPACE}-good"
# Long enough that a change seen within a few seconds was not the periodic resync's doing.
RESYNC_SECONDS = 45.0
# A Deployment this name is refused by an admission policy: the API server's 422 at apply time.
REFUSED_NAME = "m-refused-by-the-api-server"
POLICY = "gpupool-bad-input-refuse"
POLICY_MESSAGE = f"Deployments named {REFUSED_NAME} are not allowed in {NAMESPACE}"

pytestmark = pytest.mark.e2e


def _plural(kind: str) -> str:
    return "modeldeployments" if kind == "ModelDeployment" else "inferencepools"


class Api:
    """The gpupool objects and the core objects the suite reads, through the Python client."""

    def __init__(self, kubeconfig: str) -> None:
        self.client = config.new_client_from_config(config_file=kubeconfig)
        self.custom = client.CustomObjectsApi(self.client)
        self.core = client.CoreV1Api(self.client)
        self.apps = client.AppsV1Api(self.client)

    def create(self, body: dict[str, Any]) -> None:
        plural = _plural(body["kind"])
        namespace = body["metadata"].get("namespace")
        if namespace:
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, body, field_validation="Strict"
            )
        else:
            self.custom.create_cluster_custom_object(GROUP, VERSION, plural, body, field_validation="Strict")

    def patch_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "modeldeployments", name, {"spec": spec}
        )

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        if namespace:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, _plural(kind), name
            )
        else:
            found = self.custom.get_cluster_custom_object(GROUP, VERSION, _plural(kind), name)
        return found

    def listed(self) -> dict[tuple[str, str], dict[str, Any]]:
        models = self.custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "modeldeployments")
        pools = self.custom.list_cluster_custom_object(GROUP, VERSION, "inferencepools")
        return {(o["kind"], o["metadata"]["name"]): o for o in models["items"] + pools["items"]}

    def deployment_exists(self, namespace: str, name: str) -> bool:
        try:
            self.apps.read_namespaced_deployment(name, namespace)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True


def _condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions", []):
        if c["type"] == type_:
            return dict(c)
    return {}


def _refusal(err: ApiException) -> str:
    try:
        return str(json.loads(err.body).get("message", ""))
    except (TypeError, ValueError):
        return str(err.body)


def _policy(kubectl: Any) -> None:
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["deployments"],
                    }
                ]
            },
            "validations": [
                {"expression": f"object.metadata.name != '{REFUSED_NAME}'", "message": POLICY_MESSAGE}
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY},
        "spec": {
            "policyName": POLICY,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
            },
        },
    }
    kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [policy, binding]})
    )


@pytest.fixture(scope="module")
def suite(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OperatorProcess, Api]]:
    def kubectl(*args: str, input: str | None = None) -> None:
        result = cluster.kubectl(*args, check=False, input=input)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"

    cluster.install_crds()
    _policy(kubectl)
    try:
        with (
            fresh_namespaces(cluster, NAMESPACE, GOOD_NAMESPACE),
            running_operator(
                cluster, tmp_path_factory.mktemp("operator"), resync_seconds=RESYNC_SECONDS
            ) as process,
        ):
            apply_sample_pools(cluster)
            yield process, Api(str(cluster.kubeconfig))
    finally:
        pools = [c.name for c in CASES if c.kind == "InferencePool" and c.refused is None]
        cluster.kubectl("delete", "inferencepools.gpupool.io", "--ignore-not-found", *pools, check=False)
        cluster.kubectl(
            "delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", POLICY, check=False
        )


def _good_model(name: str, **spec: Any) -> dict[str, Any]:
    body = {"model": {"name": "llama-3.1-8b"}, "pool": NVIDIA_POOL, "traffic": {"peakQps": 1}, **spec}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": GOOD_NAMESPACE},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def _answered(case: Case, obj: dict[str, Any] | None) -> bool:
    assert case.condition is not None
    type_, reason, text = case.condition
    found = _condition(obj, type_)
    return found.get("reason") == reason and text in found.get("message", "")


def _resyncs(process: OperatorProcess) -> int:
    """Resync passes done: each queues every pool and model, and is done once the queue is empty."""
    queued = process.log_path.read_text(errors="replace").count(" unchanged (listed in ")
    if queued and _queue_depth(process) > 0:
        return queued - 1
    return queued


def _queue_depth(process: OperatorProcess) -> float:
    for line in process.metrics().splitlines():
        if line.startswith("gpupool_workqueue_depth "):
            return float(line.split()[1])
    return 0.0


def test_bad_input_is_refused_or_answered_once_and_never_holds_up_a_good_model(
    suite: tuple[OperatorProcess, Api],
) -> None:
    process, api = suite
    pid = process.process.pid if process.process else None
    started = time.monotonic()

    # Pools first: some models name the stored ones. A good model goes in the same batch.
    problems: list[str] = []
    ordered = sorted(CASES, key=lambda c: c.namespaced)
    rejected = Case(REFUSED_NAME, "ModelDeployment", {"model": {"name": "llama-3.1-8b"}, "pool": NVIDIA_POOL})
    for case in [*ordered[: len(ordered) // 2], rejected, *ordered[len(ordered) // 2 :]]:
        try:
            api.create(case.manifest())
        except ApiException as err:
            if case.refused is None:
                problems.append(f"{case.name}: refused ({err.status}): {_refusal(err)}")
            elif err.status not in (400, 422) or case.refused not in _refusal(err):
                problems.append(
                    f"{case.name}: expected {case.refused!r} in the refusal, "
                    f"got {err.status}: {_refusal(err)}"
                )
        else:
            if case.refused is not None:
                problems.append(f"{case.name}: accepted, expected a refusal naming {case.refused!r}")
    api.create(_good_model("good"))
    assert not problems, "\n".join(problems)

    def unanswered() -> list[str]:
        listed = api.listed()
        return [
            f"{c.name}: expected {c.condition}, got "
            f"{((listed.get((c.kind, c.name)) or {}).get('status') or {}).get('conditions')}"
            for c in ANSWERED
            if not _answered(c, listed.get((c.kind, c.name)))
        ]

    deadline = time.monotonic() + 90
    while (missing := unanswered()) and time.monotonic() < deadline:
        time.sleep(1)
    assert not missing, "\n".join(missing)
    good = wait_for(
        "the good model ready",
        lambda: (
            _condition(api.get("ModelDeployment", "good", GOOD_NAMESPACE), "Ready").get("reason")
            == "Available"
        ),
        timeout=120,
    )
    assert good
    refused_md = wait_for(
        "the refused Deployment reported",
        lambda: (
            (c := _condition(api.get("ModelDeployment", REFUSED_NAME, NAMESPACE), "Ready")).get("reason")
            == "Rejected"
            and c
        ),
        timeout=60,
    )
    assert POLICY_MESSAGE in refused_md["message"]
    assert refused_md["status"] == "False"

    # Let a full resync pass over everything, then check it answered nothing twice.
    seen = _resyncs(process)
    wait_for("a resync pass", lambda: _resyncs(process) > seen, timeout=RESYNC_SECONDS + 30)
    log = process.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 : log.index("Traceback") + 3000]
    assert not re.search(r'^\s+File ".*", line \d+', log, re.MULTILINE)
    assert process.process is not None and process.process.poll() is None and process.process.pid == pid
    # One log line for the refused Deployment, whatever the resyncs did since.
    assert log.count(f"refused an object of {NAMESPACE}/{REFUSED_NAME}") == 1
    # This run's objects only: events of an earlier run's pools of the same name outlive them.
    uids = {o["metadata"]["uid"] for o in api.listed().values()}
    events = [
        e
        for namespace in (NAMESPACE, "default")
        for e in api.core.list_namespaced_event(namespace).items
        if e.type == "Warning" and e.reporting_component == "gpupool" and e.involved_object.uid in uids
    ]
    repeated = {k: n for k, n in Counter((e.involved_object.name, e.reason) for e in events).items() if n > 1}
    assert not repeated, f"warnings posted more than once: {repeated}"
    assert ("m-refused-by-the-api-server", "Rejected") in {(e.involved_object.name, e.reason) for e in events}
    print(
        f"\n{len(CASES)} bad objects ({len(REFUSED)} refused, {len(ANSWERED)} answered) "
        f"in {time.monotonic() - started:.0f}s"
    )


def test_a_spec_that_cannot_be_served_keeps_its_old_deployment_until_the_fix_replaces_it(
    suite: tuple[OperatorProcess, Api],
) -> None:
    process, api = suite
    name = "switching"
    api.create(_good_model(name, pool=None, pools=[{"name": NVIDIA_POOL}]))
    old = f"{name}-{NVIDIA_POOL}"
    wait_for("the first Deployment", lambda: api.deployment_exists(GOOD_NAMESPACE, old), timeout=60)

    # Unservable, and on another pool: nothing of the new spec runs yet, the old Deployment does.
    api.patch_spec(GOOD_NAMESPACE, name, {"maxModelLen": 1_000_000, "pools": [{"name": "ascend-910b"}]})

    def failed() -> dict[str, Any] | None:
        obj = api.get("ModelDeployment", name, GOOD_NAMESPACE)
        generation = obj["metadata"]["generation"]
        conditions = obj["status"].get("conditions", [])
        current = conditions and all(c.get("observedGeneration") == generation for c in conditions)
        return obj if current and _condition(obj, "Ready").get("status") == "False" else None

    obj = wait_for("every condition at the new generation", failed, timeout=30)
    assert {c["type"] for c in obj["status"]["conditions"]} >= {"Ready", "Placed", "Planned", "Degraded"}
    assert "spec.maxModelLen" in _condition(obj, "Placed")["message"]
    # What ran keeps running while the spec cannot be served.
    assert api.deployment_exists(GOOD_NAMESPACE, old)

    # Fix it onto another pool, just after a resync pass: the next is RESYNC_SECONDS away.
    seen = _resyncs(process)
    wait_for("a resync pass", lambda: _resyncs(process) > seen, timeout=RESYNC_SECONDS + 30)
    fixed = time.monotonic()
    api.patch_spec(GOOD_NAMESPACE, name, {"maxModelLen": 8192})
    wait_for("the old Deployment gone", lambda: not api.deployment_exists(GOOD_NAMESPACE, old), timeout=15)
    assert time.monotonic() - fixed < RESYNC_SECONDS / 3
    assert api.deployment_exists(GOOD_NAMESPACE, f"{name}-ascend-910b")
