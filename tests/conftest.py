"""Fixtures shared by the unit and the end-to-end tests: Argo CD's health-script runtime."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from argocd_lua import BUILD, HEALTH_SCRIPTS, ArgocdHealth, run_health_script


@pytest.fixture(scope="session")
def argocd_lua() -> str:
    """The path of the argocd-lua binary, built from tools/argocd-lua when missing."""
    result = subprocess.run([str(BUILD)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        pytest.fail(f"tools/argocd-lua/build.sh could not build argocd-lua:\n{result.stderr}", pytrace=False)
    return result.stdout.strip()


@pytest.fixture(scope="session")
def argocd_health(argocd_lua: str) -> ArgocdHealth:
    """Run the health script of a gpupool.io kind on an object, as Argo CD runs one from argocd-cm."""

    def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
        code, result = run_health_script(argocd_lua, HEALTH_SCRIPTS / kind / "health.lua", obj)
        assert code == 0, f"Argo CD could not run {kind}/health.lua: {result.get('message')}"
        return result.get("status", ""), result.get("message", "")

    return health
