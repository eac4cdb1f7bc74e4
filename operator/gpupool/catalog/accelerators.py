"""The accelerator catalog: the GPUs and NPUs gpupool can size deployments for.

Sources, per field:
- memory_bytes: what the driver reports to software, because vLLM's gpu_memory_utilization is a
  fraction of that figure. For NVIDIA it is nvidia-smi's memory.total (the value GPU feature
  discovery publishes as nvidia.com/gpu.memory), in MiB, as printed by the cards in public logs.
- memory_bandwidth_bytes_per_second: the vendor datasheet's peak figure.
- product_label: GPU feature discovery publishes nvidia-smi's product name with spaces turned into
  dashes as nvidia.com/gpu.product (e.g. NVIDIA-H100-80GB-HBM3); the Ascend device plugin
  publishes the chip name (910B1..910B4) as node.kubernetes.io/npu.chip.name
  (https://www.hiascend.com/document/detail/zh/mindcluster/60rc3/clustersched/reference/api/dlug_api_039.html).
- supported_precisions: FP8 tensor cores need compute capability 8.9 or later (Ada, Hopper,
  Blackwell); INT8 and INT4 weight formats run on Ampere and later
  (https://docs.redhat.com/en/documentation/red_hat_ai/3/html/supported_product_and_hardware_configurations/rhaiis-gpu-quantization-support_supported-configurations).
  Ascend 910B (Atlas A2) serves W8A8, W8A16 and W4A16 but has no FP8 format: SGLang's Ascend
  quantisation table marks the FP8 schemes unsupported on A2/A3 and in progress on the 950
  generation (https://docs.sglang.io/platforms/ascend/ascend_npu_quantization.html); MindIE
  documents W8A8 on Atlas 800I A2
  (https://www.hiascend.com/document/detail/zh/mindie/100/mindiellm/llmdev/mindie_llm0288.html).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from gpupool.catalog.types import Accelerator, Precision, Vendor

MIB = 1024**2
GB = 10**9
TB_PER_SECOND = 10**12
GB_PER_SECOND = 10**9

NVIDIA_RESOURCE = "nvidia.com/gpu"
NVIDIA_PRODUCT_LABEL = "nvidia.com/gpu.product"
ASCEND_RESOURCE = "huawei.com/Ascend910"
# Huawei Cloud CCE advertises Atlas A3 (Ascend 910C) dies as huawei.com/ascend-1980.
ASCEND_CCE_RESOURCE = "huawei.com/ascend-1980"
# The Ascend device plugin advertises 310P chips (Atlas 300I Duo) as huawei.com/Ascend310P.
ASCEND_310P_RESOURCE = "huawei.com/Ascend310P"
ASCEND_PRODUCT_LABEL = "node.kubernetes.io/npu.chip.name"

_FP8_CAPABLE = (Precision.BF16, Precision.FP16, Precision.FP8, Precision.INT8, Precision.INT4)
_NO_FP8 = (Precision.BF16, Precision.FP16, Precision.INT8, Precision.INT4)
# FP4 tensor cores (NVFP4, MXFP4) are Blackwell's (compute capability 10.0 and 12.0).
_FP4_CAPABLE = (*_FP8_CAPABLE, Precision.FP4)
# Ascend A2/A3: bf16, fp16, and the ModelSlim W8A8 / W4A8 / W4A16 formats; no FP8 or FP4.
_ASCEND = _NO_FP8
# Ascend 310P (Atlas 300I Duo) has no bf16: vllm-ascend serves it in float16, or W8A8
# (https://docs.vllm.ai/projects/ascend/en/latest/tutorials/single_node_300i.html).
_ASCEND_310P = (Precision.FP16, Precision.INT8)


class UnknownAcceleratorError(ValueError):
    """Raised when an accelerator name is not in the catalog."""


_CATALOG: tuple[Accelerator, ...] = (
    Accelerator(
        name="H100-80GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA H100 80GB HBM3 ... / 81559MiB" (datasheet: 80 GB HBM3).
        memory_bytes=81_559 * MIB,
        # 3.35 TB/s, H100 SXM, https://www.nvidia.com/en-us/data-center/h100/
        memory_bandwidth_bytes_per_second=3_350 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-H100-80GB-HBM3",
        supported_precisions=_FP8_CAPABLE,
        description="NVIDIA H100 SXM5, 80 GB HBM3, Hopper, NVLink within an HGX node.",
    ),
    Accelerator(
        name="H200-141GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA H200 ... / 143771MiB" (datasheet: 141 GB HBM3e).
        memory_bytes=143_771 * MIB,
        # 4.8 TB/s, H200 SXM, https://www.nvidia.com/en-us/data-center/h200/
        memory_bandwidth_bytes_per_second=4_800 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-H200",
        supported_precisions=_FP8_CAPABLE,
        description="NVIDIA H200 SXM, 141 GB HBM3e, Hopper, NVLink within an HGX node.",
    ),
    Accelerator(
        name="A100-40GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA A100-SXM4-40GB ... / 40960MiB".
        memory_bytes=40_960 * MIB,
        # 1,555 GB/s, A100 40GB SXM, https://www.nvidia.com/en-us/data-center/a100/
        memory_bandwidth_bytes_per_second=1_555 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-A100-SXM4-40GB",
        supported_precisions=_NO_FP8,
        description="NVIDIA A100 SXM4, 40 GB HBM2, Ampere (no FP8 tensor cores).",
    ),
    Accelerator(
        name="A100-80GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA A100-SXM4-80GB ... / 81920MiB".
        memory_bytes=81_920 * MIB,
        # 2,039 GB/s, A100 80GB SXM, https://www.nvidia.com/en-us/data-center/a100/
        memory_bandwidth_bytes_per_second=2_039 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-A100-SXM4-80GB",
        supported_precisions=_NO_FP8,
        description="NVIDIA A100 SXM4, 80 GB HBM2e, Ampere (no FP8 tensor cores).",
    ),
    Accelerator(
        name="L40S-48GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA L40S ... / 46068MiB" (datasheet: 48 GB GDDR6 with ECC).
        memory_bytes=46_068 * MIB,
        # 864 GB/s, https://www.nvidia.com/en-us/data-center/l40s/
        memory_bandwidth_bytes_per_second=864 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-L40S",
        supported_precisions=_FP8_CAPABLE,
        description="NVIDIA L40S, 48 GB GDDR6, Ada Lovelace, PCIe only (no NVLink).",
    ),
    Accelerator(
        name="L4-24GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA L4 ... / 23034MiB" (datasheet: 24 GB GDDR6).
        memory_bytes=23_034 * MIB,
        # 300 GB/s, https://www.nvidia.com/en-us/data-center/l4/
        memory_bandwidth_bytes_per_second=300 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-L4",
        supported_precisions=_FP8_CAPABLE,
        description="NVIDIA L4, 24 GB GDDR6, Ada Lovelace, 72 W low-profile PCIe card.",
    ),
    Accelerator(
        name="RTX4090-24GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA GeForce RTX 4090 ... / 24564MiB" (spec: 24 GB GDDR6X).
        memory_bytes=24_564 * MIB,
        # 1,008 GB/s = 21 Gbps x 384-bit / 8, GeForce RTX 4090 specifications,
        # https://www.nvidia.com/en-us/geforce/graphics-cards/40-series/rtx-4090/
        memory_bandwidth_bytes_per_second=1_008 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-GeForce-RTX-4090",
        supported_precisions=_FP8_CAPABLE,
        description="NVIDIA GeForce RTX 4090, 24 GB GDDR6X, Ada Lovelace, PCIe only.",
    ),
    Accelerator(
        name="RTX5090-32GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA GeForce RTX 5090 ... / 32607MiB" (spec: 32 GB GDDR7).
        memory_bytes=32_607 * MIB,
        # 1,792 GB/s = 28 Gbps x 512-bit / 8, GeForce RTX 5090 specifications,
        # https://www.nvidia.com/en-us/geforce/graphics-cards/50-series/rtx-5090/
        memory_bandwidth_bytes_per_second=1_792 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-GeForce-RTX-5090",
        supported_precisions=_FP8_CAPABLE,
        description="NVIDIA GeForce RTX 5090, 32 GB GDDR7, Blackwell, PCIe only.",
    ),
    Accelerator(
        name="H800-80GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA H800 ... / 81559MiB": the H100 SXM5's 80 GB HBM3 with NVLink cut
        # to 400 GB/s for export.
        memory_bytes=81_559 * MIB,
        # 3.35 TB/s, the H100 SXM figure; the H800 keeps the H100's memory system
        # (https://www.nvidia.com/en-us/data-center/h100/, H100 SXM column).
        memory_bandwidth_bytes_per_second=3_350 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-H800",
        supported_precisions=_FP8_CAPABLE,
        description="NVIDIA H800 SXM5, 80 GB HBM3, Hopper with 400 GB/s NVLink (China market).",
    ),
    Accelerator(
        name="H20-96GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA H20 ... / 97871MiB" (96 GB HBM3).
        memory_bytes=97_871 * MIB,
        # 4.0 TB/s; NVIDIA publishes no H20 page, the figure is the one vendors list
        # (https://willitrunai.com/es/gpus/h20-96gb).
        memory_bandwidth_bytes_per_second=4_000 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-H20",
        supported_precisions=_FP8_CAPABLE,
        description="NVIDIA H20, 96 GB HBM3, Hopper with cut compute, NVLink within an HGX node.",
    ),
    Accelerator(
        name="H200-NVL-141GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA H200 NVL ... 143771 MiB", the same capacity as the H200 SXM.
        memory_bytes=143_771 * MIB,
        # 4.8 TB/s, H200 NVL column of https://www.nvidia.com/en-us/data-center/h200/
        memory_bandwidth_bytes_per_second=4_800 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-H200-NVL",
        supported_precisions=_FP8_CAPABLE,
        scale_up_domain=4,
        description="NVIDIA H200 NVL, 141 GB HBM3e, PCIe card with 2- or 4-way NVLink bridges.",
    ),
    Accelerator(
        name="B200-180GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA B200 ... / 183359MiB" (datasheet: 180 GB HBM3e per GPU).
        memory_bytes=183_359 * MIB,
        # 8 TB/s: DGX B200's 64 TB/s HBM3e bandwidth over its 8 GPUs,
        # https://www.nvidia.com/en-us/data-center/dgx-b200/
        memory_bandwidth_bytes_per_second=8_000 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-B200",
        supported_precisions=_FP4_CAPABLE,
        description="NVIDIA B200 SXM, 180 GB HBM3e, Blackwell (FP4), NVLink 5 within an HGX node.",
    ),
    Accelerator(
        name="GB200-186GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA GB200 ... / 189471MiB" (GB200 NVL72: 13.4 TB HBM3e over 72 GPUs).
        memory_bytes=189_471 * MIB,
        # 8 TB/s: GB200 NVL72's 576 TB/s over its 72 GPUs,
        # https://www.nvidia.com/en-us/data-center/gb200-nvl72/
        memory_bandwidth_bytes_per_second=8_000 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-GB200",
        supported_precisions=_FP4_CAPABLE,
        # One NVLink domain of 72 GPUs across 18 compute trays of 4 (same page).
        scale_up_domain=72,
        description="NVIDIA GB200 (Grace Blackwell), 186 GB HBM3e, one NVLink domain of 72 GPUs.",
    ),
    Accelerator(
        name="L20-48GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA L20 ... / 46068MiB" (48 GB GDDR6 with ECC, as the L40S).
        memory_bytes=46_068 * MIB,
        # 864 GB/s, https://www.nvidia.cn/data-center/products/l20/ (the L40S's memory system).
        memory_bandwidth_bytes_per_second=864 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-L20",
        supported_precisions=_FP8_CAPABLE,
        description="NVIDIA L20, 48 GB GDDR6, Ada Lovelace, PCIe only (China market).",
    ),
    Accelerator(
        name="RTXPRO6000-96GB",
        vendor=Vendor.NVIDIA,
        # nvidia-smi: "NVIDIA RTX PRO 6000 Blackwell Server Edition ... / 97887MiB" (96 GB GDDR7).
        memory_bytes=97_887 * MIB,
        # 1,792 GB/s,
        # https://www.nvidia.com/en-us/data-center/rtx-pro-6000-blackwell-server-edition/
        memory_bandwidth_bytes_per_second=1_792 * GB_PER_SECOND,
        resource_name=NVIDIA_RESOURCE,
        product_label_key=NVIDIA_PRODUCT_LABEL,
        product_label="NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition",
        supported_precisions=_FP4_CAPABLE,
        description="NVIDIA RTX PRO 6000 Blackwell Server Edition, 96 GB GDDR7, PCIe only.",
    ),
    Accelerator(
        name="Ascend910B",
        vendor=Vendor.ASCEND,
        # npu-smi reports "HBM-Usage(MB) ... / 65536" per 910B2/910B3 (64 GiB), e.g.
        # https://github.com/vllm-project/vllm-ascend/issues/1903 and
        # https://github.com/vllm-project/vllm-ascend/issues/4505; torch_npu's mem_get_info,
        # which vllm-ascend's gpu_memory_utilization multiplies, reports the same capacity.
        memory_bytes=65_536 * MIB,
        # UNVERIFIED: ~1.6 TB/s is the figure gpupool's domain brief uses; Huawei publishes no
        # datasheet bandwidth for the 910B and third-party figures disagree (0.4, 0.77, 1.6
        # TB/s). Prefer a measured qpsPerInstance on Ascend.
        memory_bandwidth_bytes_per_second=1_600 * GB_PER_SECOND,
        resource_name=ASCEND_RESOURCE,
        product_label_key=ASCEND_PRODUCT_LABEL,
        product_label="910B3",
        product_label_aliases=("910B1", "910B2", "910B2C"),
        supported_precisions=_ASCEND,
        description="Huawei Ascend 910B1-B3, 64 GB HBM2e, HCCS within an Atlas 800 A2 node.",
    ),
    Accelerator(
        name="Ascend910B4",
        vendor=Vendor.ASCEND,
        # 32 GB HBM2e, taken as 32 x 10^9 bytes for the same reason as Ascend910B.
        memory_bytes=32 * GB,
        # No bandwidth: neither Huawei nor a consistent third party publishes one, so the
        # sizing engine asks for a measured qpsPerInstance instead of estimating.
        memory_bandwidth_bytes_per_second=None,
        resource_name=ASCEND_RESOURCE,
        product_label_key=ASCEND_PRODUCT_LABEL,
        product_label="910B4",
        supported_precisions=_ASCEND,
        description="Huawei Ascend 910B4, 32 GB HBM2e, used in Atlas 800I A2 inference servers.",
    ),
    Accelerator(
        name="Ascend910C",
        vendor=Vendor.ASCEND,
        # An Ascend 910C package holds two dies; npu-smi and the device plugin show each die
        # as one NPU of "HBM-Usage(MB) ... / 65536", 16 per Atlas 800 A3 node
        # (https://github.com/vllm-project/vllm-ascend/issues/2035).
        memory_bytes=65_536 * MIB,
        # Huawei publishes no bandwidth for the 910C: measure qpsPerInstance.
        memory_bandwidth_bytes_per_second=None,
        resource_name=ASCEND_RESOURCE,
        product_label_key=ASCEND_PRODUCT_LABEL,
        product_label="910C",
        supported_precisions=_ASCEND,
        scale_up_domain=16,
        description="Huawei Ascend 910C die (Atlas A3), 64 GB HBM, 16 dies per Atlas 800 A3 node.",
    ),
    Accelerator(
        name="Atlas300IDuo-48GB",
        vendor=Vendor.ASCEND,
        # One Atlas 300I Duo card carries two Ascend 310P3 chips with 48 GB LPDDR4X each; npu-smi
        # shows each chip as one NPU reporting 43,693 to 44,280 MB
        # (https://github.com/vllm-project/vllm-ascend/issues/1141); the smallest is taken.
        memory_bytes=43_693 * MIB,
        # 408 GB/s per card, two chips: 204 GB/s per chip
        # (https://www.elektronikpraxis.de/huawei-zeigt-mit-der-atlas-300i-duo-dass-der-weg-zur-unabhaengigkeit-von-nvidia-begonnen-hat-a-deb1ef4fcfe19c3dc4d27c214cd519d1).
        memory_bandwidth_bytes_per_second=204 * GB_PER_SECOND,
        resource_name=ASCEND_310P_RESOURCE,
        product_label_key=ASCEND_PRODUCT_LABEL,
        product_label="310P3",
        supported_precisions=_ASCEND_310P,
        description="Huawei Atlas 300I Duo chip (Ascend 310P3), 48 GB LPDDR4X, PCIe inference card.",
    ),
)

# Every accelerator by catalog name, in catalog order.
ACCELERATORS: Mapping[str, Accelerator] = MappingProxyType({a.name: a for a in _CATALOG})

# Obvious other spellings; lookups also accept any catalog name or product label in any case and
# with any punctuation. "a100" alone is ambiguous (40 GB or 80 GB) and so is not an alias.
_ALIASES: dict[str, str] = {
    "h100": "H100-80GB",
    "h100-sxm": "H100-80GB",
    "h100-sxm-80gb": "H100-80GB",
    "h100-sxm5-80gb": "H100-80GB",
    "h200": "H200-141GB",
    "h200-sxm": "H200-141GB",
    "a100-sxm4-40gb": "A100-40GB",
    "a100-sxm4-80gb": "A100-80GB",
    "l40s": "L40S-48GB",
    "l4": "L4-24GB",
    "rtx4090": "RTX4090-24GB",
    "4090": "RTX4090-24GB",
    "rtx5090": "RTX5090-32GB",
    "5090": "RTX5090-32GB",
    "910b": "Ascend910B",
    "ascend-910b": "Ascend910B",
    "910b4": "Ascend910B4",
    "h800": "H800-80GB",
    "h20": "H20-96GB",
    "h200-nvl": "H200-NVL-141GB",
    "b200": "B200-180GB",
    "gb200": "GB200-186GB",
    "l20": "L20-48GB",
    "rtx-pro-6000": "RTXPRO6000-96GB",
    "rtx-pro-6000-blackwell": "RTXPRO6000-96GB",
    "910c": "Ascend910C",
    "ascend-910c": "Ascend910C",
    "atlas-a3": "Ascend910C",
    "300i-duo": "Atlas300IDuo-48GB",
    "atlas-300i-duo": "Atlas300IDuo-48GB",
    "310p": "Atlas300IDuo-48GB",
}


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _build_index(accelerators: Iterable[Accelerator]) -> dict[str, Accelerator]:
    by_name = {accelerator.name: accelerator for accelerator in accelerators}
    index: dict[str, Accelerator] = {}
    for accelerator in by_name.values():
        index[_normalise(accelerator.name)] = accelerator
        index[_normalise(accelerator.product_label)] = accelerator
        for label in accelerator.product_label_aliases:
            index[_normalise(label)] = accelerator
    for alias, name in _ALIASES.items():
        index[_normalise(alias)] = by_name[name]
    return index


_INDEX = _build_index(ACCELERATORS.values())


def accelerator_names() -> list[str]:
    """Catalog names of every known accelerator, in catalog order."""
    return list(ACCELERATORS)


def get_accelerator(name: str) -> Accelerator:
    """The catalog accelerator called `name` (any case; aliases such as `h100` work).

    Raises UnknownAcceleratorError, whose message lists close matches and every known name.
    """
    found = _INDEX.get(_normalise(name))
    if found is not None:
        return found
    wanted = _normalise(name)
    # Names that contain what was typed first (a100 -> A100-40GB, A100-80GB), then look-alikes.
    containing = [key for key in _INDEX if wanted and wanted in key]
    close = difflib.get_close_matches(wanted, list(_INDEX), n=5, cutoff=0.5)
    suggestions: list[str] = []
    for key in containing + close:
        candidate = _INDEX[key].name
        if candidate not in suggestions:
            suggestions.append(candidate)
    hint = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
    raise UnknownAcceleratorError(
        f"unknown accelerator {name!r}.{hint} Known accelerators: {', '.join(accelerator_names())}."
    )
