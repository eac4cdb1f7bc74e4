"""`gpupool render` prints what the operator's decide() applies for the same model and pools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.catalog.accelerators import get_accelerator
from gpupool.cli import main
from gpupool.services.modeldeployment import PoolContext, decide
from gpupool.services.pool import pool_state

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "manifests/samples"
POOL_FILES = sorted(SAMPLES.glob("pool-*.yaml"))
POOLS = {
    pool.metadata["name"]: pool
    for pool in (InferencePool.model_validate(yaml.safe_load(p.read_text())) for p in POOL_FILES)
}
MODELS = sorted(p for p in SAMPLES.glob("*.yaml") if not p.name.startswith("pool-"))
NAMESPACE = "team-a"


def roomy(pool: InferencePool) -> PoolContext:
    """The pool as the operator counts it with four empty nodes: every instance asked has room."""
    resource = get_accelerator(pool.spec.accelerator).resource_name
    nodes = [
        {
            "metadata": {"name": f"node-{i}", "labels": dict(pool.spec.node_selector)},
            "spec": {},
            "status": {
                "allocatable": {resource: str(pool.spec.accelerators_per_node)},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
        for i in range(4)
    ]
    return PoolContext(pool, pool_state(pool, nodes, []))


def operator_objects(md: ModelDeployment) -> list[dict[str, Any]]:
    md.metadata.setdefault("namespace", NAMESPACE)
    contexts = {name: roomy(POOLS[name]) for name in md.spec.pool_names()}
    outcome = decide(md, contexts, {}, "2026-01-01T00:00:00Z")
    assert outcome.apply
    return outcome.objects


def render(capsys: pytest.CaptureFixture[str], tmp_path: Path, model: Path) -> list[dict[str, Any]]:
    """What `gpupool render` prints for the model with every sample pool."""
    pools = tmp_path / "pools.yaml"
    pools.write_text("---\n".join(p.read_text() for p in POOL_FILES))
    assert main(["render", "-f", str(model), "--pool", str(pools), "-n", NAMESPACE]) == 0
    return [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]


@pytest.mark.parametrize("sample", MODELS, ids=lambda p: p.stem)
def test_each_sample_renders_as_the_operator_applies_it(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    md = ModelDeployment.model_validate(yaml.safe_load(sample.read_text()))
    assert render(capsys, tmp_path, sample) == operator_objects(md)


def test_a_model_of_several_pools_renders_as_the_operator_applies_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "chat"},
        "spec": {
            "model": {"name": "llama-3.1-8b"},
            "pools": [{"name": "nvidia-h100", "priority": 10}, {"name": "ascend-910b"}],
            "traffic": {"peakQps": 30, "qpsPerInstance": 5},
        },
    }
    model = tmp_path / "model.yaml"
    model.write_text(yaml.safe_dump(body))
    printed = render(capsys, tmp_path, model)
    assert printed == operator_objects(ModelDeployment.model_validate(body))
    replicas = {d["metadata"]["name"]: d["spec"]["replicas"] for d in printed if d["kind"] == "Deployment"}
    assert replicas == {"chat-nvidia-h100": 8, "chat-ascend-910b": 0}  # ceil(30 x 1.2 / 5)
