"""Argo CD's health-script runtime for the tests: tools/argocd-lua, built on first use.

tools/argocd-lua is a small Go program on gopher-lua v1.1.2 (Argo CD's pin) that opens the
libraries Argo CD opens and reads the returned table as Argo CD reads it (argoproj/argo-cd
util/lua/lua.go). tools/argocd-lua/build.sh builds it into ~/.cache/gpupool/argocd-lua-<hash>/
(`make argocd-lua`); the `argocd_lua` and `argocd_health` fixtures of tests/conftest.py use it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEALTH_SCRIPTS = ROOT / "argocd" / "health" / "gpupool.io"
BUILD = ROOT / "tools" / "argocd-lua" / "build.sh"

# (kind, object) -> (status, message), as Argo CD shows them.
ArgocdHealth = Callable[[str, dict[str, Any]], tuple[str, str]]


def run_health_script(
    binary: str, script: Path, obj: dict[str, Any], open_libs: bool = False
) -> tuple[int, dict[str, str]]:
    """argocd-lua's exit status (0: the script ran; 2: Argo CD fails it and shows the Unknown
    health returned) and the health as Argo CD stores it."""
    args = [binary, *(["-open-libs"] if open_libs else []), str(script)]
    result = subprocess.run(args, input=json.dumps(obj), capture_output=True, text=True, timeout=30)
    assert result.returncode in (0, 2), result.stderr
    health: dict[str, str] = json.loads(result.stdout)
    return result.returncode, health
