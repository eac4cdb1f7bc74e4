"""`gpupool render` for a model that allows several pools."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gpupool.cli import main

ROOT = Path(__file__).resolve().parents[3]
POOLS = [ROOT / "manifests/samples/pool-nvidia-h100.yaml", ROOT / "manifests/samples/pool-ascend-910b.yaml"]


def write(tmp_path: Path, pools: list[Path]) -> tuple[Path, Path]:
    model = tmp_path / "model.yaml"
    model.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "gpupool.io/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": "chat"},
                "spec": {
                    "model": {"name": "llama-3.1-8b"},
                    "pools": [{"name": "nvidia-h100", "priority": 10}, {"name": "ascend-910b"}],
                    "replicas": 2,
                    "traffic": {"qpsPerInstance": 5},
                },
            }
        )
    )
    pool_file = tmp_path / "pools.yaml"
    pool_file.write_text("---\n".join(p.read_text() for p in pools))
    return model, pool_file


def test_every_pool_gets_its_deployment_and_the_preferred_one_takes_the_instances(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, pool_file = write(tmp_path, POOLS)
    assert main(["render", "-f", str(model), "--pool", str(pool_file), "-n", "team-a"]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    deployments = {d["metadata"]["name"]: d["spec"]["replicas"] for d in docs if d["kind"] == "Deployment"}
    assert deployments == {"chat-nvidia-h100": 2, "chat-ascend-910b": 0}
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Service"] == ["chat"]


def test_without_any_of_its_pools_render_says_which_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _ = write(tmp_path, POOLS)
    with pytest.raises(SystemExit) as exit_info:
        main(["render", "-f", str(model)])
    assert exit_info.value.code == 2
    assert "uses pools nvidia-h100, ascend-910b; pass them with --pool" in capsys.readouterr().err


def test_plan_names_the_cheapest_hardware_for_the_same_traffic(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["plan", "--model", "llama-3.1-70b", "--peak-qps", "20"]
    args += ["--accelerator", "H100-80GB", "--accelerator", "Ascend910B"]
    args += ["--price", "H100-80GB=2.99", "--price", "Ascend910B=1.5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    rows = {line.split("  ")[0]: line.split()[-2:] for line in out.splitlines() if line.startswith("cost / ")}
    hourly = [float(v) for v in rows["cost / hour"]]
    per_million = [float(v) for v in rows["cost / 1M requests"]]
    cheapest = "H100-80GB" if hourly[0] <= hourly[1] else "Ascend910B"
    assert f"cheapest for 20 QPS: {cheapest} at {min(hourly):.2f} / hour" in out
    assert all(v > 0 for v in per_million)
