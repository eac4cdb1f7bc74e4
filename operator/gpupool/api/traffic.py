"""API types for who may reach a model and how much of it a drain may take.

Spec types:
- `DisruptionSpec` (`ModelDeployment.spec.disruption`): the PodDisruptionBudget over the model's
  pods, at most `maxUnavailable` instances evicted at once (one by default).
- `AccessSpec` (`ModelDeployment.spec.access`, default `InferencePool.spec.access`): the
  NetworkPolicy that admits only the listed clients, the Gateway's pods and Prometheus.
- `RoutingSpec` (`ModelDeployment.spec.routing`, default `InferencePool.spec.routing`): the Gateway
  API Gateways an HTTPRoute to the model's Service attaches to; with `inferencePool`
  (`InferenceExtensionSpec`), the route goes through a Gateway API Inference Extension
  InferencePool (inference.networking.k8s.io) and its endpoint picker instead.

`maxUnavailable` is int-or-string as in a PodDisruptionBudget, so `1` and `"25%"` both read the way
they do in Kubernetes; the schema marks it `x-kubernetes-int-or-string` and a CEL rule checks it.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, StringConstraints, WithJsonSchema, field_validator, model_validator

from gpupool.api.base import ApiModel
from gpupool.api.names import MAX_SELECTOR_LABELS, LabelValue, check_label_keys, label_map_schema
from gpupool.api.schema import atomic_list, cel, with_rules

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
PERCENT = r"^([0-9]|[1-9][0-9]|100)%$"
_PERCENT = re.compile(PERCENT)
# A Gateway API hostname: a DNS name, optionally with one leading `*.` label (RFC 1123, lower case).
HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# An HTTP path prefix: `/`, or `/`-separated segments of URL path characters without a trailing
# slash (RFC 3986 pchar less percent-escapes).
_SEGMENT = r"[-A-Za-z0-9._~!$&'()*+,;=:@]+"
PATH_PREFIX = rf"^/({_SEGMENT}(/{_SEGMENT})*)?$"

DEFAULT_MAX_UNAVAILABLE = 1
MAX_UNAVAILABLE_INSTANCES = 10_000
# Gateway API's own limits: 32 parentRefs and 16 hostnames per route.
MAX_PARENT_REFS = 32
MAX_HOSTNAMES = 16
MAX_PEERS = 16
# A long generation outlives a gateway's default request timeout (Envoy's route timeout is 15 s):
# routes ask for ten minutes unless the spec says otherwise.
DEFAULT_REQUEST_TIMEOUT_SECONDS = 600
MAX_REQUEST_TIMEOUT_SECONDS = 86_400
# The port the Inference Extension's endpoint picker serves ext-proc on: the default of its own
# chart (config/charts/inferencepool, inferenceExtension.extProcPort, v1.3.0).
DEFAULT_ENDPOINT_PICKER_PORT = 9002
# The name the same chart gives the picker's Service: the InferencePool's name with this suffix.
ENDPOINT_PICKER_SUFFIX = "-epp"

LabelMap = dict[str, LabelValue]

IntOrPercent = Annotated[
    int | str,
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "description": "An instance count (e.g. 1) or a percentage of the desired instances "
            "(e.g. '25%', rounded up).",
        }
    ),
]


class DisruptionSpec(ApiModel):
    """The model's PodDisruptionBudget: what a node drain or any other eviction may take."""

    model_config = with_rules(
        cel(
            "!has(self.maxUnavailable) || (type(self.maxUnavailable) == int ? (self.maxUnavailable "
            f">= 0 && self.maxUnavailable <= {MAX_UNAVAILABLE_INSTANCES}) : "
            f"string(self.maxUnavailable).matches('{PERCENT}'))",
            f"disruption.maxUnavailable must be an instance count from 0 to {MAX_UNAVAILABLE_INSTANCES} "
            "or a percentage from '0%' to '100%', e.g. 1 or '25%'",
            field_path=".maxUnavailable",
        ),
    )

    max_unavailable: IntOrPercent = Field(
        default=DEFAULT_MAX_UNAVAILABLE,
        description="At most this many instances (or this percentage of the desired instances, "
        "rounded up) may be evicted at once by a drain or any other eviction; 0 blocks every "
        "voluntary eviction (a `kubectl drain` then waits until the model is scaled down).",
    )

    @field_validator("max_unavailable", mode="before")
    @classmethod
    def _count_or_percent(cls, value: object) -> int | str:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("disruption.maxUnavailable must be a number or a percentage")
        if isinstance(value, int):
            if not 0 <= value <= MAX_UNAVAILABLE_INSTANCES:
                raise ValueError(
                    f"disruption.maxUnavailable must be from 0 to {MAX_UNAVAILABLE_INSTANCES}, got {value}"
                )
            return value
        if not _PERCENT.match(value):
            raise ValueError(f"disruption.maxUnavailable must be a percentage like '25%', got {value!r}")
        return value


class AccessPeer(ApiModel):
    """Pods allowed in: in one namespace (by name), or in the namespaces a selector picks, and
    within them every pod or the pods a selector picks. Neither namespace field: the model's own."""

    model_config = with_rules(
        cel(
            "!(has(self.__namespace__) && has(self.namespaceSelector))",
            "give namespace or namespaceSelector, not both",
            field_path=".namespaceSelector",
        ),
    )

    namespace: str | None = Field(
        default=None,
        description="A namespace, by name. Unset (and no namespaceSelector): the model's own.",
        pattern=DNS_LABEL,
        max_length=63,
    )
    namespace_selector: LabelMap | None = Field(
        default=None,
        max_length=MAX_SELECTOR_LABELS,
        description="Namespaces by their labels; {} is every namespace.",
        json_schema_extra=label_map_schema("namespaceSelector"),
    )
    pod_selector: LabelMap | None = Field(
        default=None,
        max_length=MAX_SELECTOR_LABELS,
        description="Pods by their labels, in those namespaces. Unset: every pod there.",
        json_schema_extra=label_map_schema("podSelector"),
    )

    @field_validator("namespace_selector", "pod_selector")
    @classmethod
    def _label_keys(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else check_label_keys("selector", value)

    @model_validator(mode="after")
    def _one_namespace_field(self) -> Self:
        if self.namespace is not None and self.namespace_selector is not None:
            raise ValueError("give namespace or namespaceSelector, not both")
        return self


class AccessSpec(ApiModel):
    """Who may call the model: the NetworkPolicy over its pods (ingress only)."""

    network_policy: bool = Field(
        default=True,
        description="Render the NetworkPolicy. false: no policy, every pod of the cluster may call "
        "the model (as without gpupool).",
    )
    clients: list[AccessPeer] | None = Field(
        default=None,
        max_length=MAX_PEERS,
        description="Pods that may call the model's API port(s). Unset: the pool's access.clients, "
        "else every pod of the model's own namespace. [] admits no client but the Gateway.",
        json_schema_extra=atomic_list(),
    )
    gateway: list[AccessPeer] | None = Field(
        default=None,
        max_length=MAX_PEERS,
        description="The Gateway's proxy pods, admitted to the API port. Unset: for each Gateway of "
        "routing.parentRefs, the pods labelled gateway.networking.k8s.io/gateway-name=<name> in "
        "its namespace (the label Gateway API implementations put on the proxies they deploy), "
        "and with routing.inferencePool the endpoint picker's pods, labelled "
        "inferencepool=<picker's Service> in the model's namespace (as the Inference Extension's "
        "chart labels them), which read vLLM's metrics on that port.",
        json_schema_extra=atomic_list(),
    )
    prometheus: list[AccessPeer] | None = Field(
        default=None,
        max_length=MAX_PEERS,
        description="Scrapers admitted to the metrics port (vLLM serves its metrics on its API "
        "port). Unset: the pool's, else pods labelled app.kubernetes.io/name=prometheus in any "
        "namespace.",
        json_schema_extra=atomic_list(),
    )


class ParentReference(ApiModel):
    """A Gateway API Gateway the model's HTTPRoute attaches to (a ParentReference of kind Gateway)."""

    name: str = Field(description="The Gateway's name.", pattern=DNS_SUBDOMAIN, max_length=253)
    namespace: str | None = Field(
        default=None,
        description="The Gateway's namespace; unset: the model's. A Gateway in another namespace "
        "must allow routes from the model's (its listeners' allowedRoutes).",
        pattern=DNS_LABEL,
        max_length=63,
    )
    section_name: str | None = Field(
        default=None,
        description="One listener of the Gateway, by name; unset: every listener that allows the route.",
        pattern=DNS_LABEL,
        max_length=253,
    )
    port: int | None = Field(default=None, ge=1, le=65535, description="One listener, by port.")


class FailureMode(StrEnum):
    """What the Gateway does when the endpoint picker does not answer (InferencePool v1's enum)."""

    FAIL_OPEN = "FailOpen"
    FAIL_CLOSE = "FailClose"


class EndpointPickerRef(ApiModel):
    """The endpoint picker (EPP) a Gateway asks which pod serves each request: a Service the user
    (or the Gateway's installation) runs, in the model's namespace."""

    name: str | None = Field(
        default=None,
        description="The picker's Service. Unset: the model's Service name with -epp (the name the "
        "Inference Extension's inferencepool chart gives it for a pool of that name).",
        pattern=DNS_LABEL,
        max_length=63,
    )
    port: int = Field(
        default=DEFAULT_ENDPOINT_PICKER_PORT,
        ge=1,
        le=65535,
        description="The picker Service's ext-proc port (the Service port, not the target port).",
    )
    failure_mode: FailureMode = Field(
        default=FailureMode.FAIL_CLOSE,
        description="FailClose (the Inference Extension's default): requests fail while the picker "
        "does not answer. FailOpen: the Gateway picks a pod of the pool itself meanwhile.",
    )


class InferenceExtensionSpec(ApiModel):
    """The Gateway API Inference Extension objects of the model: an InferencePool
    (inference.networking.k8s.io/v1) over its serving pods that the HTTPRoute sends to, whose
    endpoint picker routes each request by queue depth and KV-cache use, and an
    InferenceObjective (inference.networking.x-k8s.io/v1alpha2) giving its requests a priority."""

    endpoint_picker: EndpointPickerRef = Field(
        default_factory=EndpointPickerRef, description="The endpoint picker the InferencePool names."
    )
    priority: int | None = Field(
        default=None,
        ge=-1_000_000,
        le=1_000_000,
        description="The InferenceObjective's priority (higher is served first when the picker "
        "queues requests). Unset: from the model's tier, the number of the pool's tiers with a "
        "lower PriorityClass value (P0 2, P1 1, P2 0 with the default tiers).",
    )


class RoutingSpec(ApiModel):
    """An HTTPRoute from Gateways to the model's Service (or its Inference Extension pool)."""

    model_config = with_rules(
        cel(
            "!has(self.inferencePool) || (has(self.parentRefs) && size(self.parentRefs) > 0)",
            "routing.inferencePool needs routing.parentRefs: the InferencePool is what the model's "
            "HTTPRoute sends to",
            field_path=".inferencePool",
        ),
    )

    parent_refs: list[ParentReference] = Field(
        default_factory=list,
        max_length=MAX_PARENT_REFS,
        description="Gateways to attach the model's HTTPRoute to; empty: no route.",
        json_schema_extra=atomic_list(),
    )
    hostnames: list[Annotated[str, StringConstraints(pattern=HOSTNAME, max_length=253)]] = Field(
        default_factory=list,
        max_length=MAX_HOSTNAMES,
        description="Host names the route answers (e.g. chat.example.com, *.models.example.com); "
        "empty: every host name of the listener.",
        json_schema_extra=atomic_list(),
    )
    path_prefix: str = Field(
        default="/",
        description="Requests under this path go to the model, with the prefix replaced by / "
        "(e.g. /chat/v1/completions reaches the engine as /v1/completions).",
        pattern=PATH_PREFIX,
        max_length=1024,
    )
    request_timeout_seconds: int = Field(
        default=DEFAULT_REQUEST_TIMEOUT_SECONDS,
        ge=0,
        le=MAX_REQUEST_TIMEOUT_SECONDS,
        description="How long the Gateway waits for a whole response (a long generation streams "
        "for minutes); 0 disables the timeout.",
    )
    inference_pool: InferenceExtensionSpec | None = Field(
        default=None,
        description="Route through the Gateway API Inference Extension: gpupool renders an "
        "InferencePool (inference.networking.k8s.io/v1) over the model's serving pods and an "
        "InferenceObjective, and the HTTPRoute sends to the InferencePool, whose endpoint picker "
        "chooses the pod by queue depth and KV-cache use. The picker itself is not rendered: run "
        "it (docs/rollouts.md). Unset: the route sends to the model's Service.",
    )

    @model_validator(mode="after")
    def _pool_needs_a_route(self) -> Self:
        if self.inference_pool is not None and not self.parent_refs:
            raise ValueError(
                "routing.inferencePool needs routing.parentRefs: the InferencePool is what the "
                "model's HTTPRoute sends to"
            )
        return self


def parent_namespace(parent: ParentReference, model_namespace: str) -> str:
    return parent.namespace or model_namespace
