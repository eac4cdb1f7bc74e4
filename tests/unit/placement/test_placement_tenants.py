"""Tenant quotas: the API types, the cap per tenant, and all caps together."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from placement_fixtures import make_pool, node, pod
from pydantic import ValidationError

from gpupool.api.crd import openapi_schema
from gpupool.api.tenancy import (
    LabelSelector,
    PoolPreference,
    SelectorRequirement,
    Tenant,
    format_quantity_bytes,
    parse_quantity_bytes,
    tenant_for_namespace,
    validate_tenants,
)
from gpupool.placement import InstanceRequest, PlacementReason, account_pool, instance_caps, tenant_cap

H100_BYTES = 81_559 * 1024**2
ASCEND_BYTES = 64 * 10**9


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("640Gi", 640 * 1024**3),
        ("512G", 512 * 10**9),
        ("1.5Ti", 3 * 1024**4 // 2),
        ("8e9", 8 * 10**9),
        ("1024", 1024),
    ],
)
def test_quantities_of_bytes(text: str, size: int) -> None:
    assert parse_quantity_bytes(text) == size


@pytest.mark.parametrize("text", ["", "10m", "Gi", "-1Gi", "1.5.2G", "1 Gi", "12GB"])
def test_what_is_not_a_quantity_of_bytes(text: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity_bytes(text)


@settings(max_examples=100)
@given(st.integers(0, 2**62))
def test_formatted_quantities_read_back(size: int) -> None:
    assert parse_quantity_bytes(format_quantity_bytes(size)) == size


def test_a_tenant_needs_namespaces_and_a_limit() -> None:
    with pytest.raises(ValidationError, match="namespaces or a namespaceSelector"):
        Tenant(name="a", max_accelerators=4)
    with pytest.raises(ValidationError, match="maxAccelerators or maxAcceleratorMemory"):
        Tenant(name="a", namespaces=["ns"])
    with pytest.raises(ValidationError, match="distinct"):
        Tenant(name="a", namespaces=["ns", "ns"], max_accelerators=1)
    with pytest.raises(ValidationError):
        Tenant(name="a", namespaces=["ns"], max_accelerator_memory="80GB")
    with pytest.raises(ValidationError, match="matchLabels or matchExpressions"):
        LabelSelector()
    with pytest.raises(ValidationError, match="non-empty for In"):
        SelectorRequirement(key="org", operator="In")


def test_the_wire_form_is_camel_case_and_reads_back() -> None:
    wire = {
        "name": "labs",
        "namespaceSelector": {"matchExpressions": [{"key": "org", "operator": "In", "values": ["labs"]}]},
        "maxAcceleratorMemory": "640Gi",
    }
    tenant = Tenant.model_validate(wire)
    assert tenant.to_wire() == {
        **wire,
        "namespaces": [],
        "namespaceSelector": {"matchLabels": {}, **wire["namespaceSelector"]},
    }
    assert (
        PoolPreference.model_validate({"name": "ascend", "priority": -1, "maxInstances": 4}).max_instances
        == 4
    )


def _structural_problems(node: Any, where: str = "") -> list[str]:
    if not isinstance(node, dict):
        return []
    problems = [f"{where}: {k}" for k in ("$ref", "anyOf", "allOf", "oneOf") if k in node]
    if "type" not in node:
        problems.append(f"{where}: no type")
    for name, child in (node.get("properties") or {}).items():
        problems += _structural_problems(child, f"{where}.{name}")
    if isinstance(node.get("items"), dict):
        problems += _structural_problems(node["items"], f"{where}[]")
    return problems


@pytest.mark.parametrize("model", [Tenant, PoolPreference])
def test_the_crd_schema_is_structural_and_carries_the_cel_rules(model: type[Any]) -> None:
    schema = openapi_schema(model)
    assert _structural_problems(schema) == []
    assert all(p.get("description") for p in schema["properties"].values())
    if model is Tenant:
        rules = [r["rule"] for r in schema["x-kubernetes-validations"]]
        assert any("namespaceSelector" in r for r in rules) and any("maxAccelerators" in r for r in rules)


def test_tenant_limits_in_whole_accelerators() -> None:
    both = Tenant(name="a", namespaces=["a"], max_accelerators=16, max_accelerator_memory="640Gi")
    assert both.max_accelerators_of(H100_BYTES) == 8  # 640 GiB / 79.6 GiB = 8.03
    assert both.max_accelerators_of(ASCEND_BYTES) == 10  # 687 GB / 64 GB = 10.7
    assert Tenant(name="a", namespaces=["a"], max_accelerators=3).max_accelerators_of(H100_BYTES) == 3


def test_listed_namespaces_win_over_selectors_and_first_selector_wins() -> None:
    tenants = [
        Tenant(name="one", namespace_selector=LabelSelector(match_labels={"org": "x"}), max_accelerators=1),
        Tenant(name="two", namespace_selector=LabelSelector(match_labels={"org": "x"}), max_accelerators=1),
        Tenant(name="three", namespaces=["special"], max_accelerators=1),
    ]
    assert tenant_for_namespace(tenants, "ns", {"org": "x"}) == tenants[0]
    assert tenant_for_namespace(tenants, "special", {"org": "x"}) == tenants[2]
    assert tenant_for_namespace(tenants, "ns", None) is None
    with pytest.raises(ValueError, match="listed by tenants"):
        validate_tenants([*tenants, Tenant(name="four", namespaces=["special"], max_accelerators=1)])
    with pytest.raises(ValueError, match="distinct: one"):
        validate_tenants([tenants[0], tenants[0]])


POOL = make_pool()
NODES = [node(f"n{i}") for i in range(4)]
TENANTS = [
    Tenant(name="search", namespaces=["search", "search-canary"], max_accelerators=12),
    Tenant(name="labs", namespaces=["labs"], max_accelerator_memory="400Gi"),
]


def ask(
    namespace: str, instances: int, tp: int = 4, tier: str = "P1", workload: str = "new"
) -> InstanceRequest:
    return InstanceRequest(f"{namespace}/{workload}", namespace, tier, tp, instances)


def test_the_tenant_cap_counts_all_its_namespaces_and_says_so() -> None:
    pods = [
        pod("a", 4, node_name="n0", namespace="search", model="chat"),
        pod("b", 4, namespace="search-canary", model="chat-next"),  # pending counts too
    ]
    state = account_pool(POOL, NODES, pods, tenants=TENANTS)
    cap = tenant_cap(state, ask("search", 3))
    assert (cap.allowed, cap.room, cap.reason) == (1, 4, PlacementReason.QUOTA_EXCEEDED)
    assert "tenant search may hold 12 accelerators" in cap.message
    assert "search-canary/chat-next 4" in cap.message
    # Its own pods never count against it.
    assert tenant_cap(state, ask("search", 2, workload="chat")).allowed == 2


def test_namespaces_of_no_tenant_are_not_capped_by_quota() -> None:
    state = account_pool(POOL, NODES, [], tenants=TENANTS)
    cap = tenant_cap(state, ask("misc", 50))
    assert not cap.capped and "belongs to no tenant" in cap.message


def test_every_cap_together_and_the_one_that_binds() -> None:
    pods = [pod(f"x{i}", 8, node_name=f"n{i}", namespace="other", model="big", tier="P0") for i in range(3)]
    state = account_pool(POOL, NODES, pods, tenants=TENANTS)
    caps = instance_caps(state, ask("labs", 8, tp=2, tier="P2"))
    # labs: 400 GiB / 79.6 GiB = 5 accelerators -> 2 instances of 2; P2 may use the 8 free -> 4;
    # the free node holds 4 instances of 2.
    assert (caps.tier.allowed, caps.tenant.allowed, caps.capacity.allowed) == (4, 2, 4)
    assert caps.allowed == 2 and caps.reason() is PlacementReason.QUOTA_EXCEEDED
    assert caps.message().startswith("tenant labs may hold 5 accelerators")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["search", "search-canary", "labs", "misc"]), st.sampled_from([1, 2, 4, 8])
        ),
        max_size=10,
    ),
    st.sampled_from(["search", "labs", "misc"]),
    st.sampled_from([1, 2, 4, 8]),
    st.integers(0, 20),
)
def test_a_tenant_cap_never_exceeds_the_quota(
    claims: list[tuple[str, int]], namespace: str, tp: int, asked: int
) -> None:
    pods = [pod(f"p{i}", n, namespace=ns, model=f"m{i}") for i, (ns, n) in enumerate(claims)]
    state = account_pool(POOL, NODES, pods, tenants=TENANTS)
    request = ask(namespace, asked, tp=tp)
    cap = tenant_cap(state, request)
    tenant = next((t for t in TENANTS if namespace in t.namespaces), None)
    assert 0 <= cap.allowed <= asked
    if tenant is None or cap.allowed == 0:
        return
    limit = tenant.max_accelerators_of(H100_BYTES)
    assert limit is not None
    held = sum(n for ns, n in claims if ns in tenant.namespaces)
    assert held + cap.allowed * tp <= limit
