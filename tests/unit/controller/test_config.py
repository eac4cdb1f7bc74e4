"""OperatorConfig: flags over GPUPOOL_* variables over defaults, errors that name the setting, and
every setting documented and passed by the chart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from gpupool.cli import build_parser
from gpupool.controller.config import OperatorConfig, settings_table

ROOT = Path(__file__).resolve().parents[3]
# Settings the chart passes otherwise than as a value of its own: flags from its ports and
# `operator.verbose`, the namespace from the pod, and what makes no sense in a pod.
NOT_CHART_VALUES = {
    "GPUPOOL_KUBECONFIG",
    "GPUPOOL_HEALTH_ADDRESS",
    "GPUPOOL_METRICS_ADDRESS",
    "GPUPOOL_METRICS_PORT",
    "GPUPOOL_VERBOSE",
    "GPUPOOL_NAMESPACE",
}


def test_a_flag_wins_over_its_variable_and_a_variable_over_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert OperatorConfig().workers == 8
    monkeypatch.setenv("GPUPOOL_WORKERS", "3")
    monkeypatch.setenv("GPUPOOL_RESYNC_SECONDS", "7.5")
    monkeypatch.setenv("GPUPOOL_LOG_FORMAT", "json")
    config = OperatorConfig.from_flags(workers=5, resync_seconds=None)
    assert (config.workers, config.resync_seconds, config.log_format) == (5, 7.5, "json")


def test_the_run_flags_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUPOOL_WORKERS", "3")
    args = build_parser().parse_args(["run", "--resync-seconds", "9", "--log-format", "json"])
    flags = {name: getattr(args, name) for name in OperatorConfig.model_fields if hasattr(args, name)}
    config = OperatorConfig.from_flags(**flags)
    assert (config.resync_seconds, config.log_format, config.workers, config.verbose) == (9, "json", 3, False)


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("GPUPOOL_WORKERS", "0", "workers"),
        ("GPUPOOL_RESYNC_SECONDS", "soon", "resync_seconds"),
        ("GPUPOOL_LOG_FORMAT", "xml", "log_format"),
        ("GPUPOOL_METRICS_PORT", "70000", "metrics_port"),
    ],
)
def test_a_bad_value_names_its_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        OperatorConfig()
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_the_backoff_cap_is_at_least_its_base() -> None:
    with pytest.raises(ValidationError, match="retry_max_seconds"):
        OperatorConfig(retry_base_seconds=10, retry_max_seconds=1)


def test_the_namespace_falls_back_to_the_default_outside_a_pod() -> None:
    assert OperatorConfig(namespace=" ops ").operator_namespace() == "ops"
    assert OperatorConfig().operator_namespace() in {"gpupool-system", *_service_account_namespace()}


def _service_account_namespace() -> set[str]:
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return {path.read_text().strip()} if path.exists() else set()


def test_every_setting_is_documented_with_its_default() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(GPUPOOL_[A-Z_]+)` \|.*$", doc, re.M)}
    variables = [variable for variable, _, _ in settings_table()]
    assert sorted(rows) == sorted(variables)
    for variable, default, _ in settings_table():
        if default and default != "False":
            shown = default[:-2] if re.fullmatch(r"\d+\.0", default) else default
            assert f"`{shown}`" in rows[variable], (variable, default)


def test_the_chart_exposes_and_passes_every_setting() -> None:
    chart = ROOT / "charts" / "gpupool"
    values = yaml.safe_load((chart / "values.yaml").read_text())["operator"]
    template = (chart / "templates" / "deployment.yaml").read_text()
    passed = dict(
        re.findall(
            r"- name: (GPUPOOL_[A-Z_]+)\n\s+value: \{\{ \.Values\.operator\.(\w+) \| quote \}\}", template
        )
    )
    expected = {v for v, _, _ in settings_table()} - NOT_CHART_VALUES
    assert set(passed) == expected
    config = OperatorConfig()
    for variable, value_name in passed.items():
        field = variable.removeprefix("GPUPOOL_").lower()
        assert values[value_name] == getattr(config, field), (variable, value_name)
    assert "GPUPOOL_NAMESPACE" in template and "--verbose" in template
