"""Kubernetes' own grammar for the strings gpupool copies into the objects it renders.

A node selector, a toleration or a Secret key that the CRD admits but the API server refuses in a
Deployment would make every apply fail. So the CRD checks them the way Kubernetes validates a pod
(apimachinery's `IsQualifiedName`, `IsValidLabelValue`, `IsConfigMapKey`; core/v1's toleration
rules), and pydantic checks them again for objects that reach the operator some other way.

The patterns are RE2 (CEL) and Python `re` at once: no look-arounds, no back-references.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import StringConstraints

from gpupool.api.schema import cel

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

# A label key: an optional DNS-subdomain prefix (253 characters at most) and '/', then a name of
# 63 characters at most that starts and ends with an alphanumeric.
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$"
)
# The lengths the pattern above cannot bound: the prefix and the name.
QUALIFIED_NAME_LENGTHS = r"^([^/]{1,253}/)?[^/]{1,63}$"
MAX_QUALIFIED_NAME_LENGTH = 253 + 1 + 63

# An extended resource name (apimachinery's IsExtendedResourceName), e.g. huawei.com/ascend-1980:
# a qualified name whose prefix is required and not in the kubernetes.io domain, short enough that
# a ResourceQuota's "requests.<name>" is still a qualified name (prefix 244 characters at most).
EXTENDED_RESOURCE = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/"
    r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$"
)
EXTENDED_RESOURCE_LENGTHS = r"^[^/]{1,244}/[^/]{1,63}$"
MAX_EXTENDED_RESOURCE_LENGTH = 244 + 1 + 63

# A label value: empty, or 63 characters at most, alphanumeric at both ends.
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
MAX_LABEL_VALUE_LENGTH = 63

# A key of a Secret or ConfigMap.
CONFIG_KEY = r"^[-._a-zA-Z0-9]+$"
MAX_CONFIG_KEY_LENGTH = 253

# A container image reference: anything without whitespace (the API server refuses leading and
# trailing whitespace; an image name never holds any).
IMAGE = r"^\S+$"

MAX_SELECTOR_LABELS = 32

LabelValue = Annotated[str, StringConstraints(pattern=LABEL_VALUE, max_length=MAX_LABEL_VALUE_LENGTH)]

_QUALIFIED_NAME = re.compile(QUALIFIED_NAME)
_QUALIFIED_NAME_LENGTHS = re.compile(QUALIFIED_NAME_LENGTHS)


def qualified_name_problem(key: str) -> str | None:
    """Why `key` is not a valid label key (a qualified name), or None when it is."""
    if _QUALIFIED_NAME.match(key) is None:
        return (
            f"{key!r} is not a valid label key: an optional DNS subdomain prefix and '/', then a name "
            "of alphanumerics, '-', '_' or '.' that starts and ends with an alphanumeric"
        )
    if _QUALIFIED_NAME_LENGTHS.match(key) is None:
        return f"{key!r} is too long for a label key: prefix 253 characters at most, name 63"
    return None


_EXTENDED_RESOURCE = re.compile(EXTENDED_RESOURCE)
_EXTENDED_RESOURCE_LENGTHS = re.compile(EXTENDED_RESOURCE_LENGTHS)


def extended_resource_problem(name: str) -> str | None:
    """Why `name` is not an extended resource name a pod can request, or None when it is."""
    if _EXTENDED_RESOURCE.match(name) is None:
        return (
            f"{name!r} is not an extended resource name: a DNS subdomain prefix and '/', then a name "
            "of alphanumerics, '-', '_' or '.' that starts and ends with an alphanumeric, e.g. "
            "huawei.com/ascend-1980"
        )
    if _EXTENDED_RESOURCE_LENGTHS.match(name) is None:
        return f"{name!r} is too long for an extended resource name: prefix 244 characters at most, name 63"
    if "kubernetes.io/" in name:
        return f"{name!r} is in the kubernetes.io domain, which is Kubernetes' own, not a device plugin's"
    return None


def extended_resource_schema(field: str) -> dict[str, Any]:
    """Schema extras of an extended resource name: the CEL rules its pattern cannot express."""
    rules = [
        cel(
            f"self.matches({cel_string(EXTENDED_RESOURCE_LENGTHS)})",
            f"{field}: the prefix must be 244 characters at most and the name 63",
        ),
        cel(
            "!self.contains('kubernetes.io/')",
            f"{field}: the kubernetes.io domain holds Kubernetes' own resources, not a device plugin's",
        ),
    ]
    return {"x-kubernetes-validations": rules}


def cel_string(pattern: str) -> str:
    """`pattern` as a single-quoted CEL string literal (CEL knows no `\\.` escape)."""
    return "'" + pattern.replace("\\", "\\\\") + "'"


def label_key_rule(field: str) -> dict[str, str]:
    """CEL: every key of the map at `field` is a valid label key."""
    return cel(
        f"self.all(k, k.matches({cel_string(QUALIFIED_NAME)}) "
        f"&& k.matches({cel_string(QUALIFIED_NAME_LENGTHS)}))",
        f"{field}: every key must be a valid label key (an optional DNS subdomain prefix of 253 "
        "characters at most and '/', then 63 characters at most of alphanumerics, '-', '_' or '.', "
        "starting and ending with an alphanumeric), e.g. nvidia.com/gpu.product",
    )


def label_map_schema(field: str) -> dict[str, Any]:
    """Schema extras of a map of labels: its keys checked."""
    return {"x-kubernetes-validations": [label_key_rule(field)]}


def check_label_keys(field: str, labels: dict[str, str]) -> dict[str, str]:
    """The same check as `label_key_rule`, for pydantic."""
    for key in labels:
        problem = qualified_name_problem(key)
        if problem is not None:
            raise ValueError(f"{field}: {problem}")
    return labels
