"""Helpers shared by the end-to-end modules: manifests and status reading."""

from __future__ import annotations

from typing import Any


def model_manifest(name: str, namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    """A ModelDeployment of a small model on the H100 pool; `spec` keys replace the defaults."""
    body: dict[str, Any] = {
        "model": {"name": "llama-3.1-8b"},
        "pool": "nvidia-h100",
        "traffic": {"peakQps": 1},
    }
    body.update(spec)
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": metadata,
        "spec": body,
    }


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    """The object's status condition of that type, {} when it has none."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}
