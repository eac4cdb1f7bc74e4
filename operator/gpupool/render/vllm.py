"""vLLM engine settings from a ModelDeployment and its capacity plan.

One ordered set of engine options feeds both `vllm serve` (as command-line flags) and Triton's
vLLM backend (as `model.json`, whose keys are vLLM's engine-argument names), so the two engines
cannot drift apart.

Precision (https://docs.vllm.ai/en/latest/features/quantization/):
- bf16 / fp16: `--dtype bfloat16` / `--dtype float16`, so the served precision is the one sized.
- fp8: `--quantization fp8`. On a bf16/fp16 checkpoint vLLM quantises the weights at load time
  (online dynamic FP8); an FP8 checkpoint is served as it is. NVIDIA only: FP8 needs compute
  capability 8.9+ for W8A8, and Ascend 910B has no FP8 format.
- int8 / int4 on NVIDIA: no flag. Such weights only exist as pre-quantised checkpoints (AWQ, GPTQ,
  compressed-tensors W8A8/W4A16), whose config.json declares the method; vLLM reads it and picks
  the fastest kernel (e.g. awq_marlin for AWQ), whereas `--quantization awq` would force the slow
  non-Marlin kernel. `weights` must therefore point at a quantised checkpoint.
- int8 / int4 on Ascend: `--quantization ascend`, the method vllm-ascend uses for checkpoints
  produced by ModelSlim, its recommended quantisation tool
  (https://docs.vllm.ai/projects/ascend/en/latest/user_guide/feature_guide/quantization.html).
  For a checkpoint made by LLM-Compressor instead, add `--quantization compressed-tensors` to
  `engine.extraArgs`: they come last, and vLLM's parser keeps the last value of a flag.

KV cache: `--kv-cache-dtype fp8` for fp8. `auto` already stores the KV cache in the model's 16-bit
type, and recent vLLM rejects an explicit `bfloat16` for models that do not default to an FP8
cache (vllm/config/cache.py, CacheConfig.cache_dtype), so bf16 and fp16 pass no flag.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Final

from gpupool.catalog.types import KVCacheDtype, Precision, Vendor
from gpupool.render.images import UnsupportedEngineError

HTTP_PORT: Final = 8000
GRPC_PORT: Final = 8001
METRICS_PORT: Final = 8002

# Where a weights PersistentVolumeClaim is mounted (read-only).
WEIGHTS_MOUNT_PATH: Final = "/mnt/weights"

# The port the data-parallel ranks of a multi-node instance meet on at the leader (vLLM's
# --data-parallel-rpc-port; 13345 is the one docs/serving/data_parallel_deployment.md uses).
DATA_PARALLEL_RPC_PORT: Final = 13345

# vLLM's own default (vllm/config/cache.py); used when the plan does not carry a value.
DEFAULT_GPU_MEMORY_UTILIZATION: Final = 0.9

EngineOptionValue = str | int | float | bool

_DTYPES: Final[dict[Precision, str]] = {
    Precision.BF16: "bfloat16",
    Precision.FP16: "float16",
}


@dataclass(frozen=True)
class WeightsRef:
    """What the engine loads: a Hugging Face repository or a directory on a mounted volume."""

    model: str
    revision: str | None
    served_name: str
    local: bool


def pvc_model_path(path: str) -> str:
    """The directory inside the container of `path`, a directory inside the weights volume."""
    return posixpath.normpath(posixpath.join(WEIGHTS_MOUNT_PATH, path.lstrip("/")))


def quantization(precision: Precision, vendor: Vendor) -> str | None:
    """The `--quantization` method for `precision` on `vendor`, or None (see module docs)."""
    if precision is Precision.FP8:
        if vendor is Vendor.ASCEND:
            raise UnsupportedEngineError(
                "precision fp8 is not supported on Ascend: the 910B has no FP8 format. "
                "Use bf16, or an int8 (W8A8) checkpoint quantised with ModelSlim."
            )
        return "fp8"
    if precision in (Precision.INT8, Precision.INT4) and vendor is Vendor.ASCEND:
        return "ascend"
    return None


def kv_cache_dtype(kv: KVCacheDtype, vendor: Vendor) -> str | None:
    """The `--kv-cache-dtype` value for `kv`, or None for vLLM's default (`auto`)."""
    if kv is not KVCacheDtype.FP8:
        return None
    if vendor is Vendor.ASCEND:
        raise UnsupportedEngineError(
            "kvCacheDtype fp8 is not supported on Ascend: the 910B has no FP8 format. Use kvCacheDtype auto."
        )
    return "fp8"


def engine_options(
    weights: WeightsRef,
    *,
    tensor_parallel: int,
    max_model_len: int,
    gpu_memory_utilization: float,
    precision: Precision,
    kv: KVCacheDtype,
    vendor: Vendor,
    max_num_batched_tokens: int | None = None,
    max_num_seqs: int | None = None,
    expert_parallel: bool = False,
    data_parallel: int | None = None,
    pipeline_parallel: int | None = None,
    data_parallel_local: int | None = None,
) -> dict[str, EngineOptionValue]:
    """vLLM engine arguments, keyed by their engine-argument names, in a fixed order.

    The scheduler limits are the ones the plan was sized with, so vLLM's profiling pass sees
    the same batch the memory model assumed; expert, data and pipeline parallelism appear when
    the plan uses them (vLLM's --enable-expert-parallel, --data-parallel-size and
    --pipeline-parallel-size, the last over Ray's executor across the nodes of a group). When the
    data-parallel ranks span nodes (`data_parallel_local` of them on each), every node's engine
    takes --data-parallel-size-local and the leader's --data-parallel-rpc-port; the address and
    each node's first rank depend on the pod and are added by gpupool.render.lws.
    """
    options: dict[str, EngineOptionValue] = {"model": weights.model}
    if weights.revision is not None:
        # The tokenizer is read from the same repository; pin it to the same revision.
        options["revision"] = weights.revision
        options["tokenizer_revision"] = weights.revision
    options["tensor_parallel_size"] = tensor_parallel
    if pipeline_parallel is not None and pipeline_parallel > 1:
        # Stages on other nodes are reached through the Ray cluster of the instance's group.
        options["pipeline_parallel_size"] = pipeline_parallel
        options["distributed_executor_backend"] = "ray"
    options["max_model_len"] = max_model_len
    options["gpu_memory_utilization"] = gpu_memory_utilization
    if max_num_batched_tokens is not None:
        options["max_num_batched_tokens"] = max_num_batched_tokens
    if max_num_seqs is not None:
        options["max_num_seqs"] = max_num_seqs
    if data_parallel is not None and data_parallel > 1:
        options["data_parallel_size"] = data_parallel
        if data_parallel_local is not None and data_parallel_local < data_parallel:
            options["data_parallel_size_local"] = data_parallel_local
            options["data_parallel_rpc_port"] = DATA_PARALLEL_RPC_PORT
    if expert_parallel:
        options["enable_expert_parallel"] = True
    dtype = _DTYPES.get(precision)
    if dtype is not None:
        options["dtype"] = dtype
    method = quantization(precision, vendor)
    if method is not None:
        options["quantization"] = method
    cache_dtype = kv_cache_dtype(kv, vendor)
    if cache_dtype is not None:
        options["kv_cache_dtype"] = cache_dtype
    return options


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _text(value: EngineOptionValue) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def vllm_serve_args(
    options: dict[str, EngineOptionValue],
    *,
    served_name: str,
    shutdown_timeout_seconds: int,
    extra_args: list[str],
) -> list[str]:
    """Arguments of `vllm serve`: the model first, then the options, then the user's extraArgs.

    `--shutdown-timeout` makes vLLM stop taking new requests on SIGTERM and finish the ones in
    flight for up to that many seconds; without it vLLM aborts them at once (vLLM >= 0.18,
    vllm-project/vllm#34730).
    """
    args = [str(options["model"])]
    for name, value in options.items():
        if name == "model":
            continue
        # vLLM's boolean engine arguments are bare flags (argparse BooleanOptionalAction).
        args += [_flag(name)] if value is True else [_flag(name), _text(value)]
    args += [
        "--served-model-name",
        served_name,
        "--port",
        str(HTTP_PORT),
        "--shutdown-timeout",
        str(shutdown_timeout_seconds),
    ]
    return args + list(extra_args)
