"""Public deployment facts the plans must agree with.

Each fact is what a vendor, a vLLM recipe, a model card or a start-up log in an issue states for
(model, accelerator, precision, context): the tensor-parallel size it runs at, that it fits on so
many accelerators, or that it does not. The source is beside each. Models outside the catalog
are read from their real config.json shapes (the fields gpupool reads), so the config reader and
the weight formats are checked too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from catalog.hf_configs import (
    GPT_OSS_20B,
    GPT_OSS_120B,
    LLAMA_31_70B_AWQ,
    LLAMA_31_405B_AWQ,
    QWEN3_30B_A3B_FP8,
    QWEN3_CODER_480B_FP8,
)

from gpupool.catalog.accelerators import get_accelerator
from gpupool.catalog.models import architecture_from_hf_config, get_model
from gpupool.catalog.types import Architecture, Precision
from gpupool.sizing import Plan, SizingRequest, plan_deployment


def _arch(model: str | dict[str, Any]) -> Architecture:
    return get_model(model).architecture if isinstance(model, str) else architecture_from_hf_config(model)


@dataclass(frozen=True)
class Fact:
    what: str
    source: str
    model: str | dict[str, Any]
    accelerator: str
    max_model_len: int
    precision: Precision = Precision.BF16
    concurrency: int = 1
    accelerators_per_node: int = 8
    # One of: the tensor-parallel size the plan must choose; a forced size that must fit (or not).
    chosen_tp: int | None = None
    fits_at: int | None = None
    not_at: int | None = None
    expert_parallel_at: int | None = None
    # A layout vLLM's recipe runs: tensor parallel x data-parallel attention ranks, which must fit.
    data_parallel_at: tuple[int, int] | None = None
    # The data-parallel ranks the plan must choose by itself.
    chosen_dp: int | None = None
    fits_nowhere: bool = False  # no single node holds it

    def plan(self, tensor_parallel: int | None = None, data_parallel: int | None = None) -> Plan:
        request = SizingRequest(
            precision=self.precision,
            max_model_len=self.max_model_len,
            peak_qps=1,
            qps_per_instance=1,
            concurrency=self.concurrency,
            accelerators_per_node=self.accelerators_per_node,
            tensor_parallel=tensor_parallel,
            data_parallel=data_parallel,
        )
        return plan_deployment(_arch(self.model), get_accelerator(self.accelerator), request)


FACTS = [
    Fact(
        "Qwen3-235B-A22B in bf16 runs on four H200 (vLLM recipe: tensor parallel 4 on H200)",
        "https://docs.vllm.ai/projects/recipes/en/latest/Qwen/Qwen3.html",
        "qwen3-235b-a22b",
        "H200-141GB",
        32_768,
        # The recipe states the size, not a concurrency: at 32,768 tokens TP 4 holds 7
        # full-length sequences once NCCL's NVSwitch buffers are counted, so a plan for 8
        # prefers TP 8; TP 4 must fit.
        fits_at=4,
    ),
    Fact(
        "Qwen3-235B-A22B does not fit two H200 in bf16 (470 GB of weights)",
        "https://huggingface.co/Qwen/Qwen3-235B-A22B",
        "qwen3-235b-a22b",
        "H200-141GB",
        32_768,
        not_at=2,
    ),
    Fact(
        "Llama-3.1-70B bf16 on L40S: NIM's profile is tensor parallel 4",
        "https://docs.nvidia.com/nim/large-language-models/latest/supported-models.html",
        "llama-3.1-70b",
        "L40S-48GB",
        8192,
        concurrency=8,
        chosen_tp=4,
    ),
    Fact(
        "Llama-3.1-70B bf16 does not fit two L40S",
        "https://docs.nvidia.com/nim/large-language-models/latest/supported-models.html",
        "llama-3.1-70b",
        "L40S-48GB",
        8192,
        not_at=2,
    ),
    Fact(
        "gpt-oss-120b runs on a single 80 GB GPU (OpenAI); vLLM serves it on one A100 80GB",
        "https://milvus.io/ai-quick-reference/what-hardware-requirements-are-needed-to-run-gptoss120-b-and-gptoss20-b",
        GPT_OSS_120B,
        "A100-80GB",
        131_072,
        chosen_tp=1,
    ),
    Fact(
        "gpt-oss-120b at its full 131K context does not start on one H100 at vLLM's defaults "
        '("Available KV cache memory: -2.14 GiB"; its 64-66 GiB of weights leave too little)',
        "https://github.com/vllm-project/vllm/issues/23278",
        GPT_OSS_120B,
        "H100-80GB",
        131_072,
        not_at=1,
    ),
    Fact(
        "gpt-oss-20b runs within 16 GB of memory (OpenAI); one RTX 4090 serves it",
        "https://milvus.io/ai-quick-reference/what-hardware-requirements-are-needed-to-run-gptoss120-b-and-gptoss20-b",
        GPT_OSS_20B,
        "RTX4090-24GB",
        32_768,
        chosen_tp=1,
    ),
    Fact(
        "Qwen3-Coder-480B-A35B-Instruct-FP8 does not start at plain TP 8 (2,560 / 8 = 320 is not "
        "whole 128-blocks); vLLM's recipe uses expert parallelism there",
        "https://docs.vllm.ai/projects/recipes/en/latest/Qwen/Qwen3-Coder-480B-A35B.html",
        QWEN3_CODER_480B_FP8,
        "H200-141GB",
        32_768,
        expert_parallel_at=8,
    ),
    Fact(
        "Qwen3-Coder-480B-A35B-Instruct-FP8 serves its 131K context on 8 x H200 as vLLM's recipe "
        "runs it: --enable-expert-parallel --data-parallel-size 8",
        "https://docs.vllm.ai/projects/recipes/en/latest/Qwen/Qwen3-Coder-480B-A35B.html",
        QWEN3_CODER_480B_FP8,
        "H200-141GB",
        131_072,
        data_parallel_at=(1, 8),
    ),
    Fact(
        "DeepSeek-V3/R1 in FP8 runs on 8 x H200 with data-parallel attention and expert "
        "parallelism (DP8+EP), vLLM's layout for high load",
        "https://docs.vllm.ai/projects/recipes/en/latest/DeepSeek/DeepSeek-V3.html",
        "deepseek-v3",
        "H200-141GB",
        32_768,
        data_parallel_at=(1, 8),
    ),
    Fact(
        "DeepSeek-V3 at 32K on 8 x H200 for 32 sequences: the latent KV that TP 8 replicates on "
        "every rank holds 19, so the plan takes DP8+EP as vLLM's recipe does",
        "https://docs.vllm.ai/projects/recipes/en/latest/DeepSeek/DeepSeek-V3.html",
        "deepseek-v3",
        "H200-141GB",
        32_768,
        concurrency=32,
        chosen_dp=8,
    ),
    Fact(
        "Qwen3-Coder-480B-A35B-Instruct-FP8 runs at TP 4 on H200 (640 per rank is five blocks)",
        "https://github.com/vllm-project/recipes/pull/12",
        QWEN3_CODER_480B_FP8,
        "H200-141GB",
        32_768,
        fits_at=4,
    ),
    Fact(
        "Qwen3-30B-A3B-FP8 crashes at TP 4 (768 / 4 = 192 is not whole 128-blocks)",
        "https://github.com/vllm-project/vllm/issues/25292",
        QWEN3_30B_A3B_FP8,
        "H100-80GB",
        32_768,
        expert_parallel_at=4,
    ),
    Fact(
        "Qwen3-30B-A3B-FP8 runs on one H100",
        "https://huggingface.co/Qwen/Qwen3-30B-A3B-FP8",
        QWEN3_30B_A3B_FP8,
        "H100-80GB",
        32_768,
        chosen_tp=1,
    ),
    Fact(
        "Qwen3-235B-A22B-FP8 starts at TP 4 on four H100 (its start-up log)",
        "https://github.com/vllm-project/vllm/issues/21348",
        "qwen3-235b-a22b",
        "H100-80GB",
        40_960,
        precision=Precision.FP8,
        fits_at=4,
    ),
    Fact(
        "DeepSeek-V3 (FP8) runs on one node of eight H200",
        "https://docs.vllm.ai/projects/recipes/en/latest/DeepSeek/DeepSeek-V3.html",
        "deepseek-v3",
        "H200-141GB",
        32_768,
        precision=Precision.FP8,
        fits_at=8,
    ),
    Fact(
        "DeepSeek-V3 (FP8) needs two nodes of eight H100 (SGLang: 2 x 8 x H100/800/20)",
        "https://github.com/sgl-project/sglang/blob/main/docs/basic_usage/deepseek_v3.md",
        "deepseek-v3",
        "H100-80GB",
        8192,
        precision=Precision.FP8,
        fits_nowhere=True,
    ),
    Fact(
        "Llama-3.1-405B FP8 fits one node of eight H100 (vLLM's Llama 3.1 announcement)",
        "https://blog.vllm.ai/2024/07/23/llama31.html",
        "llama-3.1-405b",
        "H100-80GB",
        8192,
        precision=Precision.FP8,
        fits_at=8,
    ),
    Fact(
        "Llama-3.1-405B in bf16 does not fit one node of eight H100 (810 GB of weights; the same "
        "announcement runs it over two nodes with pipeline parallelism)",
        "https://blog.vllm.ai/2024/07/23/llama31.html",
        "llama-3.1-405b",
        "H100-80GB",
        8192,
        fits_nowhere=True,
    ),
    Fact(
        "Llama-3.1-70B in bf16 does not fit one H100 (141 GB of weights)",
        "https://huggingface.co/meta-llama/Llama-3.1-70B-Instruct",
        "llama-3.1-70b",
        "H100-80GB",
        8192,
        not_at=1,
    ),
    Fact(
        "Llama-3.1-70B AWQ int4 needs about 35 GiB of VRAM: one H100 serves it",
        "https://huggingface.co/hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4",
        LLAMA_31_70B_AWQ,
        "H100-80GB",
        8192,
        chosen_tp=1,
    ),
    Fact(
        "Llama-3.1-405B AWQ int4 needs about 203 GiB of VRAM: four H100 serve it, two do not",
        "https://huggingface.co/hugging-quants/Meta-Llama-3.1-405B-Instruct-AWQ-INT4",
        LLAMA_31_405B_AWQ,
        "H100-80GB",
        8192,
        fits_at=4,
    ),
    Fact(
        "Llama-3.1-405B AWQ int4 does not fit two H100",
        "https://huggingface.co/hugging-quants/Meta-Llama-3.1-405B-Instruct-AWQ-INT4",
        LLAMA_31_405B_AWQ,
        "H100-80GB",
        8192,
        not_at=2,
    ),
    Fact(
        "Qwen2.5-72B-Instruct is served at tensor parallel 4 on 80 GB GPUs (Qwen's vLLM guide)",
        "https://qwen.readthedocs.io/en/latest/deployment/vllm.html",
        "qwen2.5-72b",
        "A100-80GB",
        32_768,
        fits_at=4,
    ),
    Fact(
        "DeepSeek-R1-Distill-Qwen-32B: `vllm serve ... --tensor-parallel-size 2 --max-model-len 32768`",
        "https://cloud.tencent.com/developer/article/2493720",
        "deepseek-r1-distill-qwen-32b",
        "H100-80GB",
        32_768,
        fits_at=2,
    ),
    Fact(
        "Mixtral-8x7B in bf16 (93 GB) does not fit one 80 GB GPU; two do",
        "https://huggingface.co/mistralai/Mixtral-8x7B-Instruct-v0.1",
        "mixtral-8x7b",
        "H100-80GB",
        32_768,
        chosen_tp=2,
    ),
    Fact(
        "Qwen2.5-7B-Instruct on one Ascend 910B (vllm-ascend's single-NPU tutorial)",
        "https://vllm-ascend.readthedocs.io/en/latest/tutorials/single_npu.html",
        "qwen2.5-7b",
        "Ascend910B",
        32_768,
        chosen_tp=1,
    ),
    Fact(
        "DeepSeek-V3.2-W8A8 (DeepSeek-V3's 671B weights) takes two Atlas 800 A2 (64G x 8) nodes "
        "(vllm-ascend tutorial)",
        "https://docs.vllm.ai/projects/ascend/en/latest/_sources/tutorials/models/DeepSeek-V3.2.md",
        "deepseek-v3",
        "Ascend910B",
        8192,
        precision=Precision.INT8,
        fits_nowhere=True,
    ),
    Fact(
        "Qwen3-235B-A22B in bf16 needs one Atlas 800 A2 node (64G x 8) (vllm-ascend tutorial)",
        "https://docs.vllm.ai/projects/ascend/en/latest/tutorials/models/Qwen3-235B-A22B/",
        "qwen3-235b-a22b",
        "Ascend910B",
        8192,
        fits_at=8,
    ),
    Fact(
        "Qwen3-235B-A22B-Instruct-2507-FP8 served with -tp 4 on H100 (GPUStack performance lab)",
        "https://docs.gpustack.ai/2.3/ru/performance-lab/qwen3-235b-a22b/h100/",
        "qwen3-235b-a22b",
        "H100-80GB",
        8192,
        precision=Precision.FP8,
        fits_at=4,
    ),
    Fact(
        "Qwen3-235B-A22B-Instruct-2507-FP8 served with -tp 4 on A100 80GB (GPUStack performance "
        "lab; vLLM runs FP8 checkpoints weight-only on Ampere)",
        "https://docs.gpustack.ai/2.3/zh/performance-lab/qwen3-235b-a22b/a100/",
        {
            **QWEN3_30B_A3B_FP8,
            "hidden_size": 4096,
            "intermediate_size": 12288,
            "moe_intermediate_size": 1536,
            "num_hidden_layers": 94,
            "num_attention_heads": 64,
            "num_key_value_heads": 4,
        },
        "A100-80GB",
        8192,
        fits_at=4,
    ),
    Fact(
        "Llama-3.1-8B in bf16 on one L4 at 8K tokens (NIM lists an L4 bf16 profile)",
        "https://docs.nvidia.com/nim/large-language-models/latest/supported-models.html",
        "llama-3.1-8b",
        "L4-24GB",
        8192,
        accelerators_per_node=1,
        chosen_tp=1,
    ),
]


@pytest.mark.parametrize("fact", FACTS, ids=lambda f: f.what[:60])
def test_the_plan_agrees_with_the_public_fact(fact: Fact) -> None:
    if fact.chosen_tp is not None:
        plan = fact.plan()
        assert plan.fits, plan.reason
        assert plan.tensor_parallel == fact.chosen_tp, plan.reason
    if fact.fits_at is not None:
        plan = fact.plan(fact.fits_at)
        assert plan.fits, plan.reason
        assert plan.expert_parallel is None, plan.reason
    if fact.not_at is not None:
        assert not fact.plan(fact.not_at).fits
    if fact.expert_parallel_at is not None:
        plan = fact.plan(fact.expert_parallel_at)
        assert plan.fits, plan.reason
        assert plan.expert_parallel == fact.expert_parallel_at
        assert "not a multiple of the 128-wide FP8 blocks" in plan.reason
    if fact.data_parallel_at is not None:
        tp, dp = fact.data_parallel_at
        plan = fact.plan(tp, dp)
        assert plan.fits, plan.reason
        assert (plan.tensor_parallel, plan.data_parallel, plan.expert_parallel) == (tp, dp, tp * dp)
    if fact.chosen_dp is not None:
        plan = fact.plan()
        assert plan.fits, plan.reason
        assert plan.data_parallel == fact.chosen_dp, plan.reason
        assert f"--data-parallel-size {fact.chosen_dp} --enable-expert-parallel" in plan.reason
    if fact.fits_nowhere:
        # No single node holds it: the plan is a group of nodes, or nothing.
        plan = fact.plan()
        assert not plan.fits or plan.nodes_per_instance > 1, plan.reason


def test_at_least_25_facts() -> None:
    assert len(FACTS) >= 25
