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


def render_as_the_operator(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, **spec: Any
) -> list[dict[str, Any]]:
    """What `gpupool render` prints for a model "chat" of this spec, checked to be what the
    operator applies."""
    body = {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "chat"},
        "spec": {"model": {"name": "llama-3.1-8b"}, **spec},
    }
    model = tmp_path / "model.yaml"
    model.write_text(yaml.safe_dump(body))
    printed = render(capsys, tmp_path, model)
    assert printed == operator_objects(ModelDeployment.model_validate(body))
    return printed


def test_a_model_of_several_pools_renders_as_the_operator_applies_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = render_as_the_operator(
        capsys,
        tmp_path,
        pools=[{"name": "nvidia-h100", "priority": 10}, {"name": "ascend-910b"}],
        traffic={"peakQps": 30, "qpsPerInstance": 5},
    )
    replicas = {d["metadata"]["name"]: d["spec"]["replicas"] for d in printed if d["kind"] == "Deployment"}
    assert replicas == {"chat-nvidia-h100": 8, "chat-ascend-910b": 0}  # ceil(30 x 1.2 / 5)


def test_a_model_routed_through_the_inference_extension_prints_its_pool_objective_and_route(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = render_as_the_operator(
        capsys,
        tmp_path,
        pool="nvidia-h100",
        tier="P0",
        routing={"parentRefs": [{"name": "inference-gateway"}], "inferencePool": {}},
    )
    by_kind = {(d["apiVersion"], d["kind"]): d for d in printed}
    assert by_kind[("inference.networking.k8s.io/v1", "InferencePool")]["metadata"]["name"] == "chat"
    assert by_kind[("inference.networking.x-k8s.io/v1alpha2", "InferenceObjective")]["spec"]["priority"] == 2
    [backend] = by_kind[("gateway.networking.k8s.io/v1", "HTTPRoute")]["spec"]["rules"][0]["backendRefs"]
    assert backend["kind"] == "InferencePool"
