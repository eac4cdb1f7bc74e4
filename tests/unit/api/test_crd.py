"""The CRDs in crds/ are generated from the pydantic models and must be structural schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpupool.api.crd import all_crds
from gpupool.cli import crd_yaml

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["metadata"]["name"])
def test_committed_crd_is_current(crd: dict[str, Any]) -> None:
    path = ROOT / "crds" / f"{crd['metadata']['name']}.yaml"
    assert path.exists(), f"{path} is missing: run `make crds`"
    assert path.read_text() == crd_yaml(crd), f"{path} is stale: run `make crds` and commit the result"


def _walk(node: Any, where: str = "") -> list[str]:
    """Structural-schema problems below `node`: missing types, refs, nulls, false additionalProperties."""
    problems: list[str] = []
    if not isinstance(node, dict):
        return problems
    for bad in ("$ref", "anyOf", "allOf", "oneOf", "$defs", "prefixItems", "const"):
        if bad in node:
            problems.append(f"{where}: {bad}")
    untyped = node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
    if "type" not in node and not untyped:
        problems.append(f"{where}: no type")
    if node.get("additionalProperties") is False:
        problems.append(f"{where}: additionalProperties false")
    if "default" in node and node["default"] is None:
        problems.append(f"{where}: null default")
    for name, child in (node.get("properties") or {}).items():
        problems += _walk(child, f"{where}.{name}")
    if isinstance(node.get("items"), dict):
        problems += _walk(node["items"], f"{where}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += _walk(node["additionalProperties"], f"{where}{{}}")
    return problems


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["metadata"]["name"])
def test_schema_is_structural(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk(schema) == []


def _spec(crd_name: str) -> dict[str, Any]:
    crd = next(c for c in all_crds() if c["metadata"]["name"] == crd_name)
    return crd["spec"]


def test_model_deployment_has_scale_and_status_subresources() -> None:
    version = _spec("modeldeployments.gpupool.io")["versions"][0]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }


def test_names_do_not_collide_with_gateway_inference_pool() -> None:
    # The Gateway API Inference Extension's InferencePool (inference.networking.k8s.io) uses `infpool`.
    pool = _spec("inferencepools.gpupool.io")
    assert "infpool" not in pool["names"]["shortNames"]
    assert pool["scope"] == "Cluster"
    for name in ("inferencepools.gpupool.io", "modeldeployments.gpupool.io"):
        assert _spec(name)["names"]["categories"] == ["gpupool"]


def test_printer_columns_show_model_engine_tp_ready_desired_status_age() -> None:
    columns = [
        c["name"] for c in _spec("modeldeployments.gpupool.io")["versions"][0]["additionalPrinterColumns"]
    ]
    for wanted in ("Model", "Engine", "TP", "Ready", "Desired", "Status", "Age"):
        assert wanted in columns


def test_cel_rules_are_present_where_fields_depend_on_each_other() -> None:
    schema = _spec("modeldeployments.gpupool.io")["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    rules = [r["rule"] for r in spec.get("x-kubernetes-validations", [])]
    assert any("maxModelLen" in r for r in rules)
    model_rules = [r["rule"] for r in spec["properties"]["model"]["x-kubernetes-validations"]]
    assert "has(self.name) != has(self.architecture)" in model_rules
    scaling_rules = [r["rule"] for r in spec["properties"]["scaling"]["x-kubernetes-validations"]]
    assert any("minReplicas <= self.maxReplicas" in r for r in scaling_rules)


def test_defaults_are_in_the_schema() -> None:
    spec = _spec("modeldeployments.gpupool.io")["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    assert spec["properties"]["precision"]["default"] == "bf16"
    assert spec["properties"]["engine"]["default"] == {}
    assert spec["properties"]["engine"]["properties"]["type"]["default"] == "vllm"
    pool = _spec("inferencepools.gpupool.io")["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    assert [t["name"] for t in pool["properties"]["tiers"]["default"]] == ["P0", "P1", "P2"]


def _defaulted_rules(node: Any, where: str = "") -> list[tuple[str, str]]:
    """(path, rule) of every CEL rule on an object whose default is {}: the API server checks the
    default itself against the rule, before the fields' own defaults are filled in."""
    found: list[tuple[str, str]] = []
    if not isinstance(node, dict):
        return found
    if node.get("default") == {}:
        found += [(where, r["rule"]) for r in node.get("x-kubernetes-validations", [])]
    for name, child in (node.get("properties") or {}).items():
        found += _defaulted_rules(child, f"{where}.{name}")
    if isinstance(node.get("items"), dict):
        found += _defaulted_rules(node["items"], f"{where}[]")
    return found


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["metadata"]["name"])
def test_rules_of_objects_defaulted_to_empty_hold_on_the_empty_object(crd: dict[str, Any]) -> None:
    """The API server evaluates such a rule on the bare {} (its fields' defaults not filled in) and
    refuses the CRD when it reads a missing key: each must hold on {} before it reads a field,
    through a leading `!has(self.<field>) ||` or by iterating the (empty) map."""
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for where, rule in _defaulted_rules(schema):
        assert rule.startswith(("!has(self.", "self.all(")), f"{where}: {rule!r} fails on {{}}"
