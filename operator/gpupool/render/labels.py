"""Names, labels and selectors of the objects gpupool renders.

Conventions:
- A ModelDeployment's Deployment and Service carry the ModelDeployment's name; ConfigMaps add a
  suffix. Names that are not valid DNS-1035 labels (a Service name must start with a letter and
  fit in 63 characters) are lower-cased, cleaned and, when cut, end in a hash of the full name,
  so two long names never collide.
- The Deployment selects its pods by one label only, `gpupool.io/model-deployment`, whose value
  derives from the ModelDeployment's name alone. A Deployment's selector is immutable, and the
  model, pool, tier and engine of a ModelDeployment can all change; selecting on them would make
  every such change a delete-and-recreate.
- Label values are cut to 63 characters and cleaned to Kubernetes' label-value grammar.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from gpupool.api.v1alpha1 import Tier

GROUP: Final = "gpupool.io"

SELECTOR_LABEL: Final = "gpupool.io/model-deployment"
MODEL_LABEL: Final = "gpupool.io/model"
POOL_LABEL: Final = "gpupool.io/pool"
TIER_LABEL: Final = "gpupool.io/tier"
ENGINE_LABEL: Final = "gpupool.io/engine"
# On the pods only: what their engine runs (gpupool.render.workload.engine_revision). Two versions
# of a model side by side during a canary are told apart by it: their Services, their metrics.
REVISION_LABEL: Final = "gpupool.io/revision"

NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
PART_OF_LABEL: Final = "app.kubernetes.io/part-of"

MANAGED_BY: Final = "gpupool"
ENGINE_COMPONENT: Final = "inference-engine"
PRIORITY_CLASS_COMPONENT: Final = "priority-class"

# The annotation whose value changes whenever the rendered engine configuration changes, so that
# a change carried only by a ConfigMap still rolls the pods.
CONFIG_HASH_ANNOTATION: Final = "gpupool.io/config-hash"

MAX_NAME_LENGTH: Final = 63
MAX_LABEL_VALUE_LENGTH: Final = 63
_HASH_LENGTH: Final = 8

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:_HASH_LENGTH]


def is_valid_label_value(value: str) -> bool:
    """Whether `value` is a valid Kubernetes label value (63 characters at most)."""
    return len(value) <= MAX_LABEL_VALUE_LENGTH and _LABEL_VALUE.match(value) is not None


def is_valid_name(value: str) -> bool:
    """Whether `value` is a DNS-1035 label, the strictest name any rendered object needs."""
    return len(value) <= MAX_NAME_LENGTH and _DNS_1035_LABEL.match(value) is not None


def label_value(value: str) -> str:
    """`value` as a valid label value: invalid characters become `-`, the ends are trimmed to
    alphanumerics, and a value longer than 63 characters keeps its head plus a hash of the whole.
    """
    if is_valid_label_value(value):
        return value
    cleaned = re.sub(r"[^-A-Za-z0-9_.]", "-", value).strip("-_.")
    if len(cleaned) <= MAX_LABEL_VALUE_LENGTH:
        return cleaned
    head = cleaned[: MAX_LABEL_VALUE_LENGTH - _HASH_LENGTH - 1].rstrip("-_.")
    return f"{head}-{_digest(value)}"


def object_name(base: str, suffix: str = "") -> str:
    """A DNS-1035 name made of `base` and an optional `-suffix`, 63 characters at most.

    A base that is already valid is kept as it is; otherwise it is lower-cased, cleaned, given a
    leading letter if it needs one, and cut with a hash of the original so that distinct bases
    keep distinct names.
    """
    tail = f"-{suffix}" if suffix else ""
    if is_valid_name(base + tail):
        return base + tail
    cleaned = re.sub(r"[^a-z0-9-]", "-", base.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"m-{cleaned}".rstrip("-")
    room = MAX_NAME_LENGTH - len(tail) - _HASH_LENGTH - 1
    head = cleaned[:room].rstrip("-")
    return f"{head}-{_digest(base)}{tail}"


def selector_labels(md_name: str) -> dict[str, str]:
    """The Deployment's selector and the Service's: the ModelDeployment's identity only."""
    return {SELECTOR_LABEL: label_value(md_name)}


def model_labels(md_name: str) -> dict[str, str]:
    """Labels of the objects rendered once per model whatever its pools (disruption budget,
    network policy, route): its identity and who manages it."""
    labels = {
        INSTANCE_LABEL: label_value(md_name),
        MANAGED_BY_LABEL: MANAGED_BY,
        PART_OF_LABEL: MANAGED_BY,
        SELECTOR_LABEL: label_value(md_name),
    }
    return dict(sorted(labels.items()))


def workload_labels(md_name: str, *, model: str, pool: str, tier: str, engine: str) -> dict[str, str]:
    """Labels of every object rendered for a ModelDeployment, and of its pods."""
    labels = {
        NAME_LABEL: label_value(engine),
        INSTANCE_LABEL: label_value(md_name),
        COMPONENT_LABEL: ENGINE_COMPONENT,
        MANAGED_BY_LABEL: MANAGED_BY,
        PART_OF_LABEL: MANAGED_BY,
        SELECTOR_LABEL: label_value(md_name),
        MODEL_LABEL: label_value(model),
        POOL_LABEL: label_value(pool),
        TIER_LABEL: label_value(tier),
        ENGINE_LABEL: label_value(engine),
    }
    return dict(sorted(labels.items()))


def priority_class_name(pool_name: str, tier: str | Tier) -> str:
    """`gpupool-<pool>-<tier in lower case>`, the PriorityClass backing one tier of one pool.

    Pool names are DNS subdomains and tier names alphanumeric, so the result is a valid
    PriorityClass name (a DNS subdomain, 253 characters at most) as it is.
    """
    tier_name = tier if isinstance(tier, str) else tier.name
    return f"gpupool-{pool_name}-{tier_name.lower()}"
