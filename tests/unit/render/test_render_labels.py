"""Names and label values: always valid for Kubernetes, stable, and distinct when cut."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gpupool.api.v1alpha1 import Tier
from gpupool.render import label_value, object_name, priority_class_name, selector_labels
from gpupool.render.labels import (
    SELECTOR_LABEL,
    is_valid_label_value,
    is_valid_name,
    workload_labels,
)


def test_valid_values_are_kept() -> None:
    assert label_value("llama-3.1-8b") == "llama-3.1-8b"
    assert label_value("P0") == "P0"
    assert object_name("llama-3-1-8b") == "llama-3-1-8b"


def test_invalid_characters_are_replaced() -> None:
    assert label_value("meta-llama/Llama-3.1-8B") == "meta-llama-Llama-3.1-8B"
    assert label_value("-x-") == "x"


def test_long_values_are_cut_with_a_hash() -> None:
    long = "a" * 80
    value = label_value(long)
    assert len(value) == 63 and is_valid_label_value(value)
    assert label_value("a" * 80) != label_value("a" * 81)


def test_names_that_are_not_dns_1035_labels_are_repaired() -> None:
    assert is_valid_name(object_name("1st-model"))
    assert object_name("1st-model").startswith("m-1st-model-")
    dotted = object_name("qwen2.5-7b")
    assert is_valid_name(dotted) and dotted.startswith("qwen2-5-7b-")
    assert is_valid_name(object_name("x" * 253, "model-repository"))
    assert object_name("x" * 253, "model-repository").endswith("-model-repository")


def test_priority_class_name() -> None:
    assert priority_class_name("nvidia-h100", "P0") == "gpupool-nvidia-h100-p0"
    assert priority_class_name("a", Tier(name="P2", priority=1)) == "gpupool-a-p2"


def test_selector_is_the_identity_label_only() -> None:
    assert selector_labels("qwen") == {SELECTOR_LABEL: "qwen"}


def test_workload_labels_are_sorted_and_complete() -> None:
    labels = workload_labels("m", model="llama-3.1-8b", pool="p", tier="P1", engine="vllm")
    assert list(labels) == sorted(labels)
    assert labels["app.kubernetes.io/managed-by"] == "gpupool"
    assert labels["gpupool.io/model-deployment"] == "m"


@given(st.text(max_size=300))
def test_any_text_becomes_a_valid_label_value(value: str) -> None:
    assert is_valid_label_value(label_value(value))
    assert label_value(value) == label_value(value)


subdomain = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", fullmatch=True)


@given(subdomain, st.sampled_from(["", "passwd", "model-repository"]))
def test_any_subdomain_becomes_a_valid_name(base: str, suffix: str) -> None:
    name = object_name(base, suffix)
    assert is_valid_name(name)
    if suffix:
        assert name.endswith(f"-{suffix}")


@given(subdomain, subdomain)
def test_distinct_long_bases_keep_distinct_names(a: str, b: str) -> None:
    if a != b:
        assert object_name(a) != object_name(b)
