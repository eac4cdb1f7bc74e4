"""The vLLM command line is the plan: one source for both, and it always parses.

The parser below declares the flags gpupool emits with the types vLLM's own argument parser
gives them (vllm/engine/arg_utils.py, EngineArgs.add_cli_args): integers, a float, strings and
bare boolean flags. `make check-engine-args` is the place to run the real parser; this test
keeps the rendering honest without installing vLLM.
"""

from __future__ import annotations

import argparse

from hypothesis import given, settings
from hypothesis import strategies as st
from render_fixtures import load_model_deployment, load_pool

from gpupool.catalog.types import Precision
from gpupool.render import render_model_deployment
from gpupool.services.modeldeployment import plan_model


def vllm_like_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("model")
    for name in (
        "--tensor-parallel-size",
        "--max-model-len",
        "--max-num-batched-tokens",
        "--max-num-seqs",
        "--data-parallel-size",
        "--port",
        "--shutdown-timeout",
    ):
        parser.add_argument(name, type=int)
    parser.add_argument("--gpu-memory-utilization", type=float)
    for name in ("--dtype", "--quantization", "--kv-cache-dtype", "--served-model-name"):
        parser.add_argument(name)
    parser.add_argument("--revision")
    parser.add_argument("--tokenizer-revision")
    parser.add_argument("--enable-expert-parallel", action=argparse.BooleanOptionalAction)
    return parser


@settings(max_examples=40, deadline=None)
@given(
    sample=st.sampled_from(
        [
            ("llama-3.1-8b-vllm-nvidia.yaml", "pool-nvidia-h100.yaml"),
            ("qwen2.5-72b-vllm-nvidia.yaml", "pool-nvidia-h100.yaml"),
            ("qwen2.5-7b-vllm-ascend.yaml", "pool-ascend-910b.yaml"),
        ]
    ),
    utilization=st.sampled_from((0.8, 0.85, 0.9, 0.92, 0.95)),
    batched=st.none() | st.sampled_from((1024, 2048, 4096, 8192, 16384)),
    seqs=st.none() | st.sampled_from((16, 64, 256, 512)),
)
def test_rendered_flags_parse_and_equal_the_plan(
    sample: tuple[str, str], utilization: float, batched: int | None, seqs: int | None
) -> None:
    md = load_model_deployment(sample[0])
    engine = md.spec.engine.model_copy(
        update={
            "gpu_memory_utilization": utilization,
            "max_num_batched_tokens": batched,
            "max_num_seqs": seqs,
        }
    )
    md = md.model_copy(update={"spec": md.spec.model_copy(update={"engine": engine})})
    pool = load_pool(sample[1])
    _, plan = plan_model(md, pool)
    (deployment,) = (o for o in render_model_deployment(md, pool, plan, 1) if o["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    parsed = vllm_like_parser().parse_args(container["args"])
    assert parsed.tensor_parallel_size == plan.tensor_parallel
    assert parsed.max_model_len == plan.max_model_len
    assert parsed.gpu_memory_utilization == plan.gpu_memory_utilization == utilization
    assert parsed.max_num_batched_tokens == plan.max_num_batched_tokens
    assert parsed.max_num_seqs == plan.max_num_seqs
    if batched is not None:
        assert plan.max_num_batched_tokens == batched
    if seqs is not None:
        assert plan.max_num_seqs == seqs


@settings(max_examples=30, deadline=None)
@given(
    case=st.sampled_from(
        [
            # Latent attention: data-parallel attention ranks with the experts over all of them.
            ("deepseek-v3", "fp8", "H200-141GB"),
            ("mixtral-8x7b", "bf16", "H100-80GB"),
            ("qwen3-235b-a22b", "bf16", "H200-141GB"),
            ("qwen3-235b-a22b", "fp8", "H200-141GB"),
        ]
    ),
    max_model_len=st.sampled_from((4096, 8192, 32_768)),
    utilization=st.sampled_from((0.85, 0.9, 0.95)),
)
def test_moe_layouts_parse_and_equal_the_plan(
    case: tuple[str, str, str], max_model_len: int, utilization: float
) -> None:
    model, precision, accelerator = case
    md = load_model_deployment("llama-3.1-8b-vllm-nvidia.yaml")
    spec = md.spec.model_copy(
        update={
            "model": md.spec.model.model_copy(update={"name": model}),
            "weights": None,
            "precision": Precision(precision),
            "max_model_len": max_model_len,
            "engine": md.spec.engine.model_copy(update={"gpu_memory_utilization": utilization}),
        }
    )
    md = md.model_copy(update={"spec": spec})
    pool = load_pool("pool-nvidia-h100.yaml")
    pool = pool.model_copy(update={"spec": pool.spec.model_copy(update={"accelerator": accelerator})})
    _, plan = plan_model(md, pool)
    if not plan.fits:
        return
    (deployment,) = (o for o in render_model_deployment(md, pool, plan, 1) if o["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    parsed = vllm_like_parser().parse_args(container["args"])
    assert parsed.tensor_parallel_size == plan.tensor_parallel
    assert parsed.data_parallel_size == plan.data_parallel
    assert bool(parsed.enable_expert_parallel) == (plan.expert_parallel is not None)
    if plan.data_parallel is not None:
        assert parsed.enable_expert_parallel
    # One accelerator a rank: tensor parallel x data parallel.
    gpus = int(container["resources"]["requests"]["nvidia.com/gpu"])
    assert gpus == plan.accelerators_per_instance == plan.tensor_parallel * (plan.data_parallel or 1)
