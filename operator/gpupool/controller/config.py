"""The operator's settings: one `OperatorConfig`, built once at start from `gpupool run`'s flags and
the `GPUPOOL_*` environment (a flag wins over its variable, a variable over the default).

docs/reliability.md ("Configuration") and charts/gpupool/values.yaml list each setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where the operator runs when neither GPUPOOL_NAMESPACE nor a ServiceAccount says: the namespace
# the chart's kustomize base installs into.
DEFAULT_OPERATOR_NAMESPACE = "gpupool-system"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class OperatorConfig(BaseSettings):
    """Every setting of `gpupool run`; the environment variable is GPUPOOL_ and the name in capitals."""

    model_config = SettingsConfigDict(env_prefix="GPUPOOL_", extra="ignore", frozen=True)

    # -- process --------------------------------------------------------------------------------
    kubeconfig: str | None = Field(
        None,
        description=(
            "kubeconfig file (unset: the files $KUBECONFIG lists, else ~/.kube/config), with a token, "
            "client certificate, basic auth or exec plugin; in-cluster credentials win when the "
            "operator runs in a pod"
        ),
    )
    health_address: str = Field("0.0.0.0:8080", description="host:port of /healthz")
    metrics_address: str = Field("0.0.0.0", description="address of the Prometheus /metrics endpoint")
    metrics_port: int = Field(9090, ge=1, le=65535, description="port of the Prometheus /metrics endpoint")
    verbose: bool = Field(False, description="debug logging, kopf's own included")
    log_format: Literal["text", "json"] = Field("text", description="json: one object per line")
    namespace: str = Field(
        "",
        description="the operator's own namespace, whose Secrets hold Prometheus credentials; empty: "
        "the ServiceAccount's namespace, else gpupool-system",
    )

    # -- the work queue -------------------------------------------------------------------------
    workers: int = Field(8, ge=1, description="worker threads taking keys from the work queue")
    resync_seconds: float = Field(
        60.0, gt=0, description="seconds between resyncs, which queue every pool and model again"
    )
    retry_base_seconds: float = Field(
        0.05, gt=0, description="backoff of a key's first failed pass; doubled per failure in a row"
    )
    retry_max_seconds: float = Field(300.0, gt=0, description="the longest backoff of a failed pass")
    pool_accounting_seconds: float = Field(
        2.0,
        ge=0,
        description="a pool is recounted this long after its pods, workloads or nodes change, "
        "once for every change in between",
    )
    status_refresh_seconds: float = Field(
        0.5,
        ge=0,
        description="a model's status follows its Deployments' readiness this long after they "
        "change, once for every change in between",
    )
    queued_objects: int = Field(
        64, ge=1, description="objects whose watch events are in flight at once; past it the watch waits"
    )

    # -- autoscaling ----------------------------------------------------------------------------
    autoscaler_tick_seconds: float = Field(
        1.0, gt=0, description="how often the autoscaler looks for pools whose evaluation is due"
    )
    autoscaler_persist_seconds: float = Field(
        60.0,
        gt=0,
        description="an unchanged decision refreshes the scaling state in the model's status at most "
        "this often (what a restart can lose of the stabilisation history)",
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> OperatorConfig:
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("retry_max_seconds must be at least retry_base_seconds")
        return self

    @classmethod
    def from_flags(cls, **flags: Any) -> OperatorConfig:
        """The flags given (None: not given, the environment or the default applies)."""
        return cls(**{name: value for name, value in flags.items() if value is not None})

    def operator_namespace(self) -> str:
        """The namespace whose Secrets hold Prometheus credentials: the operator's own."""
        if self.namespace.strip():
            return self.namespace.strip()
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or DEFAULT_OPERATOR_NAMESPACE
        except OSError:
            return DEFAULT_OPERATOR_NAMESPACE


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every setting, for the docs."""
    rows = []
    for name, info in OperatorConfig.model_fields.items():
        default = "" if info.default is None else str(info.default)
        rows.append((f"GPUPOOL_{name.upper()}", default, info.description or ""))
    return rows
