"""Rendering: from a ModelDeployment, its pool and its capacity plan to Kubernetes objects.

Pure functions returning plain dicts in wire form; no Kubernetes client, no IO. The controller
applies what they return; the CLI prints it.
"""

from gpupool.render.images import DEFAULT_IMAGES, UnsupportedEngineError, default_image
from gpupool.render.labels import (
    CONFIG_HASH_ANNOTATION,
    SELECTOR_LABEL,
    label_value,
    object_name,
    priority_class_name,
    selector_labels,
    workload_labels,
)
from gpupool.render.workload import (
    render_model_deployment,
    render_pool_queues,
    render_priority_classes,
    rollout_strategy,
    startup_budget_seconds,
    workload_name,
)

__all__ = [
    "CONFIG_HASH_ANNOTATION",
    "DEFAULT_IMAGES",
    "SELECTOR_LABEL",
    "UnsupportedEngineError",
    "default_image",
    "label_value",
    "object_name",
    "priority_class_name",
    "render_model_deployment",
    "render_pool_queues",
    "render_priority_classes",
    "rollout_strategy",
    "selector_labels",
    "startup_budget_seconds",
    "workload_labels",
    "workload_name",
]
