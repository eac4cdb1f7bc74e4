"""Generate the CustomResourceDefinitions from the pydantic models.

Pydantic emits JSON Schema 2020-12; a CRD wants a structural OpenAPI v3.0 schema: every node typed,
no `$ref`, no `anyOf` with null, `exclusiveMinimum` as a boolean, no `additionalProperties: false`
beside `properties`. This module does that translation and adds what only Kubernetes knows (names,
scope, subresources, printer columns). It is pure: objects in, dicts out.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from gpupool.api.schema import cel
from gpupool.api.v1alpha1 import (
    GROUP,
    MAX_POOL_NAME_LENGTH,
    VERSION,
    InferencePoolSpec,
    InferencePoolStatus,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)

CATEGORY = "gpupool"

_DROP_KEYS = {"title", "$defs", "discriminator"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline `$ref`s and turn JSON Schema idioms into their OpenAPI v3.0 (structural) form."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").split("/")[-1]])
        # A field's own description (and extras) win over the referenced type's docstring.
        target.update(node)
        node = target
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = node.pop("allOf")[0]
        node = {**_resolve(inner, defs), **node}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            del node["anyOf"]
            node = {**_resolve(options[0], defs), **node}
    if node.get("default", 0) is None:
        del node["default"]
    for key in _DROP_KEYS:
        node.pop(key, None)
    if "properties" in node:
        node.pop("additionalProperties", None)
        node["type"] = "object"
    if "exclusiveMinimum" in node and not isinstance(node["exclusiveMinimum"], bool):
        node["minimum"] = node.pop("exclusiveMinimum")
        node["exclusiveMinimum"] = True
    if "exclusiveMaximum" in node and not isinstance(node["exclusiveMaximum"], bool):
        node["maximum"] = node.pop("exclusiveMaximum")
        node["exclusiveMaximum"] = True
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    if "const" in node:
        node["enum"] = [node.pop("const")]
    return {key: _resolve(value, defs) for key, value in node.items()}


def _factory_defaults(model: type[BaseModel], schema: dict[str, Any]) -> None:
    """Pydantic leaves `default_factory` out of the schema; the API server should default them too."""
    properties = schema.get("properties", {})
    for name, field in model.model_fields.items():
        alias = field.alias or name
        prop = properties.get(alias)
        if prop is None:
            continue
        if field.default_factory is not None and "default" not in prop:
            value = field.default_factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                prop["default"] = {}
            elif isinstance(value, list):
                prop["default"] = [
                    v.model_dump(by_alias=True, exclude_none=True, mode="json")
                    if isinstance(v, BaseModel)
                    else v
                    for v in value
                ]
            else:
                prop["default"] = value
        annotation = field.annotation
        nested = _nested_model(annotation)
        if nested is not None:
            target = prop.get("items", prop) if prop.get("type") == "array" else prop
            _factory_defaults(nested, target)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3.0 schema of one pydantic model, as a CRD embeds it."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _resolve(raw, raw.get("$defs", {}))
    _factory_defaults(model, schema)
    return schema


def _root_schema(
    spec: type[BaseModel],
    status: type[BaseModel],
    description: str,
    rules: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": openapi_schema(spec),
            "status": openapi_schema(status),
        },
    }
    if rules:
        schema["x-kubernetes-validations"] = rules
    return schema


def _crd(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    scope: str,
    schema: dict[str, Any],
    subresources: dict[str, Any],
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "gpupool"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": [CATEGORY],
            },
            "scope": scope,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def _ready_columns() -> list[dict[str, Any]]:
    return [
        {
            "name": "Status",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
            "description": "Reason of the Ready condition.",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def inference_pool_crd() -> dict[str, Any]:
    return _crd(
        kind="InferencePool",
        plural="inferencepools",
        # The Gateway API Inference Extension's InferencePool uses `infpool`; ours must differ.
        short_names=["ipool"],
        scope="Cluster",
        schema=_root_schema(
            InferencePoolSpec,
            InferencePoolStatus,
            "A pool of accelerator nodes that gpupool sizes and places models on.",
            [
                cel(
                    f"size(self.metadata.name) <= {MAX_POOL_NAME_LENGTH}",
                    f"metadata.name: a pool's name has {MAX_POOL_NAME_LENGTH} characters at most, so "
                    "that its tiers' PriorityClass names (gpupool-<pool>-<tier>) stay valid",
                )
            ],
        ),
        subresources={"status": {}},
        columns=[
            {"name": "Vendor", "type": "string", "jsonPath": ".spec.vendor"},
            {"name": "Accelerator", "type": "string", "jsonPath": ".spec.accelerator"},
            {"name": "Nodes", "type": "integer", "jsonPath": ".status.nodes"},
            {"name": "Total", "type": "integer", "jsonPath": ".status.accelerators.total"},
            {"name": "Free", "type": "integer", "jsonPath": ".status.accelerators.free"},
            *_ready_columns(),
        ],
    )


def model_deployment_crd() -> dict[str, Any]:
    return _crd(
        kind="ModelDeployment",
        plural="modeldeployments",
        short_names=["mdep"],
        scope="Namespaced",
        schema=_root_schema(
            ModelDeploymentSpec,
            ModelDeploymentStatus,
            "A model served by vLLM or Triton on an InferencePool, sized and placed by gpupool.",
        ),
        subresources={
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        },
        columns=[
            {"name": "Model", "type": "string", "jsonPath": ".status.model"},
            {"name": "Engine", "type": "string", "jsonPath": ".spec.engine.type"},
            {"name": "Pool", "type": "string", "jsonPath": ".spec.pool"},
            {"name": "TP", "type": "integer", "jsonPath": ".status.plan.tensorParallel"},
            {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
            {"name": "Desired", "type": "integer", "jsonPath": ".status.replicas"},
            {"name": "Canary", "type": "integer", "jsonPath": ".status.rollout.weight", "priority": 1},
            *_ready_columns(),
        ],
    )


def all_crds() -> list[dict[str, Any]]:
    return [inference_pool_crd(), model_deployment_crd()]
