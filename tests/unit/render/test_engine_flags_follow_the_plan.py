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
