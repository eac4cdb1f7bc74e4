"""Metadata of the objects rendered once per model, whatever pools it runs on."""

from __future__ import annotations

from typing import Any

from gpupool.api.v1alpha1 import API_VERSION, ModelDeployment
from gpupool.render import labels as lbl
from gpupool.render.workload import owner_references


def model_metadata(md: ModelDeployment) -> dict[str, Any]:
    """Name (the model's, as its Service's), namespace, the model's labels and the controller owner
    reference (none for a preview of a file), so the garbage collector removes the object with the
    model."""
    name: str = md.metadata["name"]
    namespace: str = md.metadata.get("namespace", "")
    if not namespace:
        raise ValueError(f"ModelDeployment {name!r} metadata needs a namespace")
    owners = owner_references(API_VERSION, "ModelDeployment", md.metadata)
    return {
        "name": lbl.object_name(name),
        "namespace": namespace,
        "labels": lbl.model_labels(name),
        **({"ownerReferences": owners} if owners else {}),
    }
