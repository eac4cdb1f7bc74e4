"""Fixtures shared by the unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def promtool() -> str:
    """Prometheus' promtool, installed from Debian's prometheus package when missing."""
    if shutil.which("promtool") is None:
        subprocess.run([str(ROOT / "tools/localcluster/install-deps.sh")], check=True, capture_output=True)
    path = shutil.which("promtool")
    assert path, "promtool not found after installing Debian's prometheus package"
    return path
