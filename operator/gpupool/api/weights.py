"""Where a model's weights are read from: a cache volume downloaded once, and a pool's load rates.

`ModelDeployment.spec.weights.cache` downloads the Hugging Face repository once per (model,
revision) into a PersistentVolumeClaim, with a Job, and mounts it read-only into every instance;
`InferencePool.spec.weightLoading` gives the rates at which an instance of the pool reads weights
from each source, so that the plan's load time (startup probes, the autoscaler's horizon) follows
where they come from (docs/weights.md).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from gpupool.api.base import ApiModel
from gpupool.api.tenancy import QUANTITY_PATTERN, parse_quantity_bytes

# Hugging Face's Python download client tops out near 500 MB/s on very high-bandwidth networks:
# hf_transfer's README (github.com/huggingface/hf_transfer) exists "to go beyond ~500MB/s ...
# where Python cannot cap out the available bandwidth". An upper bound for one node's download.
DEFAULT_DOWNLOAD_MBPS = 500
# The sequential read rate of a PCIe Gen4 data-center NVMe drive: Micron 7450, "around 6.8GB/s"
# (ServeTheHome, "Micron 7450 SSDs Launched with 176-Layer NAND"). The disk under an emptyDir or
# a local PersistentVolume; vLLM's loader rarely reaches it, so measure and set it where you can.
DEFAULT_LOCAL_NVME_MBPS = 6_800
# One NFS client of Amazon EFS reads at most 500 MiB/s ("A single client cannot transfer more than
# 500 MiBps", Amazon EFS performance, docs.aws.amazon.com/efs/latest/ug/performance.html as quoted
# in "Amazon Web Services in Action", 3rd ed., 9.5.2): 524 MB/s.
DEFAULT_NETWORK_FILE_SYSTEM_MBPS = 524

MAX_MBPS = 1_000_000


class AccessMode(StrEnum):
    READ_WRITE_MANY = "ReadWriteMany"
    READ_WRITE_ONCE = "ReadWriteOnce"


class WeightsCache(ApiModel):
    """A PersistentVolumeClaim the weights are downloaded into once, then mounted by every instance."""

    enabled: bool = Field(
        default=True,
        description="Download the weights once into a cache volume; false: each instance downloads "
        "them into its own emptyDir (the cache volumes are then deleted).",
    )
    storage_class_name: str | None = Field(
        default=None,
        description="StorageClass of the cache volume; unset: the cluster's default class.",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        max_length=253,
    )
    size: str | None = Field(
        default=None,
        description="Size of the cache volume, a Kubernetes quantity (e.g. 200Gi); unset: the "
        "model's checkpoint bytes plus 20%, in whole GiB.",
        pattern=QUANTITY_PATTERN,
        max_length=32,
    )
    access_mode: AccessMode = Field(
        default=AccessMode.READ_WRITE_MANY,
        description="ReadWriteMany (the default: every instance mounts it, on any node) or "
        "ReadWriteOnce (one node: a model of one instance on one node only).",
    )

    @field_validator("size")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None and parse_quantity_bytes(value) <= 0:
            raise ValueError("weights.cache.size must be more than 0 bytes")
        return value


class WeightLoading(ApiModel):
    """How fast an instance of the pool reads its weights from each source, in MB/s (10^6 bytes)."""

    download_mbps: int = Field(
        default=DEFAULT_DOWNLOAD_MBPS,
        ge=1,
        le=MAX_MBPS,
        description="Download rate from Hugging Face of one node (an instance without a cache "
        "downloads its weights, then reads them from local disk).",
    )
    local_nvme_mbps: int = Field(
        default=DEFAULT_LOCAL_NVME_MBPS,
        ge=1,
        le=MAX_MBPS,
        description="Read rate of the nodes' local disks: emptyDir downloads and ReadWriteOnce "
        "cache volumes.",
    )
    network_file_system_mbps: int = Field(
        default=DEFAULT_NETWORK_FILE_SYSTEM_MBPS,
        ge=1,
        le=MAX_MBPS,
        description="Read rate of one client of the network file system behind ReadWriteMany cache "
        "volumes and weights.pvc claims.",
    )


class WeightsPhase(StrEnum):
    PENDING = "Pending"
    DOWNLOADING = "Downloading"
    READY = "Ready"
    FAILED = "Failed"


class WeightsStatus(ApiModel):
    """The cache of the revision the spec asks for, as the cluster holds it."""

    phase: WeightsPhase = Field(description="Pending, Downloading, Ready or Failed.")
    repository: str = Field(description="Hugging Face repository downloaded.")
    revision: str = Field(description="Revision downloaded (main when the spec names none).")
    size: str = Field(description="Size of the cache volume.")
    claim_name: str = Field(description="The cache's PersistentVolumeClaim.")
    job_name: str | None = Field(default=None, description="The download Job of the latest attempt.")
    attempts: int = Field(default=0, ge=0, description="Download Jobs created for this revision.")
