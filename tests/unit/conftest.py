"""Fixtures shared by the unit tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def promtool() -> str:
    """Prometheus' promtool, installed from Debian's prometheus package when missing."""
    if shutil.which("promtool") is None:
        subprocess.run([str(ROOT / "tools/localcluster/install-deps.sh")], check=True, capture_output=True)
    path = shutil.which("promtool")
    assert path, "promtool not found after installing Debian's prometheus package"
    return path


PromqlTests = Callable[..., None]


@pytest.fixture
def promql_tests(promtool: str, tmp_path: Path) -> PromqlTests:
    """Run promtool's PromQL unit tests: `cases` are (expression, evaluation time, expected
    samples) over `series` sampled every `interval`."""

    def run(series: list[dict[str, str]], cases: list[Any], interval: str = "1m") -> None:
        test = {
            "tests": [
                {
                    "interval": interval,
                    "input_series": series,
                    "promql_expr_test": [
                        {"expr": e, "eval_time": t, "exp_samples": samples} for e, t, samples in cases
                    ],
                }
            ]
        }
        path = tmp_path / "promql-test.yml"
        path.write_text(yaml.safe_dump(test))
        result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr

    return run
