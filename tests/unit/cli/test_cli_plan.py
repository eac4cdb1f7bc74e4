"""`gpupool plan`: the engine knobs, a forced tensor-parallel size, and the JSON it prints."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gpupool.cli import main


def plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    assert main(["plan", "--peak-qps", "5", "-o", "json", *args]) == 0
    plans: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return plans


def test_engine_knobs_reach_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    (plan,) = plan_json(
        capsys,
        "--model=llama-3.1-8b",
        "--accelerator=H100",
        "--gpu-memory-utilization=0.8",
        "--kv-cache-dtype=fp8",
        "--max-num-batched-tokens=4096",
        "--max-num-seqs=128",
    )
    assert plan["gpuMemoryUtilization"] == 0.8
    assert plan["kvCacheDtype"] == "fp8"
    assert (plan["maxNumBatchedTokens"], plan["maxNumSeqs"]) == (4096, 128)
    # fp8 KV: 2 x 32 layers x 8 heads x 128 x 1 B
    assert plan["memoryPerAccelerator"]["kvCacheBytesPerToken"] == 65_536
    assert plan["kvCacheTokens"] == plan["memoryPerAccelerator"]["kvCacheTokens"] > 0
    assert plan["maxConcurrentSequences"] >= 1
    # Nothing here uses pipeline, expert or data parallelism, so the keys are absent.
    assert not {"pipelineParallel", "expertParallel", "dataParallel"} & set(plan)


def test_unset_scheduler_limits_are_vllms_defaults_for_the_accelerator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    h100, a100 = plan_json(capsys, "--model=llama-3.1-8b", "--accelerator=H100", "--accelerator=A100-80GB")
    assert (h100["maxNumBatchedTokens"], h100["maxNumSeqs"]) == (8192, 1024)
    assert (a100["maxNumBatchedTokens"], a100["maxNumSeqs"]) == (2048, 256)


def test_a_forced_tensor_parallel_size_is_used(capsys: pytest.CaptureFixture[str]) -> None:
    (plan,) = plan_json(capsys, "--model=llama-3.1-8b", "--accelerator=H100", "--tensor-parallel=2")
    assert plan["fits"]
    assert plan["tensorParallel"] == 2


def test_a_forced_size_that_cannot_work_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    (plan,) = plan_json(capsys, "--model=qwen2.5-7b", "--accelerator=H100", "--tensor-parallel=8")
    assert not plan["fits"]
    assert plan["reason"] == (
        "qwen2.5-7b cannot run at tensor parallel 8 on H100-80GB: 28 attention heads do not "
        "divide by 8; sizes that work within a node: 1, 2 or 4."
    )


def test_a_forced_size_that_does_not_fit_says_how_short(capsys: pytest.CaptureFixture[str]) -> None:
    (plan,) = plan_json(capsys, "--model=llama-3.1-70b", "--accelerator=H100", "--tensor-parallel=1")
    assert not plan["fits"]
    assert "even at tensor parallel 1" in plan["reason"]
    assert "short" in plan["reason"]


def test_an_unreadable_config_json_is_one_line(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"hidden_size": 4096, "num_attention_heads": "32"}))
    with pytest.raises(SystemExit):
        main(["plan", "--peak-qps", "1", f"--model={config}", "--accelerator=H100"])
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "'num_attention_heads'" in err
    assert "Traceback" not in err


def test_json_names_the_data_parallel_and_expert_parallel_layout(capsys: pytest.CaptureFixture[str]) -> None:
    (chosen,) = plan_json(capsys, "--model=deepseek-v3", "--accelerator=H200", "--max-model-len=32768")
    assert (chosen["tensorParallel"], chosen["dataParallel"], chosen["expertParallel"]) == (1, 8, 8)
    assert chosen["acceleratorsPerInstance"] == 8
    (forced,) = plan_json(
        capsys, "--model=deepseek-v3", "--accelerator=H200", "--max-model-len=32768", "--data-parallel=1"
    )
    assert forced["tensorParallel"] == 8 and "dataParallel" not in forced
