"""The accelerator catalog: every accelerator of DOMAIN §3, its sourced figures, and lookup."""

from __future__ import annotations

import pytest

from gpupool.catalog.accelerators import (
    ACCELERATORS,
    UnknownAcceleratorError,
    accelerator_names,
    get_accelerator,
)
from gpupool.catalog.types import Precision, Vendor

MIB = 1024**2


def test_catalog_holds_every_accelerator_of_the_domain_brief() -> None:
    assert accelerator_names() == [
        "H100-80GB",
        "H200-141GB",
        "A100-40GB",
        "A100-80GB",
        "L40S-48GB",
        "L4-24GB",
        "RTX4090-24GB",
        "RTX5090-32GB",
        "H800-80GB",
        "H20-96GB",
        "H200-NVL-141GB",
        "B200-180GB",
        "GB200-186GB",
        "L20-48GB",
        "RTXPRO6000-96GB",
        "Ascend910B",
        "Ascend910B4",
        "Ascend910C",
        "Atlas300IDuo-48GB",
    ]


def test_names_and_product_labels_are_unique() -> None:
    labels = [a.product_label for a in ACCELERATORS.values()]
    labels += [alias for a in ACCELERATORS.values() for alias in a.product_label_aliases]
    assert len(set(labels)) == len(labels)
    assert len(set(accelerator_names())) == len(ACCELERATORS)


@pytest.mark.parametrize(
    ("name", "mib", "bandwidth_gb_s"),
    [
        # nvidia-smi memory.total in MiB; datasheet bandwidth in GB/s.
        ("H100-80GB", 81_559, 3_350),
        ("H200-141GB", 143_771, 4_800),
        ("A100-40GB", 40_960, 1_555),
        ("A100-80GB", 81_920, 2_039),
        ("L40S-48GB", 46_068, 864),
        ("L4-24GB", 23_034, 300),
        ("RTX4090-24GB", 24_564, 1_008),
        ("RTX5090-32GB", 32_607, 1_792),
        ("H800-80GB", 81_559, 3_350),
        ("H20-96GB", 97_871, 4_000),
        ("H200-NVL-141GB", 143_771, 4_800),
        ("B200-180GB", 183_359, 8_000),
        ("GB200-186GB", 189_471, 8_000),
        ("L20-48GB", 46_068, 864),
        ("RTXPRO6000-96GB", 97_887, 1_792),
    ],
)
def test_nvidia_figures(name: str, mib: int, bandwidth_gb_s: int) -> None:
    accel = get_accelerator(name)
    assert accel.memory_bytes == mib * MIB
    assert accel.memory_bandwidth_bytes_per_second == bandwidth_gb_s * 10**9
    assert accel.vendor is Vendor.NVIDIA
    assert accel.resource_name == "nvidia.com/gpu"
    assert accel.product_label_key == "nvidia.com/gpu.product"


def test_reported_memory_is_close_to_the_datasheet_capacity() -> None:
    # What the driver reports sits within a few percent of the marketing capacity in GB.
    datasheet_gb = {"H100-80GB": 80, "H200-141GB": 141, "A100-80GB": 80, "L40S-48GB": 48}
    for name, gigabytes in datasheet_gb.items():
        ratio = get_accelerator(name).memory_bytes / (gigabytes * 10**9)
        assert 0.95 < ratio < 1.1, name


def test_fp8_needs_ada_hopper_or_blackwell() -> None:
    for name in ("H100-80GB", "H200-141GB", "L40S-48GB", "L4-24GB", "RTX4090-24GB"):
        assert Precision.FP8 in get_accelerator(name).supported_precisions
    for name in ("A100-40GB", "A100-80GB", "Ascend910B", "Ascend910B4"):
        assert Precision.FP8 not in get_accelerator(name).supported_precisions


def test_ascend_serves_int8_and_uses_its_own_resource_and_label() -> None:
    for name in ("Ascend910B", "Ascend910B4"):
        accel = get_accelerator(name)
        assert accel.vendor is Vendor.ASCEND
        assert Precision.INT8 in accel.supported_precisions
        assert accel.resource_name == "huawei.com/Ascend910"
        assert accel.product_label_key == "node.kubernetes.io/npu.chip.name"
    # npu-smi: "HBM-Usage(MB) ... / 65536" per 910B, 64 GiB.
    assert get_accelerator("Ascend910B").memory_bytes == 65_536 * MIB
    assert get_accelerator("Ascend910B4").memory_bytes == 32 * 10**9
    # No published bandwidth for the 910B4: plans ask for a measured QPS instead.
    assert get_accelerator("Ascend910B4").memory_bandwidth_bytes_per_second is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("H100-80GB", "H100-80GB"),
        ("h100-80gb", "H100-80GB"),
        ("h100", "H100-80GB"),
        ("H100-SXM-80GB", "H100-80GB"),
        ("NVIDIA-H100-80GB-HBM3", "H100-80GB"),
        ("h200", "H200-141GB"),
        ("a100_80gb", "A100-80GB"),
        ("l40s", "L40S-48GB"),
        ("rtx 4090", "RTX4090-24GB"),
        ("5090", "RTX5090-32GB"),
        ("ascend910b", "Ascend910B"),
        ("910B2", "Ascend910B"),
        ("910b4", "Ascend910B4"),
    ],
)
def test_lookup_is_case_insensitive_and_knows_aliases(query: str, expected: str) -> None:
    assert get_accelerator(query).name == expected


def test_unknown_name_lists_close_matches_and_every_known_name() -> None:
    with pytest.raises(UnknownAcceleratorError) as error:
        get_accelerator("a100")  # ambiguous: 40 GB or 80 GB
    message = str(error.value)
    assert "Did you mean A100-40GB, A100-80GB" in message
    assert "Known accelerators: H100-80GB, H200-141GB" in message
    assert isinstance(error.value, ValueError)


def test_unknown_name_without_look_alikes_still_lists_the_catalog() -> None:
    with pytest.raises(UnknownAcceleratorError, match=r"Known accelerators: .*Ascend910B4"):
        get_accelerator("tpu-v5e")


def test_blackwell_serves_fp4_and_hopper_does_not() -> None:
    for name in ("B200-180GB", "GB200-186GB", "RTXPRO6000-96GB"):
        assert Precision.FP4 in get_accelerator(name).supported_precisions
    for name in ("H100-80GB", "H200-141GB", "H20-96GB", "L20-48GB"):
        assert Precision.FP4 not in get_accelerator(name).supported_precisions


def test_gb200_is_one_nvlink_domain_of_72() -> None:
    assert get_accelerator("GB200-186GB").scale_up_domain == 72


def test_new_ascend_devices() -> None:
    a3 = get_accelerator("910C")
    assert a3.name == "Ascend910C"
    # Each 910C die is one NPU of 65,536 MB; an Atlas 800 A3 node has 16.
    assert a3.memory_bytes == 65_536 * MIB
    assert a3.scale_up_domain == 16
    duo = get_accelerator("atlas-300i-duo")
    assert duo.resource_name == "huawei.com/Ascend310P"
    # The 310P has no bf16: vllm-ascend serves it in float16 or W8A8.
    assert Precision.BF16 not in duo.supported_precisions
    assert duo.supported_precisions == (Precision.FP16, Precision.INT8)
