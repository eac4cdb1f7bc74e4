"""Helm for the chart tests: the pinned binary from tools/helm.sh (installed on first use)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml
from chart_rendering import CHART, ROOT, Render, run_helm


@pytest.fixture(scope="session")
def helm() -> str:
    result = subprocess.run(
        [str(ROOT / "tools" / "helm.sh")], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        pytest.fail(f"tools/helm.sh could not install helm:\n{result.stderr}", pytrace=False)
    return result.stdout.strip()


@pytest.fixture(scope="session")
def render(helm: str) -> Render:
    """`helm template` the chart with extra arguments; the objects it prints."""

    def _render(
        *args: str, release: str = "gpupool", namespace: str = "gpupool-system"
    ) -> list[dict[str, Any]]:
        out = run_helm(helm, "template", release, str(CHART), "--namespace", namespace, *args).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    return _render
