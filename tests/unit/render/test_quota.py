"""ResourceQuotas backing tenant quotas: key syntax, limits, owners, labels, shared namespaces."""

from __future__ import annotations

from typing import Any

from gpupool.api.tenancy import LabelSelector, Tenant
from gpupool.api.v1alpha1 import InferencePool
from gpupool.render.labels import is_valid_label_value, is_valid_name
from gpupool.render.quota import (
    SOURCES_ANNOTATION,
    quota_key,
    quota_name,
    render_resource_quotas,
    render_tenant_quotas,
    tenant_quota_grants,
)


def pool(name: str, accelerator: str, uid: str | None = None) -> InferencePool:
    vendor = "ascend" if accelerator.startswith("Ascend") else "nvidia"
    metadata: dict[str, Any] = {"name": name, **({"uid": uid} if uid else {})}
    return InferencePool.model_validate(
        {"metadata": metadata, "spec": {"vendor": vendor, "accelerator": accelerator}}
    )


H100 = pool("h100", "H100-80GB", "uid-h100")
A100 = pool("a100", "A100-80GB", "uid-a100")
ASCEND = pool("ascend", "Ascend910B", "uid-ascend")
SEARCH = Tenant(
    name="search", namespaces=["search", "search-canary"], max_accelerators=16, max_accelerator_memory="640Gi"
)


def test_extended_resources_are_quota_d_by_request_key() -> None:
    assert quota_key("nvidia.com/gpu") == "requests.nvidia.com/gpu"
    assert quota_key("huawei.com/Ascend910") == "requests.huawei.com/Ascend910"
    assert quota_name("huawei.com/Ascend910") == "gpupool-huawei-com-ascend910"


def test_one_quota_per_tenant_namespace_with_the_tenants_whole_limit() -> None:
    quotas = render_tenant_quotas(H100, [SEARCH])
    assert [(q["metadata"]["namespace"], q["metadata"]["name"]) for q in quotas] == [
        ("search", "gpupool-nvidia-com-gpu"),
        ("search-canary", "gpupool-nvidia-com-gpu"),
    ]
    quota = quotas[0]
    # 640Gi of H100 memory (81,559 MiB each) is 8 whole accelerators, fewer than maxAccelerators 16.
    assert quota["spec"] == {"hard": {"requests.nvidia.com/gpu": "8"}}
    assert quota["apiVersion"] == "v1" and quota["kind"] == "ResourceQuota"
    assert quota["metadata"]["labels"] == {
        "app.kubernetes.io/component": "tenant-quota",
        "app.kubernetes.io/managed-by": "gpupool",
        "app.kubernetes.io/part-of": "gpupool",
        "gpupool.io/pool": "h100",
        "gpupool.io/tenant": "search",
    }
    assert quota["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "gpupool.io/v1alpha1",
            "kind": "InferencePool",
            "name": "h100",
            "uid": "uid-h100",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert quota["metadata"]["annotations"] == {SOURCES_ANNOTATION: "h100/search=8"}
    assert all(is_valid_label_value(v) for v in quota["metadata"]["labels"].values())
    assert is_valid_name(quota["metadata"]["name"])


def test_ascend_pools_quota_their_own_resource() -> None:
    (quota, *_) = render_tenant_quotas(ASCEND, [SEARCH])
    # 640Gi over 64 GB per 910B is 10.7: 10 accelerators.
    assert quota["spec"] == {"hard": {"requests.huawei.com/Ascend910": "10"}}


def test_pools_sharing_a_resource_share_one_quota_holding_the_sum() -> None:
    other = Tenant(name="search-a100", namespaces=["search"], max_accelerators=4)
    grants = tenant_quota_grants(H100, [SEARCH]) + tenant_quota_grants(A100, [other])
    quotas = {q["metadata"]["namespace"]: q for q in render_resource_quotas(grants)}
    shared = quotas["search"]
    assert shared["spec"]["hard"] == {"requests.nvidia.com/gpu": str(8 + 4)}
    assert shared["metadata"]["annotations"][SOURCES_ANNOTATION] == "a100/search-a100=4,h100/search=8"
    owners = shared["metadata"]["ownerReferences"]
    assert [o["name"] for o in owners] == ["a100", "h100"]
    assert not any(o["controller"] for o in owners)  # at most one controller; shared quotas have none
    assert "gpupool.io/pool" not in shared["metadata"]["labels"]
    assert quotas["search-canary"]["spec"]["hard"] == {"requests.nvidia.com/gpu": "8"}


def test_selector_tenants_quota_the_existing_namespaces_they_own() -> None:
    labs = Tenant(
        name="labs", namespace_selector=LabelSelector(match_labels={"org": "labs"}), max_accelerators=6
    )
    namespaces = {"labs-1": {"org": "labs"}, "labs-2": {"org": "labs"}, "search": {"org": "labs"}, "misc": {}}
    quotas = render_tenant_quotas(H100, [SEARCH, labs], namespaces)
    # search is listed by the search tenant; search-canary does not exist, so gets none.
    assert {(q["metadata"]["namespace"], q["spec"]["hard"]["requests.nvidia.com/gpu"]) for q in quotas} == {
        ("search", "8"),
        ("labs-1", "6"),
        ("labs-2", "6"),
    }


def test_a_preview_without_a_uid_has_no_owner() -> None:
    quotas = render_tenant_quotas(pool("h100", "H100-80GB"), [SEARCH])
    assert all("ownerReferences" not in q["metadata"] for q in quotas)


def test_rendering_is_deterministic() -> None:
    assert render_tenant_quotas(H100, [SEARCH]) == render_tenant_quotas(H100, [SEARCH])


def test_a_pool_naming_its_resource_quotas_that_resource() -> None:
    a3 = InferencePool.model_validate(
        {
            "metadata": {"name": "a3", "uid": "uid-a3"},
            "spec": {
                "vendor": "ascend",
                "accelerator": "Ascend910C",
                "acceleratorResource": "huawei.com/ascend-1980",
            },
        }
    )
    (quota, *_) = render_tenant_quotas(a3, [SEARCH])
    assert quota["metadata"]["name"] == "gpupool-huawei-com-ascend-1980"
    # 640Gi over 64 GiB per die is 10 dies.
    assert quota["spec"] == {"hard": {"requests.huawei.com/ascend-1980": "10"}}
