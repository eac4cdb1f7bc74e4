"""Markers that carry Kubernetes-only schema facts on pydantic types.

The CRDs are generated from the pydantic models (see `gpupool.api.crd`). Pydantic's JSON Schema says
nothing about CEL rules or list semantics, so the models attach them through `json_schema_extra`
with these helpers and the generator copies them into the OpenAPI schema as they are.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

from gpupool.api.base import ApiModel


def cel(
    rule: str, message: str, *, reason: str | None = None, field_path: str | None = None
) -> dict[str, str]:
    """One `x-kubernetes-validations` entry: a CEL rule and the message `kubectl apply` shows."""
    entry = {"rule": rule, "message": message}
    if reason is not None:
        entry["reason"] = reason
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


def with_rules(*rules: dict[str, str]) -> ConfigDict:
    """The model config of `ApiModel` plus CEL rules that apply to the whole object."""
    extra: dict[str, Any] = {"x-kubernetes-validations": list(rules)}
    return ConfigDict(**{**ApiModel.model_config, "json_schema_extra": extra})


def list_map(*keys: str) -> dict[str, Any]:
    """A list of named sub-objects, merged by key (Kubernetes API conventions prefer it to a map)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


def atomic_list() -> dict[str, Any]:
    return {"x-kubernetes-list-type": "atomic"}


def string_map() -> dict[str, Any]:
    return {"x-kubernetes-map-type": "granular"}
