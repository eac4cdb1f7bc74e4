"""The PodDisruptionBudget of a model: what a node drain or another eviction may take at once.

One budget over all of the model's pods, whatever pools they run on: it selects the identity label
only, as the Service does, so it counts the instances that serve the model's one endpoint. The
disruption controller sums the scale of every Deployment owning a selected pod, so a model of
several pools gets one budget over all its instances.
"""

from __future__ import annotations

from typing import Any

from gpupool.api.v1alpha1 import ModelDeployment
from gpupool.render import labels as lbl
from gpupool.render.owned import model_metadata

# An engine that never becomes ready (a crash loop, a load that fails) must not hold a node drain
# back: evict unready pods whatever the budget says (policy/v1 unhealthyPodEvictionPolicy, GA in
# Kubernetes 1.31). The budget then protects only instances that serve.
UNHEALTHY_POD_EVICTION_POLICY = "AlwaysAllow"


def render_disruption_budget(md: ModelDeployment) -> dict[str, Any]:
    """The model's PodDisruptionBudget, `spec.disruption.maxUnavailable` instances at most."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": model_metadata(md),
        "spec": {
            "maxUnavailable": md.spec.disruption.max_unavailable,
            "selector": {"matchLabels": lbl.selector_labels(md.metadata["name"])},
            "unhealthyPodEvictionPolicy": UNHEALTHY_POD_EVICTION_POLICY,
        },
    }
