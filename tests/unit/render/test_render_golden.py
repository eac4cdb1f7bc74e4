"""The samples rendered end to end, compared with golden files in tests/golden/render/."""

from __future__ import annotations

import pytest
from render_fixtures import PLANS, check_golden, load_pool, sample

from gpupool.api.v1alpha1 import EngineType
from gpupool.render import UnsupportedEngineError, render_model_deployment, render_priority_classes


@pytest.mark.parametrize(
    ("file", "replicas"),
    [
        ("llama-3.1-8b-vllm-nvidia.yaml", 2),
        ("qwen2.5-72b-vllm-nvidia.yaml", 4),
        ("qwen2.5-7b-vllm-ascend.yaml", 1),
        ("deepseek-r1-distill-qwen-32b-vllm-ascend.yaml", 1),
        ("glm-4-9b-triton-nvidia.yaml", 1),
    ],
)
def test_sample_matches_golden(file: str, replicas: int) -> None:
    md, pool, plan = sample(file)
    check_golden(render_model_deployment(md, pool, plan, replicas), file.removesuffix(".yaml"))


@pytest.mark.parametrize("file", ["pool-nvidia-h100.yaml", "pool-ascend-910b.yaml"])
def test_priority_classes_match_golden(file: str) -> None:
    pool = load_pool(file)
    check_golden(render_priority_classes(pool), f"priority-classes-{pool.metadata['name']}")


def test_every_sample_has_a_plan() -> None:
    from render_fixtures import SAMPLES

    models = {p.name for p in SAMPLES.glob("*.yaml") if not p.name.startswith("pool-")}
    assert models == set(PLANS)


def test_triton_on_ascend_is_unsupported() -> None:
    md, _, plan = sample("qwen2.5-7b-vllm-ascend.yaml")
    md = md.model_copy(
        update={
            "spec": md.spec.model_copy(
                update={"engine": md.spec.engine.model_copy(update={"type": EngineType.TRITON})}
            )
        }
    )
    pool = load_pool("pool-ascend-910b.yaml")
    with pytest.raises(UnsupportedEngineError, match="no Ascend NPU build"):
        render_model_deployment(md, pool, plan, 1)
