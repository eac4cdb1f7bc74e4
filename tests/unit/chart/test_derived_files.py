"""Files derived from a single source stay identical to what their generator prints now."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_rendering import CHART, ROOT

from gpupool.api.crd import all_crds
from gpupool.cli import crd_yaml

CRD_COPIES = [CHART / "files" / "crds", ROOT / "manifests" / "base" / "crds"]


@pytest.mark.parametrize("folder", CRD_COPIES, ids=lambda p: str(p.relative_to(ROOT)))
@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["metadata"]["name"])
def test_crd_copy_is_what_gpupool_crds_prints(folder: Path, crd: dict[str, Any]) -> None:
    path = folder / f"{crd['metadata']['name']}.yaml"
    assert path.exists(), f"{path} is missing: run `make crds`"
    assert path.read_text() == crd_yaml(crd), f"{path} is stale: run `make crds` and commit the result"


@pytest.mark.parametrize("folder", CRD_COPIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_stale_crd_files_remain(folder: Path) -> None:
    expected = {f"{c['metadata']['name']}.yaml" for c in all_crds()}
    assert {p.name for p in folder.glob("*.yaml")} == expected


def test_kustomize_base_is_the_chart_rendered(helm: str, tmp_path: Path) -> None:
    """manifests/base/gpupool.yaml is exactly what `make manifests` renders from the chart now."""
    result = subprocess.run(
        ["make", "--no-print-directory", "manifests", f"MANIFESTS_OUT={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    fresh = (tmp_path / "gpupool.yaml").read_text()
    committed = (ROOT / "manifests" / "base" / "gpupool.yaml").read_text()
    assert committed == fresh, "manifests/base/gpupool.yaml is stale: run `make manifests`"
    kinds = [d["kind"] for d in yaml.safe_load_all(fresh) if d]
    assert sorted(kinds) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    assert "managed-by: Helm" not in fresh


def test_base_kustomization_lists_every_base_file() -> None:
    base = ROOT / "manifests" / "base"
    listed = set(yaml.safe_load((base / "kustomization.yaml").read_text())["resources"])
    on_disk = {str(p.relative_to(base)) for p in base.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == on_disk


def test_argocd_cm_patch_carries_the_health_scripts() -> None:
    patch = yaml.safe_load((ROOT / "argocd" / "argocd-cm-patch.yaml").read_text())
    scripts = sorted((ROOT / "argocd" / "health").glob("*/*/health.lua"))
    assert len(scripts) == 2
    expected = {
        f"resource.customizations.health.{p.parent.parent.name}_{p.parent.name}": p.read_text()
        for p in scripts
    }
    assert patch["metadata"] == {"name": "argocd-cm", "namespace": "argocd"}
    assert patch["data"] == expected, "argocd/argocd-cm-patch.yaml is stale: run `make argocd-cm`"


def test_samples_kustomization_lists_every_sample() -> None:
    samples = ROOT / "manifests" / "samples"
    listed = set(yaml.safe_load((samples / "Kustomization").read_text())["resources"])
    assert listed == {p.name for p in samples.glob("*.yaml")}
